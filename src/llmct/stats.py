"""Small, seeded statistics used across experiments: bootstrap CIs and permutation tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_ci(values, statistic: Callable = np.mean, n_boot: int = 2000, ci: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, low, high)``: percentile bootstrap over the first axis of ``values``."""
    values = np.asarray(values)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    stats = np.array([statistic(values[i]) for i in idx])
    alpha = (1 - ci) / 2
    return float(statistic(values)), float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def bootstrap_indices(n: int, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` resampling indices (for statistics of several aligned arrays)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(samples, ci: float = 0.95) -> tuple[float, float]:
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
