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


# -- resampling over the independent unit ------------------------------------------------------
#
# Observations that share an item (a patching pair shares its source and its target item; a
# knockout cell repeats the same items at every layer) are not independent: a bootstrap over the
# observations understates the interval. These helpers resample the *units* (items,
# conversations) and say so: every interval they return carries its unit.

class UnitInterval(NamedTuple):
    """A point estimate with a percentile interval over an independent unit.

    ``unit`` names what was resampled (e.g. ``"source x target items"``, ``"conversations"``);
    ``n_units`` is the number of distinct units (a tuple for a two-way resample as a string
    ``"16x16"``). Unpacks as ``(estimate, lo, hi, unit, n_units)``.
    """

    estimate: float
    lo: float
    hi: float
    unit: str
    n_units: str

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.lo:.3f}, {self.hi:.3f}] ({self.unit}, n={self.n_units})"


def _codes(labels) -> tuple[np.ndarray, int]:
    """Integer codes ``0..k-1`` of ``labels`` and ``k``."""
    _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1 if codes.size else 0


def cluster_bootstrap_mean(values, units, *, unit: str = "items", n_boot: int = 2000,
                           ci: float = 0.95, seed: int = 0) -> UnitInterval:
    """Mean of ``values`` [n] with a percentile bootstrap that resamples whole ``units`` [n].

    Each bootstrap draws ``k`` units with replacement (``k`` = number of distinct units) and
    averages every observation of the drawn units, weighted by how often the unit was drawn
    (the cluster bootstrap; Davison & Hinkley 1997, *Bootstrap Methods*, sec. 3.8). With one
    observation per unit it equals the ordinary bootstrap of the mean.

    Raises ``ValueError`` if ``values`` and ``units`` differ in length.
    """
    v = np.asarray(values, dtype=float).ravel()
    codes, k = _codes(units)
    if v.size != codes.size:
        raise ValueError(f"values ({v.size}) and units ({codes.size}) differ in length")
    if v.size == 0:
        return UnitInterval(float("nan"), float("nan"), float("nan"), unit, "0")
    sums = np.bincount(codes, weights=v, minlength=k)
    counts = np.bincount(codes, minlength=k).astype(float)
    draws = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_boot)
    boots = (draws @ sums) / (draws @ counts)
    lo, hi = percentile_ci(boots, ci)
    return UnitInterval(float(v.mean()), lo, hi, unit, str(k))


def two_way_bootstrap_mean(values, rows, cols, *, unit: str = "row x column items",
                           n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> UnitInterval:
    """Mean of ``values`` [n] over crossed units, resampling ``rows`` and ``cols`` independently.

    For source x target designs (activation patching: every observation is one source item
    patched into one target item) both factors are random samples of items. Each bootstrap draws
    the row units and the column units with replacement; an observation is weighted by the
    product of its row's and its column's draw counts (the "pigeonhole" bootstrap of crossed
    random effects; Owen 2007, *Ann. Appl. Stat.* 1(2), arXiv:0709.1548). It is conservative:
    it includes both sources of variation, as a source-only resample does not.

    Raises ``ValueError`` if the three arrays differ in length.
    """
    v = np.asarray(values, dtype=float).ravel()
    r, kr = _codes(rows)
    c, kc = _codes(cols)
    if not v.size == r.size == c.size:
        raise ValueError(f"values ({v.size}), rows ({r.size}) and cols ({c.size}) differ in length")
    if v.size == 0:
        return UnitInterval(float("nan"), float("nan"), float("nan"), unit, "0")
    total = np.zeros((kr, kc))
    count = np.zeros((kr, kc))
    np.add.at(total, (r, c), v)
    np.add.at(count, (r, c), 1.0)
    rng = np.random.default_rng(seed)
    wr = rng.multinomial(kr, np.full(kr, 1.0 / kr), size=n_boot).astype(float)
    wc = rng.multinomial(kc, np.full(kc, 1.0 / kc), size=n_boot).astype(float)
    num = np.einsum("br,rc,bc->b", wr, total, wc)
    den = np.einsum("br,rc,bc->b", wr, count, wc)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = num / den
    lo, hi = percentile_ci(boots, ci)
    return UnitInterval(float(v.mean()), lo, hi, unit, f"{kr}x{kc}")


def paired_permutation_pvalue(differences, units=None, *, n_perm: int = 10000,
                              seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of the mean of paired ``differences`` [n].

    Under the null of no effect each unit's difference is symmetric about 0, so its sign is
    exchangeable. With ``units`` given, the observations of one unit are summed first and the
    sign is flipped per unit (the unit is what is exchangeable). p uses the +1 correction.
    """
    d = np.asarray(differences, dtype=float).ravel()
    if units is not None:
        codes, k = _codes(units)
        d = np.bincount(codes, weights=d, minlength=k)
    if d.size == 0:
        return float("nan")
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, d.size))
    null = np.abs(signs @ d)
    return permutation_pvalue(abs(float(d.sum())), null, "greater")


__all__ = [
    "Interval",
    "auroc",
    "bootstrap_ci",
    "bootstrap_indices",
    "cluster_bootstrap_mean",
    "macro_ovr_auroc",
    "match_pairs",
    "paired_permutation_pvalue",
    "percentile_ci",
    "permutation_pvalue",
    "permutation_test",
    "two_way_bootstrap_mean",
    "UnitInterval",
]
