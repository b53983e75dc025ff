"""Geometry with nulls: exactness against scipy/sklearn and behaviour of each test's null."""

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.sparse.csgraph import shortest_path
from scipy.stats import spearmanr
from sklearn.metrics import silhouette_score

from llmct.analysis import geometry as g


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_pca_centres_and_orders(rng):
    X = rng.normal(size=(40, 6)) * np.array([5, 3, 1, 1, 1, 1]) + 100.0
    res = g.pca(X)
    assert np.allclose(res.mean, X.mean(0))
    assert np.allclose(res.components @ res.components.T, np.eye(6), atol=1e-10)
    assert np.all(np.diff(res.explained_ratio) <= 1e-12) and res.explained_ratio.sum() == pytest.approx(1)
    assert abs(res.components[0, 0]) > 0.95  # the large offset is not a component
    assert np.allclose(res.scores, (X - X.mean(0)) @ res.components.T)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_silhouette_matches_sklearn_including_singletons(rng, metric):
    X = rng.normal(size=(30, 5))
    labels = np.repeat(np.arange(3), 10)
    X[:, 0] += labels
    labels[0] = 7  # a singleton cluster scores 0, as in sklearn
    assert g.silhouette(X, labels, metric) == pytest.approx(silhouette_score(X, labels, metric=metric))


def test_silhouette_test_separates_structure_from_noise(rng):
    labels = np.repeat(np.arange(4), 8)
    clustered = rng.normal(size=(32, 10)) + 4 * np.eye(4, 10)[labels]
    obs, p, null = g.silhouette_test(clustered, labels, n_perm=500)
    assert obs > 0.2 and p < 0.01 and len(null) == 500
    _, p_noise, _ = g.silhouette_test(rng.normal(size=(32, 10)), labels, n_perm=500)
    assert p_noise > 0.01


def test_rsa_identical_and_independent(rng):
    V = rng.normal(size=(20, 30))
    S = g.cosine_matrix(V)
    res = g.rsa(S, S, n_perm=10_000)
    assert res.r == pytest.approx(1.0) and res.p < 1e-3 and res.n_pairs == 190
    indep = [g.rsa(S, g.cosine_matrix(rng.normal(size=(20, 30))), n_perm=200, seed=k).r
             for k in range(20)]
    assert abs(np.mean(indep)) < 0.1
    noisy = g.cosine_matrix(V + 0.5 * rng.normal(size=V.shape))
    assert g.rsa(S, noisy, n_perm=10).r == pytest.approx(spearmanr(g.upper(S), g.upper(noisy))[0])


def test_rsa_null_is_the_relabelled_correlation(rng):
    A = g.cosine_matrix(rng.normal(size=(9, 4)))
    B = g.cosine_matrix(rng.normal(size=(9, 4)))
    res = g.rsa(A, B, n_perm=5, seed=3)
    perms = g.random_permutations(9, 5, seed=3)
    brute = [spearmanr(g.upper(A), g.upper(B[p][:, p]))[0] for p in perms]
    assert np.allclose(res.null, brute)


def test_rsa_rejects_bad_input(rng):
    with pytest.raises(ValueError, match="symmetric"):
        g.rsa(rng.normal(size=(5, 5)), np.eye(5))
    with pytest.raises(ValueError, match="differ"):
        g.rsa(np.eye(5), np.eye(6))


def test_rsa_matrix(rng):
    mats = [g.cosine_matrix(rng.normal(size=(8, 5))) for _ in range(3)]
    M = g.rsa_matrix(mats)
    assert M.shape == (3, 3) and np.allclose(np.diag(M), 1)
    assert M[0, 1] == pytest.approx(spearmanr(g.upper(mats[0]), g.upper(mats[1]))[0])


def test_correspondence_test(rng):
    V = rng.normal(size=(10, 20))
    S = g.cosine_matrix(V, V + 0.3 * rng.normal(size=V.shape))
    res = g.correspondence_test(S, n_perm=2000)
    assert res["top1"] == 1.0 and res["p"] < 1e-3 and res["matched"] > res["mismatched"]
    assert g.correspondence_test(g.cosine_matrix(V, rng.normal(size=V.shape)))["p"] > 0.01


def test_procrustes_recovers_rotation_and_matches_scipy(rng):
    X = rng.normal(size=(15, 6))
    Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    assert g.procrustes_fit(X, X @ Q) == pytest.approx(1.0)
    Y = X @ Q + 0.3 * rng.normal(size=X.shape)
    R, _ = orthogonal_procrustes(X, Y)
    ref = np.mean(np.sum(g.unit_rows(X @ R) * g.unit_rows(Y), axis=1))
    assert g.procrustes_fit(X, Y) == pytest.approx(ref)


def test_procrustes_null_exposes_overfitting(rng):
    """Few vectors in many dimensions: unrelated sets fit as well as a shuffled pairing."""
    X, Y = rng.normal(size=(12, 200)), rng.normal(size=(12, 200))
    res = g.procrustes_test(X, Y, n_perm=300)
    assert res["fit"] > 0.9  # the seed's trap: a high in-sample fit of unrelated spaces
    assert res["p"] > 0.05 and res["loo_top1"] <= 0.25
    # shared low-dimensional geometry, rotated: beats the null and predicts held-out pairs
    Xs = rng.normal(size=(12, 3)) @ rng.normal(size=(3, 200))
    Q = np.linalg.qr(rng.normal(size=(200, 200)))[0]
    shared = g.procrustes_test(Xs, Xs @ Q + 0.05 * rng.normal(size=Xs.shape), n_perm=300)
    assert shared["p"] < 0.01 and shared["loo_top1"] > 0.8


def test_knn_geodesic(rng):
    t = np.linspace(0, 3 * np.pi, 25)
    X = np.c_[t * np.cos(t), t * np.sin(t)]  # a spiral: geodesic >> euclidean across turns
    D, k = g.knn_geodesic(X, k=2)
    assert k >= 2 and np.isfinite(D).all() and np.allclose(D, D.T)
    assert D[0, -1] > g.euclidean_distances(X)[0, -1]
    two_blobs = np.r_[rng.normal(size=(5, 2)), rng.normal(size=(5, 2)) + 50]
    D2, k2 = g.knn_geodesic(two_blobs, k=2)
    assert k2 >= 5 and np.isfinite(D2).all()  # k grew until the graph connected
    assert np.isinf(shortest_path(np.zeros((2, 2)))[0, 1])  # sanity: scipy marks no path as inf


def test_pole_directions_and_loo(rng):
    labels = ["a", "b", "c", "d"]
    V = np.array([[1.0, 0], [2, 0], [-1, 0], [-2, 0]])
    d = g.pole_direction(V, labels, ["a", "b"], ["c", "d"])
    assert np.allclose(d, [1, 0])
    proj = g.loo_pole_projection(V, labels, ["a", "b"], ["c", "d"])
    assert np.all(np.sign(proj) == [1, 1, -1, -1])
    with pytest.raises(ValueError):
        g.pole_direction(V, labels, ["x"], ["c"])


def test_kmeans_and_agreement(rng):
    labels = np.repeat(np.arange(4), 5)
    X = rng.normal(size=(20, 3)) * 0.1 + 5 * np.eye(4, 3)[labels] + np.r_[np.zeros((15, 3)),
                                                                          np.full((5, 3), -5)]
    km = g.kmeans(X, k=4, seed=0)
    ari, p = g.cluster_agreement(km, labels, n_perm=500)
    assert ari == pytest.approx(1.0) and p < 0.01
    Z, order = g.hierarchical(X)
    assert Z.shape == (19, 4) and sorted(order) == list(range(20))


def test_permuted_adjusted_rand_equals_sklearn_to_the_last_bit(rng):
    from sklearn.metrics import adjusted_rand_score

    cases = [(rng.integers(0, 4, 40), rng.integers(0, 3, 40)),  # ordinary labelings
             (np.array(list("aabbccdd")), np.array(list("xxyyzzww"))),  # string labels
             (np.zeros(10, int), np.zeros(10, int)),  # one cluster each: sklearn's special case
             (np.arange(12), np.arange(12) % 3)]  # singletons against three clusters
    for a, b in cases:
        perms = np.vstack([np.arange(len(b)), g.random_permutations(len(b), 200, seed=3)])
        fast = g.permuted_adjusted_rand(a, b, perms)
        slow = np.array([adjusted_rand_score(a, b[p]) for p in perms])
        np.testing.assert_array_equal(fast, slow)
    assert fast[0] == adjusted_rand_score(a, b)


def test_silhouette_permutations_equal_sklearn(rng):
    from sklearn.metrics import silhouette_score

    X, labels = rng.normal(size=(30, 5)), np.repeat(np.arange(3), 10)
    perms = g.random_permutations(30, 5, seed=1)
    D = g.squareform(g.pdist(X))
    ours = g._silhouettes(D, labels[perms], 3)
    theirs = [silhouette_score(X, labels[p]) for p in perms]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
