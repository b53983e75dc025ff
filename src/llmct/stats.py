"""Small, seeded statistics used across experiments: bootstrap CIs, permutation tests, rank AUROC.

Every function takes an explicit seed, so a number quoted in a README regenerates exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata


class Interval(NamedTuple):
    """A point estimate with a percentile interval; unpacks as ``(estimate, low, high)``."""

    estimate: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def bootstrap_ci(values, statistic: Callable = np.mean, n_boot: int = 2000, ci: float = 0.95,
                 seed: int = 0) -> Interval:
    """``(estimate, low, high)``: percentile bootstrap over the first axis of ``values``.

    ``values`` may be 1-D, or 2-D with one row per unit (e.g. ``[label, score]`` rows for an AUROC).
    Resamples whose statistic is not finite (e.g. an AUROC of one class) are dropped.
    """
    values = np.asarray(values)
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    idx = bootstrap_indices(len(values), n_boot, seed)
    boots = np.array([statistic(values[i]) for i in idx], dtype=float)
    lo, hi = percentile_ci(boots, ci)
    return Interval(float(statistic(values)), lo, hi)


def bootstrap_indices(n: int, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` resampling indices (for statistics of several aligned arrays)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(samples, ci: float = 0.95) -> tuple[float, float]:
    """``(low, high)`` percentiles of the finite ``samples`` (NaN if none)."""
    alpha = (1 - ci) / 2
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(samples, alpha)), float(np.quantile(samples, 1 - alpha))


def permutation_pvalue(observed: float, null: np.ndarray, alternative: str = "greater") -> float:
    """Permutation p-value with the +1 correction (never exactly zero)."""
    null = np.asarray(null)
    if alternative == "greater":
        hits = np.sum(null >= observed)
    elif alternative == "less":
        hits = np.sum(null <= observed)
    else:
        hits = np.sum(np.abs(null) >= abs(observed))
    return float((hits + 1) / (len(null) + 1))


def permutation_test(statistic: Callable[[np.ndarray], float], labels, *, n_perm: int = 1000,
                     seed: int = 0, alternative: str = "greater"
                     ) -> tuple[float, float, np.ndarray]:
    """``(observed, p, null)``: ``statistic(labels)`` against the same with labels permuted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    observed = float(statistic(labels))
    null = np.array([statistic(rng.permutation(labels)) for _ in range(n_perm)], dtype=float)
    return observed, permutation_pvalue(observed, null, alternative), null


def auroc(y_true, score) -> float:
    """Binary AUROC by the rank-sum (Mann-Whitney) formula, ties averaged; NaN with one class."""
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=float))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_ovr_auroc(y_true, proba: np.ndarray, classes=None) -> float:
    """Macro one-vs-rest AUROC of class probabilities ``proba`` [n, k] (column j = ``classes[j]``).

    Equals ``sklearn.metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro")`` when
    every class occurs in ``y_true``; classes absent from ``y_true`` are skipped.
    """
    y = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    classes = np.arange(proba.shape[1]) if classes is None else np.asarray(classes)
    vals = [auroc(y == c, proba[:, j]) for j, c in enumerate(classes) if np.any(y == c)]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def match_pairs(values, treated, *, caliper: float, seed: int = 0) -> np.ndarray:
    """Indices of a covariate-matched subsample: each treated item (in seeded random order) is
    paired with the unused control whose ``values`` is nearest, if within ``caliper``.

    Used to remove a confound (e.g. token length) before re-running a classifier: after matching,
    the covariate alone should no longer separate the groups.
    """
    values = np.asarray(values, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    controls = list(np.flatnonzero(~treated))
    keep: list[int] = []
    for i in np.random.default_rng(seed).permutation(np.flatnonzero(treated)):
        if not controls:
            break
        dist = np.abs(values[controls] - values[i])
        j = int(np.argmin(dist))
        if dist[j] <= caliper:
            keep.extend([int(i), int(controls.pop(j))])
    return np.array(sorted(keep), dtype=np.int64)


__all__ = [
    "Interval",
    "auroc",
    "bootstrap_ci",
    "bootstrap_indices",
    "macro_ovr_auroc",
    "match_pairs",
    "percentile_ci",
    "permutation_pvalue",
    "permutation_test",
]
