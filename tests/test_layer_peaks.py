"""llmct.analysis.layer_peaks: where the best layer is, with an interval over items, and a max-over-layers
permutation test; wired into the probe suite's summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from llmct.analysis import probes
from llmct.analysis.layer_peaks import (
    max_layer_permutation,
    paired_difference_by_layer,
    peak_intervals,
    pooled_auroc_by_layer,
    resampled_auroc_by_layer,
)


def _proba(signal_by_layer, n=90, k=3, seed=0):
    """Out-of-fold-like probabilities [L, n, k] whose label signal per layer is given."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    out = []
    for s in signal_by_layer:
        logits = rng.normal(size=(len(y), k)) + s * np.eye(k)[y]
        e = np.exp(logits - logits.max(1, keepdims=True))
        out.append(e / e.sum(1, keepdims=True))
    return np.stack(out), y


def test_pooled_auroc_matches_sklearn():
    proba, y = _proba([0.5, 2.0])
    for j in range(2):
        assert pooled_auroc_by_layer(proba, y, np.arange(3))[j] == pytest.approx(
            roc_auc_score(y, proba[j], multi_class="ovr", average="macro"))


def test_a_clear_peak_has_a_narrow_interval_and_a_plateau_a_wide_one():
    proba, y = _proba([0.0, 0.5, 4.0, 0.5, 0.0])
    sharp = peak_intervals(proba, y, np.arange(3), [0, 1, 2, 3, 4], n_boot=300)
    assert sharp["argmax_lo"] == sharp["argmax_hi"] == 2
    assert sharp["argmax_stability"] > 0.95 and sharp["ci_unit"] == "items"
    proba, y = _proba([3.0] * 6, seed=1)
    flat = peak_intervals(proba, y, np.arange(3), list(range(6)), n_boot=300)
    assert flat["argmax_hi"] - flat["argmax_lo"] >= 2
    assert flat["argmax_stability"] < 0.6


def test_max_over_layers_permutation():
    proba, y = _proba([0.0, 0.0, 2.0])
    observed, p, null95 = max_layer_permutation(proba, y, np.arange(3), n_perm=300)
    assert p < 0.01 and observed > null95
    proba, y = _proba([0.0] * 8, seed=2)
    observed, p, null95 = max_layer_permutation(proba, y, np.arange(3), n_perm=300)
    assert p > 0.05  # the best of 8 null layers is no evidence


def test_probe_suite_reports_peak_intervals_in_the_summary():
    rng = np.random.default_rng(3)
    y = np.repeat(["a", "b"], 20)
    X = rng.normal(size=(40, 3, 5)).astype(np.float32)
    X[:, 2, 0] += 3.0 * (y == "b")  # the label lives in layer 2 only
    peaks: list[dict] = []
    texts = [f"note number {i}" for i in range(40)]
    res = probes.probe_suite({"hidden_out": X}, y, ["s"] * 40, texts, layers=[0, 1, 2],
                             n_layers=3, transfers=None, peaks_out=peaks, n_boot=200)
    summary = probes.summarise(res, n_layers=3, peak_ci=peaks)
    row = summary.iloc[0]
    assert row.argmax_layer == 2 and row.argmax_lo == row.argmax_hi == 2
    assert row.p_max_over_layers < 0.01


def test_layer_intervals_are_layers():
    """The interval of a resampled layer number is a pair of layers, never a value in between."""
    proba, y = _proba([2.0, 2.1, 2.0, 2.1], seed=4)
    out = peak_intervals(proba, y, np.arange(3), [3, 5, 7, 9], n_boot=200)
    for key in ("argmax_lo", "argmax_hi", "first_within_lo", "first_within_hi"):
        assert out[key] in (3, 5, 7, 9)


def test_paired_difference_interval_excludes_zero_only_where_the_prompts_differ():
    strong, y = _proba([0.0, 3.0, 3.0], seed=5)
    weak, _ = _proba([0.0, 3.0, 0.5], seed=5)
    diff, lo, hi = paired_difference_by_layer(strong, weak, y, np.arange(3), n_boot=300)
    assert diff.shape == lo.shape == hi.shape == (3,)
    assert diff[0] == pytest.approx(0.0) and diff[1] == pytest.approx(0.0)  # identical layers
    assert lo[0] == pytest.approx(0.0) and hi[1] == pytest.approx(0.0)
    assert lo[2] > 0.0 and lo[2] <= diff[2] <= hi[2]
    with pytest.raises(ValueError, match="differ in shape"):
        paired_difference_by_layer(strong, weak[:2], y, np.arange(3))


def test_probe_suite_fold_seeds_and_held_out_probabilities():
    rng = np.random.default_rng(6)
    y = np.repeat(["a", "b", "c"], 12)
    sets = np.array(["s"] * 36)
    X = rng.normal(size=(36, 3, 4)).astype(np.float32)
    X[:, 1, 0] += 2.5 * (y == "b") - 2.5 * (y == "c")
    texts = [f"note {i}" for i in range(36)]
    seeds: list[dict] = []
    proba: dict = {}
    res = probes.probe_suite({"hidden_out": X}, y, sets, texts, layers=[0, 1, 2], n_layers=3,
                             transfers=None, fold_seeds=5, seeds_out=seeds, proba_out=proba)
    frame = pd.DataFrame(seeds)
    assert sorted(frame.seed.unique()) == list(range(probes.SEED, probes.SEED + 5))
    assert set(frame.rule) == {"layer0", "argmax", "first_within"}
    headline = res[(res.control == "none") & (res.layer == 1)].auroc.iloc[0]
    first_seed = frame[(frame.rule == "argmax") & (frame.seed == probes.SEED)].auroc.iloc[0]
    assert first_seed == pytest.approx(headline)  # the first seed is the headline's folds
    spread = probes.seed_spread(seeds).iloc[0]
    assert spread.n_fold_seeds == 5
    assert spread.argmax_seed_min <= headline <= spread.argmax_seed_max
    y_out, oof = proba[("s", "s")]
    assert oof["hidden_out"].shape == (3, 36, 3) and np.isfinite(oof["hidden_out"]).all()
    np.testing.assert_array_equal(y_out, y)


def test_transfer_probabilities_reproduce_the_transfer_auroc():
    rng = np.random.default_rng(7)
    y = np.tile(np.repeat(["a", "b"], 10), 2)
    sets = np.repeat(["s1", "s2"], 20)
    X = rng.normal(size=(40, 2, 4)).astype(np.float32)
    X[:, 1, 0] += 2.0 * (y == "b")
    proba: dict = {}
    res = probes.probe_suite({"h": X}, y, sets, [f"t {i}" for i in range(40)], layers=[0, 1],
                             n_layers=2, transfers=[("s1", "s2")], proba_out=proba)
    y_te, p = proba[("s1", "s2")]
    auroc = res[(res.train_set == "s1") & (res.test_set == "s2") & (res.control == "none")]
    np.testing.assert_allclose(pooled_auroc_by_layer(p["h"], y_te, np.array(["a", "b"])),
                               auroc.sort_values("layer").auroc.to_numpy())


def _loop_auroc(proba, y, classes, rows):
    """The per-resample loop that resampled_auroc_by_layer replaces."""
    return np.stack([pooled_auroc_by_layer(proba[:, r], y[r], classes) for r in rows])


@pytest.mark.parametrize("k", [2, 3, 8])
def test_resampled_auroc_equals_one_resample_at_a_time_bit_for_bit(k):
    rng = np.random.default_rng(4)
    n = 12 if k == 8 else 40  # with 8 classes in 12 items, some resamples miss a class
    proba = rng.random((5, n, k))
    proba[:, :, 0] = np.round(proba[:, :, 0], 1)  # ties, averaged by the ranking
    y = np.arange(n) % k
    rows = rng.integers(0, n, size=(230, n))
    got = resampled_auroc_by_layer(proba, y, np.arange(k), rows)
    assert np.array_equal(got, _loop_auroc(proba, y, np.arange(k), rows), equal_nan=True)
    with_nan = proba.copy()
    with_nan[:, 3, 1] = np.nan  # items with a NaN probability are dropped, as by the loop
    assert np.array_equal(resampled_auroc_by_layer(with_nan, y, np.arange(k), rows[:20]),
                          _loop_auroc(with_nan, y, np.arange(k), rows[:20]), equal_nan=True)


def test_paired_difference_and_peak_intervals_keep_the_per_resample_stream():
    """Same seed, same resamples as the per-resample loop they replace: identical intervals."""
    proba_a, y = _proba([0.2, 0.5, 1.0, 0.9], n=60, k=3, seed=1)
    proba_b, _ = _proba([0.3, 0.4, 0.6, 1.0], n=60, k=3, seed=2)
    classes = np.unique(y)
    rng = np.random.default_rng(0)  # the loop as it was written before
    boots = np.full((200, 4), np.nan)
    argmax = []
    for i in range(200):
        idx = rng.integers(0, len(y), size=len(y))
        curve = pooled_auroc_by_layer(proba_a[:, idx], y[idx], classes)
        boots[i] = curve - pooled_auroc_by_layer(proba_b[:, idx], y[idx], classes)
        argmax.append(int(np.nanargmax(curve)))
    _, lo, hi = paired_difference_by_layer(proba_a, proba_b, y, classes, n_boot=200)
    alpha = (1 - 0.95) / 2  # as the function computes it (not the literal 0.025)
    want_lo, want_hi = np.nanquantile(boots, [alpha, 1 - alpha], axis=0)
    assert np.array_equal(lo, want_lo) and np.array_equal(hi, want_hi)
    got = peak_intervals(proba_a, y, classes, [0, 10, 20, 29], n_boot=200)
    observed = int(np.nanargmax(pooled_auroc_by_layer(proba_a, y, classes)))
    assert got["argmax_stability"] == np.mean(np.asarray(argmax) == observed)


def test_max_layer_permutation_keeps_the_per_permutation_loop_bit_for_bit():
    proba, y = _proba([0.2, 0.5, 1.0, 0.9], n=60, k=3, seed=5)
    proba[:, :, 1] = np.round(proba[:, :, 1], 2)  # ties
    classes = np.unique(y)
    rng = np.random.default_rng(3)  # the loop as it was written before
    null = np.array([np.nanmax(pooled_auroc_by_layer(proba, rng.permutation(y), classes))
                     for _ in range(300)])
    observed = float(np.nanmax(pooled_auroc_by_layer(proba, y, classes)))
    want = (observed, float((np.sum(null >= observed) + 1) / 301), float(np.quantile(null, 0.95)))
    assert max_layer_permutation(proba, y, classes, n_perm=300, seed=3) == want
    binary = (y == 0).astype(int)
    rng = np.random.default_rng(1)
    null = np.array([np.nanmax(pooled_auroc_by_layer(proba[:, :, :2], rng.permutation(binary),
                                                     [0, 1])) for _ in range(100)])
    got = max_layer_permutation(proba[:, :, :2], binary, [0, 1], n_perm=100, seed=1)
    assert got[2] == float(np.quantile(null, 0.95))
