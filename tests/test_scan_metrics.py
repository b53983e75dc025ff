"""llmct.scan.metrics: cosine, centred cosine, MAE, top-1% Jaccard and spread against hand
computations, and the ``[S, R, ...]`` layout over extra (source, layer) axes."""

import numpy as np
import pytest

from llmct.scan.metrics import all_metrics, cosine, jaccard_topk, mae, spread, top_k, topk_mask


def test_metrics_by_hand():
    a = np.array([[1.0, 0.0, 0.0, 2.0]])
    b = np.array([[1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, -2.0]])
    np.testing.assert_allclose(cosine(a, b)[0], [1.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(mae(a, b)[0], [0.0, 1.0, 1.5])
    x = np.arange(300.0)[None]
    assert topk_mask(x, 3)[0].nonzero()[0].tolist() == [297, 298, 299]
    # top 1% of 300 dims = 3 dims; same magnitudes in both -> Jaccard 1; disjoint -> 0
    assert jaccard_topk(x, -x)[0, 0] == 1.0
    assert jaccard_topk(x, x[:, ::-1])[0, 0] == 0.0


def test_every_snapshot_against_every_reference_over_extra_axes():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 5, 8)), rng.normal(size=(4, 3, 5, 8))  # [S|R, src, L, D]
    got_cos, got_mae = cosine(a, b), mae(a, b)
    assert got_cos.shape == got_mae.shape == (2, 4, 3, 5)
    for s, r, k, j in [(0, 0, 0, 0), (1, 3, 2, 4), (0, 2, 1, 3)]:
        x, y = a[s, k, j], b[r, k, j]
        assert got_cos[s, r, k, j] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
        assert got_mae[s, r, k, j] == pytest.approx(np.abs(x - y).mean())


def test_cosine_of_a_zero_vector_is_zero_not_nan():
    assert cosine(np.zeros((1, 3)), np.ones((1, 3)))[0, 0] == 0.0


def test_centred_cosine_subtracts_the_centre_from_both_sides():
    snaps = np.array([[2.0, 1.0]])
    refs = np.array([[1.0, 2.0], [3.0, 3.0]])
    m = all_metrics(snaps, refs, np.array([1.0, 1.0]))
    assert set(m) == {"cosine", "cosine_centered", "mae", "jaccard"}
    # raw: (2*1 + 1*2) / (sqrt 5 * sqrt 5) = 0.8 and (6 + 3) / (sqrt 5 * sqrt 18)
    np.testing.assert_allclose(m["cosine"][0], [0.8, 9 / np.sqrt(90)])
    # centred: [1, 0] against [0, 1] (orthogonal) and [2, 2] (45 degrees)
    np.testing.assert_allclose(m["cosine_centered"][0], [0.0, np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(m["mae"][0], [1.0, 1.5])


def test_top_one_percent_and_a_partial_overlap():
    assert (top_k(576), top_k(300), top_k(50)) == (5, 3, 1)  # at least one dimension
    assert top_k(1000, 0.05) == 50
    a, b = np.zeros((1, 200)), np.zeros((1, 200))  # k = 2 dims
    a[0, [3, 7]] = [5.0, -9.0]  # magnitude counts, not sign
    b[0, [7, 11]] = [4.0, 8.0]
    assert topk_mask(a, 2)[0].nonzero()[0].tolist() == [3, 7]
    assert jaccard_topk(a, b)[0, 0] == pytest.approx(1 / 3)  # |{7}| / |{3, 7, 11}|


def test_spread_is_max_minus_min_over_references():
    values = np.array([[[0.1, 0.5], [0.4, -0.2], [0.3, 0.0]]])  # [S=1, R=3, L=2]
    np.testing.assert_allclose(spread(values), [[0.3, 0.7]])
