"""Representational geometry with nulls: PCA, silhouettes, centroid cosines, RSA, Procrustes,
geodesic distances, affect axes and clustering (pure numpy/scipy/sklearn).

Every test statistic comes with the null it must beat: silhouettes and RSA against label
permutations (vectorised: thousands of shuffles in a fraction of a second), Procrustes fit
against the fit under shuffled correspondence (with few vectors in many dimensions an orthogonal
map fits almost anything), cosines on *centred* data (uncentred residual-stream vectors all point
the same way, so every cosine is ~0.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sstats
from scipy.cluster import hierarchy
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path
from scipy.spatial.distance import pdist, squareform

from llmct.analysis.stats import permutation_pvalue

# ----------------------------------------------------------------------------- basics


@dataclass
class PCAResult:
    """``components [k, d]`` (orthonormal rows), ``explained_ratio [k]`` (share of the *total*
    variance), ``scores [n, k]`` of the centred data, ``mean [d]``."""

    components: np.ndarray
    explained_ratio: np.ndarray
    scores: np.ndarray
    mean: np.ndarray


def pca(X, n_components: int | None = None) -> PCAResult:
    """PCA of the rows of ``X [n, d]`` after subtracting their mean (SVD, float64).

    Centring matters: without it the first "component" is the mean direction, which in a residual
    stream dominates everything (the seed's "2 PCs explain 96%" symptom)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"pca needs [n >= 2, d] data, got shape {X.shape}")
    mean = X.mean(axis=0)
    Xc = X - mean
    _, s, vt = np.linalg.svd(Xc, full_matrices=False)
    var = s**2
    total = var.sum()
    ratio = var / total if total > 0 else np.zeros_like(var)
    k = len(s) if n_components is None else min(int(n_components), len(s))
    # deterministic signs: the largest |loading| of each component is positive
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    vt = vt * signs[:, None]
    return PCAResult(vt[:k], ratio[:k], Xc @ vt[:k].T, mean)


def unit_rows(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norm = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.where(norm > 0, norm, 1.0)


def cosine_matrix(X, Y=None) -> np.ndarray:
    """``[n, m]`` cosines between the rows of ``X`` and ``Y`` (default ``Y = X``)."""
    Xu = unit_rows(X)
    return Xu @ (Xu if Y is None else unit_rows(Y)).T


def upper(S, k: int = 1) -> np.ndarray:
    """The strict upper triangle of a square matrix, row by row."""
    S = np.asarray(S)
    return S[np.triu_indices(S.shape[0], k)]


def euclidean_distances(X) -> np.ndarray:
    return squareform(pdist(np.asarray(X, dtype=np.float64)))


def random_permutations(n: int, n_perm: int, seed: int = 0) -> np.ndarray:
    """``[n_perm, n]`` independent uniform permutations of ``range(n)`` (one call, no loop)."""
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((n_perm, n)), axis=1)


def pearson(a, b) -> tuple[float, float]:
    """``(r, two-sided p)``; NaN when fewer than 3 points or a constant input."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    r, p = sstats.pearsonr(a, b)
    return float(r), float(p)


# ----------------------------------------------------------------------------- clusters


def _codes(labels) -> tuple[np.ndarray, int]:
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes, int(codes.max()) + 1


def _silhouettes(D: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Mean silhouette for each row of ``codes [P, n]`` under distances ``D [n, n]``
    (sklearn's definition: a singleton's silhouette is 0)."""
    P, n = codes.shape
    onehot = np.zeros((P, n, k))
    onehot[np.arange(P)[:, None], np.arange(n)[None, :], codes] = 1.0
    sums = np.matmul(D, onehot)  # [P, n, k]: distance sum to each cluster (BLAS, not einsum)
    counts = onehot.sum(axis=1)  # [P, k]
    own_count = np.take_along_axis(counts, codes, axis=1)  # [P, n]
    own_sum = np.take_along_axis(sums, codes[..., None], axis=2)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = own_sum / (own_count - 1)
        means = sums / counts[:, None, :]
    means[onehot.astype(bool)] = np.inf
    means[np.broadcast_to(counts[:, None, :] == 0, means.shape)] = np.inf
    b = means.min(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (b - a) / np.maximum(a, b)
    s[(own_count <= 1) | ~np.isfinite(s)] = 0.0
    return s.mean(axis=1)


def silhouette(X, labels, metric: str = "euclidean") -> float:
    """Mean silhouette of ``labels`` on the rows of ``X`` (any scipy ``pdist`` metric)."""
    codes, k = _codes(labels)
    if k < 2 or k >= len(codes):
        raise ValueError(f"silhouette needs 2 <= n_labels < n_items, got {k} labels, {len(codes)}")
    D = squareform(pdist(np.asarray(X, dtype=np.float64), metric))
    return float(_silhouettes(D, codes[None], k)[0])


def silhouette_test(X, labels, *, metric: str = "euclidean", n_perm: int = 1000, seed: int = 0,
                    batch: int = 250) -> tuple[float, float, np.ndarray]:
    """``(silhouette, p, null)``: the observed silhouette against ``n_perm`` label permutations
    (one-sided: is the grouping tighter than chance?)."""
    codes, k = _codes(labels)
    if k < 2 or k >= len(codes):
        raise ValueError(f"silhouette needs 2 <= n_labels < n_items, got {k} labels, {len(codes)}")
    D = squareform(pdist(np.asarray(X, dtype=np.float64), metric))
    observed = float(_silhouettes(D, codes[None], k)[0])
    perms = random_permutations(len(codes), n_perm, seed)
    null = np.concatenate([_silhouettes(D, codes[perms[i:i + batch]], k)
                           for i in range(0, n_perm, batch)])
    return observed, permutation_pvalue(observed, null), null


def centroids(X, labels, order: Sequence | None = None) -> tuple[list, np.ndarray]:
    """``(order, [K, d])`` label means of the rows of ``X``."""
    labels = np.asarray(labels)
    order = list(order) if order is not None else list(dict.fromkeys(labels.tolist()))
    X = np.asarray(X, dtype=np.float64)
    return order, np.stack([X[labels == lab].mean(axis=0) for lab in order])


def correspondence_test(S, *, n_perm: int = 10_000, seed: int = 0) -> dict:
    """Matched vs mismatched entries of a cross-similarity matrix ``S [E, E]`` whose row ``i``
    and column ``i`` are the same label (e.g. English vs Japanese vector of each emotion).

    Returns matched (mean diagonal), mismatched (mean off-diagonal), their difference, its
    permutation p (columns shuffled: correspondence destroyed), and top-1 matching accuracy
    (each row's largest entry is its own column; chance 1/E)."""
    S = np.asarray(S, dtype=np.float64)
    E = S.shape[0]
    if S.shape != (E, E) or E < 2:
        raise ValueError(f"need a square [E >= 2, E] matrix, got {S.shape}")
    total = S.sum()

    def diff(diag_sum):
        return diag_sum / E - (total - diag_sum) / (E * (E - 1))

    observed = float(diff(np.trace(S)))
    perms = random_permutations(E, n_perm, seed)
    null = diff(S[np.arange(E)[None, :], perms].sum(axis=1))
    matched = float(np.trace(S) / E)
    return {"matched": matched, "mismatched": float((total - np.trace(S)) / (E * (E - 1))),
            "difference": observed, "p": permutation_pvalue(observed, null),
            "top1": float(np.mean(S.argmax(axis=1) == np.arange(E))), "chance_top1": 1.0 / E}


# ----------------------------------------------------------------------------- RSA


@dataclass
class RSAResult:
    r: float
    p: float
    null: np.ndarray
    n_pairs: int
    method: str

    @property
    def null_quantiles(self) -> tuple[float, float]:
        """(95th, 99.9th) percentile of the null (how high chance goes)."""
        return float(np.quantile(self.null, 0.95)), float(np.quantile(self.null, 0.999))


def _rsa_values(S, method: str) -> np.ndarray:
    """Symmetric matrix whose strict upper triangle holds the (ranked, for Spearman) values."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] < 3:
        raise ValueError(f"RSA needs square matrices of >= 3 items, got {S.shape}")
    if not np.allclose(S, S.T, atol=1e-8, rtol=1e-6):
        raise ValueError("RSA needs symmetric similarity/distance matrices")
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    iu = np.triu_indices(S.shape[0], 1)
    vals = sstats.rankdata(S[iu]) if method == "spearman" else S[iu]
    out = np.zeros_like(S)
    out[iu] = vals
    return out + out.T


def rsa(A, B, *, n_perm: int = 10_000, seed: int = 0, method: str = "spearman",
        batch: int = 2000) -> RSAResult:
    """Correlation of the upper triangles of two ``[E, E]`` similarity (or distance) matrices over
    the same items, with a permutation test that relabels ``B``'s items (rows and columns
    together; Mantel test). Vectorised: a permutation only reorders ``B``'s (ranked) values, so
    the null needs one gather and one matrix product per batch."""
    RA, RB = _rsa_values(A, method), _rsa_values(B, method)
    if RA.shape != RB.shape:
        raise ValueError(f"matrices differ in size: {RA.shape} vs {RB.shape}")
    E = RA.shape[0]
    iu, ju = np.triu_indices(E, 1)
    a = RA[iu, ju]
    a = a - a.mean()
    b = RB[iu, ju]
    mu, sd_b, sd_a = b.mean(), np.linalg.norm(b - b.mean()), np.linalg.norm(a)
    if sd_a == 0 or sd_b == 0:
        return RSAResult(float("nan"), float("nan"), np.full(n_perm, np.nan), len(a), method)
    r = float((b - mu) @ a / (sd_a * sd_b))
    if n_perm <= 0:
        return RSAResult(r, float("nan"), np.zeros(0), len(a), method)
    perms = random_permutations(E, n_perm, seed)
    null = np.concatenate([
        ((RB[p[:, iu], p[:, ju]] - mu) @ a) / (sd_a * sd_b)
        for p in (perms[i:i + batch] for i in range(0, n_perm, batch))])
    return RSAResult(r, permutation_pvalue(r, null), null, len(a), method)


def rsa_matrix(mats: Sequence, method: str = "spearman") -> np.ndarray:
    """``[L, L]`` RSA (correlation of upper triangles) between every pair of ``[E, E]`` matrices
    (e.g. one cosine matrix per layer)."""
    rows = []
    for S in mats:
        R = _rsa_values(S, method)
        rows.append(upper(R))
    return np.corrcoef(np.stack(rows))


# ----------------------------------------------------------------------------- Procrustes


def _span_coords(X) -> np.ndarray:
    """Coordinates ``A [n, r]`` of the rows of ``X`` in an orthonormal basis of their span
    (inner products preserved, so cosines and orthogonal maps can be computed in ``r <= n``
    dimensions instead of ``d``)."""
    X = np.asarray(X, dtype=np.float64)
    _, r = np.linalg.qr(X.T)
    return r.T


def _orthogonal(M: np.ndarray, rank_tol: float | None = None) -> np.ndarray:
    """``U V^T`` of ``M = U S V^T`` (stacked ok); with ``rank_tol`` only singular directions
    above ``rank_tol * max`` are kept (a partial isometry)."""
    u, s, vt = np.linalg.svd(M)
    if rank_tol is not None:
        keep = s > rank_tol * s.max(axis=-1, keepdims=True)
        u = u * keep[..., None, :]
    return u @ vt


def _row_cosines(P, Q) -> np.ndarray:
    return np.sum(unit_rows(P) * unit_rows(Q), axis=-1)


def procrustes_fit(X, Y) -> float:
    """Mean cosine between the rows of ``X R`` and ``Y`` after the best orthogonal map ``R``
    (orthogonal Procrustes, ``X``'s row ``i`` corresponds to ``Y``'s row ``i``)."""
    A, B = _span_coords(X), _span_coords(Y)
    W = _orthogonal(A.T @ B)
    return float(_row_cosines(A @ W, B).mean())


def procrustes_test(X, Y, *, n_perm: int = 1000, seed: int = 0, centre: bool = True) -> dict:
    """Procrustes fit against the fit under shuffled correspondence (``Y``'s rows permuted), and
    leave-one-out prediction (does the map fitted on the other ``n - 1`` pairs send ``x_i``
    nearest to ``y_i``? chance ``1/n``).

    With ``n`` vectors in ``d >> n`` dimensions the in-sample fit is high even for shuffled pairs;
    only a fit above that null, or held-out identification above chance, says the two spaces
    share geometry. ``centre``: subtract the means first -- for the held-out test the *training*
    means, because a held-out vector of a centred set is minus the sum of the others (it would
    leak). The held-out direction outside the training span is left unmapped (any orthogonal
    completion of it is arbitrary)."""
    A, B = _span_coords(X), _span_coords(Y)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"X and Y need the same number of rows, got {len(A)} and {len(B)}")
    n = len(A)
    Ac, Bc = (A - A.mean(0), B - B.mean(0)) if centre else (A, B)
    W = _orthogonal(Ac.T @ Bc)
    observed = float(_row_cosines(Ac @ W, Bc).mean())
    perms = random_permutations(n, n_perm, seed)
    Bp = Bc[perms]  # [P, n, r]
    Wp = _orthogonal(np.einsum("ir,pis->prs", Ac, Bp))
    null = _row_cosines(np.einsum("ir,prs->pis", Ac, Wp), Bp).mean(axis=1)
    loo_cos, loo_rank = np.zeros(n), np.zeros(n, dtype=np.int64)
    for i in range(n):
        keep = np.arange(n) != i
        mA, mB = (A[keep].mean(0), B[keep].mean(0)) if centre else (0.0, 0.0)
        Wi = _orthogonal((A[keep] - mA).T @ (B[keep] - mB), rank_tol=1e-8)
        cos = _row_cosines(((A[i] - mA) @ Wi)[None], B - mB)
        loo_cos[i] = cos[i]
        loo_rank[i] = int(np.sum(cos > cos[i]))  # 0: the right partner is the nearest
    return {"fit": observed, "null_mean": float(null.mean()),
            "null_q95": float(np.quantile(null, 0.95)), "p": permutation_pvalue(observed, null),
            "loo_cosine": float(np.nanmean(loo_cos)), "loo_top1": float(np.mean(loo_rank == 0)),
            "chance_top1": 1.0 / n, "null": null}


# ----------------------------------------------------------------------------- manifold


def knn_geodesic(X, k: int = 5, *, metric: str = "euclidean") -> tuple[np.ndarray, int]:
    """``(D [n, n], k_used)``: shortest-path distances along the symmetric ``k``-nearest-
    neighbour graph (edge weight = distance). ``k`` grows until the graph is connected, so
    every distance is finite; ``k_used`` says how far it had to grow."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 3:
        raise ValueError("a k-NN graph needs at least 3 points")
    D = squareform(pdist(X, metric))
    order = np.argsort(D, axis=1)[:, 1:]  # neighbours, nearest first (self excluded)
    for kk in range(min(max(1, int(k)), n - 1), n):
        rows = np.repeat(np.arange(n), kk)
        cols = order[:, :kk].ravel()
        W = np.zeros((n, n))
        W[rows, cols] = D[rows, cols]
        W = np.maximum(W, W.T)
        graph = csr_matrix(W)
        if connected_components(graph, directed=False)[0] == 1:
            return shortest_path(graph, method="D", directed=False), kk
    raise AssertionError("a complete graph is always connected")  # pragma: no cover


# ----------------------------------------------------------------------------- affect axes


def pole_direction(V, labels: Sequence[str], positive: Sequence[str], negative: Sequence[str]
                   ) -> np.ndarray:
    """Unit vector from the mean of the ``negative`` pole's rows of ``V`` to the ``positive``'s."""
    labels = list(labels)
    pos = [labels.index(x) for x in positive if x in labels]
    neg = [labels.index(x) for x in negative if x in labels]
    if not pos or not neg:
        raise ValueError(f"both poles need members among the labels: {positive} / {negative}")
    V = np.asarray(V, dtype=np.float64)
    d = V[pos].mean(axis=0) - V[neg].mean(axis=0)
    norm = np.linalg.norm(d)
    return d / norm if norm > 0 else d


def loo_pole_projection(V, labels: Sequence[str], positive: Sequence[str],
                        negative: Sequence[str]) -> np.ndarray:
    """Projection of each row of ``V`` on the pole direction built *without* that row (so a pole
    member is not scored by a direction it helped define). NaN where a pole would be empty."""
    labels = list(labels)
    out = np.full(len(labels), np.nan)
    V = np.asarray(V, dtype=np.float64)
    for i, lab in enumerate(labels):
        pos = [x for x in positive if x != lab]
        neg = [x for x in negative if x != lab]
        keep = [j for j in range(len(labels)) if j != i]
        try:
            d = pole_direction(V[keep], [labels[j] for j in keep], pos, neg)
        except ValueError:
            continue
        out[i] = V[i] @ d
    return out


# ----------------------------------------------------------------------------- clustering


def kmeans(X, k: int = 4, *, seed: int = 0, n_init: int = 20) -> np.ndarray:
    """Seeded k-means cluster labels of the rows of ``X`` (``k`` capped at the number of rows)."""
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=np.float64)
    k = min(int(k), len(X))
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(X)


def cluster_agreement(a, b, *, n_perm: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """``(adjusted Rand index, permutation p)`` between two labelings of the same items; the
    null is :func:`permuted_adjusted_rand` of ``b`` shuffled ``n_perm`` times."""
    from sklearn.metrics import adjusted_rand_score

    a, b = np.asarray(a), np.asarray(b)
    observed = float(adjusted_rand_score(a, b))
    null = permuted_adjusted_rand(a, b, random_permutations(len(b), n_perm, seed))
    return observed, permutation_pvalue(observed, null)


def permuted_adjusted_rand(a, b, perms: np.ndarray) -> np.ndarray:
    """``[P]`` adjusted Rand index of labels ``a [n]`` against ``b[perms[p]]`` for each row of
    ``perms [P, n]``, equal to the last bit to sklearn's ``adjusted_rand_score`` (Hubert &
    Arabie 1985) computed one permutation at a time, at a fraction of its validation cost.

    A permutation of ``b`` keeps both labelings' cluster sizes, so of sklearn's pair-confusion
    counts only the sum of squared contingency cells changes; it is counted for all
    permutations at once with one ``bincount``, in the same int64 arithmetic as sklearn.
    """
    _, ca = np.unique(np.asarray(a), return_inverse=True)
    _, cb = np.unique(np.asarray(b), return_inverse=True)
    perms = np.asarray(perms)
    P, n = perms.shape
    ka, kb = int(ca.max()) + 1, int(cb.max()) + 1
    cells = (np.arange(P)[:, None] * (ka * kb) + ca[None, :] * kb + cb[perms]).ravel()
    table = np.bincount(cells, minlength=P * ka * kb).reshape(P, ka * kb).astype(np.int64)
    squares = (table ** 2).sum(axis=1)
    n = np.int64(n)
    tp = squares - n
    fp = np.int64((np.bincount(cb).astype(np.int64) ** 2).sum()) - squares
    fn = np.int64((np.bincount(ca).astype(np.int64) ** 2).sum()) - squares
    tn = n ** 2 - fp - fn - squares
    num = (tp * tn - fn * fp).astype(np.float64)
    den = ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ari = 2.0 * num / den
    return np.where((fn == 0) & (fp == 0), 1.0, ari)


def hierarchical(X, *, metric: str = "cosine", method: str = "average"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(linkage matrix, leaf order)`` of agglomerative clustering of the rows of ``X``."""
    Z = hierarchy.linkage(pdist(np.asarray(X, dtype=np.float64), metric), method=method)
    return Z, hierarchy.leaves_list(Z)


__all__ = [
    "PCAResult",
    "RSAResult",
    "centroids",
    "cluster_agreement",
    "correspondence_test",
    "cosine_matrix",
    "euclidean_distances",
    "hierarchical",
    "kmeans",
    "knn_geodesic",
    "loo_pole_projection",
    "pca",
    "pearson",
    "permuted_adjusted_rand",
    "pole_direction",
    "procrustes_fit",
    "procrustes_test",
    "random_permutations",
    "rsa",
    "rsa_matrix",
    "silhouette",
    "silhouette_test",
    "unit_rows",
    "upper",
]
