"""How sure is "the best layer"? Item resampling of a probe's per-layer curve, and a max-over-layers
permutation test.

A per-layer AUROC curve that rises to a plateau has an argmax that moves with a handful of items,
and "the best of 30 layers" is selected after looking at all of them. Both are addressed on the
probe's **out-of-fold class probabilities** (``[n_layers, n_items, n_classes]``, from the same
cross-validated fits as the headline AUROC, no refitting):

- :func:`peak_intervals`: bootstrap over **items** (the independent unit); each resample scores
  every layer by the pooled out-of-fold AUROC and records the argmax layer and the first layer
  within ``tol`` of the maximum; percentile intervals of both (Efron & Tibshirani 1993, ch. 13).
- :func:`paired_difference_by_layer`: the per-layer difference of two probes scored on the same
  items (e.g. zero-shot minus few-shot prompt) with a paired item-bootstrap interval.
- :func:`max_layer_permutation`: the maximum over layers of the pooled AUROC against the same
  maximum with the labels permuted (a max-statistic permutation test, which controls for the
  number of layers looked at; Nichols & Holmes 2002, *Hum. Brain Mapp.* 15(1)).

The pooled out-of-fold AUROC (all items scored together) can differ slightly from the headline
mean of per-fold AUROCs; the intervals are about where the peak lies, not about its height.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

PEAK_TOL = 0.005


def pooled_auroc_by_layer(proba: np.ndarray, y, classes) -> np.ndarray:
    """``[n_layers]`` AUROC of out-of-fold ``proba`` (``[n_layers, n, k]``, columns = ``classes``):
    binary AUROC of ``classes[1]`` for two classes, else macro one-vs-rest over the classes present
    (rank-sum formula, ties averaged). Items with a NaN probability are dropped."""
    proba = np.asarray(proba, dtype=float)
    y = np.asarray(y)
    keep = ~np.isnan(proba).any(axis=(0, 2))
    proba, y = proba[:, keep], y[keep]
    cols = [1] if len(classes) == 2 else range(len(classes))
    per_class = []
    for j in cols:
        pos = y == classes[j]
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(proba[:, :, j], axis=1)
        per_class.append((ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    if not per_class:
        return np.full(proba.shape[0], np.nan)
    return np.mean(per_class, axis=0)


def resampled_auroc_by_layer(proba: np.ndarray, y, classes, rows: np.ndarray) -> np.ndarray:
    """``[B, n_layers]``: :func:`pooled_auroc_by_layer` of every resample ``rows[b]`` (item
    indices, ``rows [B, m]``), the same numbers bit for bit, without ranking each resample: the
    items are sorted once per layer and class, and a resample's average ranks follow from how
    often it drew each item (cumulative counts over the sorted values, ties grouped). Ranks are
    half-integers, so the rank sums are exact in any order. Resamples that miss a class, and
    probabilities with NaNs, take the one-resample path."""
    proba, y, rows = np.asarray(proba, dtype=float), np.asarray(y), np.asarray(rows)
    if np.isnan(proba).any():
        return np.stack([pooled_auroc_by_layer(proba[:, r], y[r], classes) for r in rows])
    n_boot, m = rows.shape
    counts = np.zeros((n_boot, proba.shape[1]))
    np.add.at(counts, (np.repeat(np.arange(n_boot), m), rows.ravel()), 1.0)
    cols = [1] if len(classes) == 2 else range(len(classes))
    per_class, present = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in cols:
            pos = y == classes[j]
            n_pos = counts[:, pos].sum(axis=1)
            sums = np.stack([_rank_sums(proba[layer, :, j], counts, pos)
                             for layer in range(proba.shape[0])], axis=1)  # [B, L]
            per_class.append((sums.T - n_pos * (n_pos + 1) / 2) / (n_pos * (m - n_pos)))
            present.append((n_pos > 0) & (n_pos < m))
    out = np.full((n_boot, proba.shape[0]), np.nan)
    full = np.all(present, axis=0)
    out[full] = np.mean(np.asarray(per_class)[:, :, full], axis=0).T
    for b in np.flatnonzero(~full):
        out[b] = pooled_auroc_by_layer(proba[:, rows[b]], y[rows[b]], classes)
    return out


def _rank_sums(values: np.ndarray, counts: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``[B]``: per resample (``counts [B, n]``: how often it drew each item), the sum over its
    positive draws of their average ranks among all its draws by ``values [n]``."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1
    c = counts[:, order]
    in_group = np.add.reduceat(c, starts, axis=1)  # [B, groups]
    rank = (np.cumsum(in_group, axis=1) - (in_group - 1) / 2)[:, group]  # average rank of each
    return (c * rank * pos[order]).sum(axis=1)


def _bootstrap_rows(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` item resamples, drawn one resample at a time from ``default_rng(seed)``
    (the stream the earlier per-resample loops used)."""
    rng = np.random.default_rng(seed)
    return np.array([rng.integers(0, n, size=n) for _ in range(n_boot)]).reshape(n_boot, n)


def _layer_interval(layers: Sequence[int], ci: float) -> tuple[float, float]:
    """Percentile interval of resampled layer numbers that is itself a pair of layers (the lower
    bound rounded down, the upper up: no interpolation between layers)."""
    values = np.asarray(layers, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - ci) / 2
    return (float(np.quantile(values, alpha, method="lower")),
            float(np.quantile(values, 1 - alpha, method="higher")))


def _peaks(curve: np.ndarray, tol: float) -> tuple[int, int]:
    best = int(np.nanargmax(curve))
    first = int(np.flatnonzero(curve >= curve[best] - tol)[0])
    return best, first


def peak_intervals(proba: np.ndarray, y, classes, layers: Sequence[int] | np.ndarray, *,
                   n_boot: int = 1000, tol: float = PEAK_TOL, ci: float = 0.95,
                   seed: int = 0) -> dict:
    """Percentile intervals (over item resamples) of the argmax layer and of the first layer within
    ``tol`` of the maximum, plus ``argmax_stability``: the share of resamples whose argmax is the
    observed one. Keys: ``argmax_lo, argmax_hi, first_within_lo, first_within_hi,
    argmax_stability, n_boot, ci_unit``. Layers are returned as layer numbers."""
    layers = np.asarray(layers)
    y = np.asarray(y)
    observed, _ = _peaks(pooled_auroc_by_layer(proba, y, classes), tol)
    argmaxes, firsts = [], []
    for curve in resampled_auroc_by_layer(proba, y, classes, _bootstrap_rows(len(y), n_boot, seed)):
        if not np.isfinite(curve).any():
            continue
        best, first = _peaks(curve, tol)
        argmaxes.append(layers[best])
        firsts.append(layers[first])
    a_lo, a_hi = _layer_interval(argmaxes, ci)
    f_lo, f_hi = _layer_interval(firsts, ci)
    return {"argmax_lo": a_lo, "argmax_hi": a_hi, "first_within_lo": f_lo,
            "first_within_hi": f_hi,
            "argmax_stability": float(np.mean(np.asarray(argmaxes) == layers[observed])),
            "n_boot": len(argmaxes), "ci_unit": "items"}


def _permuted_auroc_by_layer(proba: np.ndarray, labels: list[np.ndarray], classes) -> np.ndarray:
    """``[P, n_layers]``: :func:`pooled_auroc_by_layer` of ``proba`` under each relabelling in
    ``labels``, bit for bit. A relabelling leaves the ranks of the probabilities unchanged, so
    each class is ranked once and its rank sums for every relabelling come from one product
    with the 0/1 membership matrix (sums of half-integers: exact)."""
    if np.isnan(proba).any() or not len(labels):
        return np.array([pooled_auroc_by_layer(proba, y, classes) for y in labels]).reshape(
            len(labels), proba.shape[0])
    y = np.asarray(labels)  # [P, n]
    cols = [1] if len(classes) == 2 else range(len(classes))
    per_class = []
    for j in cols:
        pos = (y == classes[j]).astype(float)
        n_pos = int(pos[0].sum())  # a relabelling keeps the class counts
        n_neg = y.shape[1] - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(proba[:, :, j], axis=1)  # [L, n]
        per_class.append((ranks @ pos.T - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    if not per_class:
        return np.full((len(y), proba.shape[0]), np.nan)
    return np.mean(per_class, axis=0).T


def max_layer_permutation(proba: np.ndarray, y, classes, *, n_perm: int = 1000,
                          seed: int = 0) -> tuple[float, float, float]:
    """``(observed max over layers, p, null 95th percentile)``: the maximum over layers of the
    pooled out-of-fold AUROC against its distribution with the item labels permuted (the same
    permutation applied to every layer, so the null is that of the best of all layers)."""
    y = np.asarray(y)
    observed = float(np.nanmax(pooled_auroc_by_layer(proba, y, classes)))
    rng = np.random.default_rng(seed)
    permuted = [rng.permutation(y) for _ in range(n_perm)]
    null = np.nanmax(_permuted_auroc_by_layer(np.asarray(proba, dtype=float), permuted, classes),
                     axis=1)
    p = float((np.sum(null >= observed) + 1) / (n_perm + 1))
    return observed, p, float(np.quantile(null, 0.95))


def paired_difference_by_layer(proba_a: np.ndarray, proba_b: np.ndarray, y, classes, *,
                               n_boot: int = 1000, ci: float = 0.95, seed: int = 0
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(difference, low, high)``, each ``[n_layers]``: pooled out-of-fold AUROC of ``proba_a``
    minus that of ``proba_b`` (both ``[n_layers, n, k]`` for the same items, e.g. one probe under
    two prompts) with a percentile interval from resampling **items**, the same resample for both
    (paired). The probes are not refitted: the interval is over the scored items only.

    Raises ``ValueError`` if the two arrays differ in shape."""
    a, b = np.asarray(proba_a, dtype=float), np.asarray(proba_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired probabilities differ in shape: {a.shape} vs {b.shape}")
    y = np.asarray(y)
    observed = pooled_auroc_by_layer(a, y, classes) - pooled_auroc_by_layer(b, y, classes)
    rows = _bootstrap_rows(len(y), n_boot, seed)
    boots = (resampled_auroc_by_layer(a, y, classes, rows)
             - resampled_auroc_by_layer(b, y, classes, rows))
    alpha = (1 - ci) / 2
    lo, hi = np.nanquantile(boots, [alpha, 1 - alpha], axis=0)
    return observed, lo, hi


__all__ = ["PEAK_TOL", "max_layer_permutation", "paired_difference_by_layer", "peak_intervals",
           "pooled_auroc_by_layer", "resampled_auroc_by_layer"]
