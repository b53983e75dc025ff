"""llmct.analysis.stats: intervals over the right unit, permutation nulls, rank AUROC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from llmct.analysis.stats import (
    auroc,
    bootstrap_ci,
    cluster_bootstrap_mean,
    macro_ovr_auroc,
    paired_permutation_pvalue,
    permutation_pvalue,
    two_way_bootstrap_mean,
)


def _width(iv) -> float:
    return iv.hi - iv.lo


def test_cluster_bootstrap_ignores_repeated_observations_of_a_unit():
    """Ten copies of each unit's value carry no more information than one: the cluster interval
    stays as wide as over the units, while an observation bootstrap shrinks by about sqrt(10)."""
    rng = np.random.default_rng(1)
    unit_values = rng.normal(size=20)
    values = np.repeat(unit_values, 10)
    units = np.repeat(np.arange(20), 10)
    clustered = cluster_bootstrap_mean(values, units, unit="items", n_boot=4000)
    per_unit = bootstrap_ci(unit_values, n_boot=4000)
    naive = bootstrap_ci(values, n_boot=4000)
    assert clustered.estimate == pytest.approx(unit_values.mean())
    assert _width(clustered) == pytest.approx(_width(per_unit), rel=0.15)
    assert _width(naive) < 0.5 * _width(clustered)
    assert clustered.unit == "items" and clustered.n_units == "20"


def test_two_way_bootstrap_covers_both_factors():
    """Values that vary with the source (row) and with the target (column): the two-way interval
    is at least as wide as either one-way cluster interval."""
    rng = np.random.default_rng(2)
    row_eff, col_eff = rng.normal(size=12), rng.normal(size=12)
    r, c = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    r, c = r.ravel(), c.ravel()
    v = row_eff[r] + col_eff[c] + 0.1 * rng.normal(size=r.size)
    both = two_way_bootstrap_mean(v, r, c, n_boot=3000)
    by_row = cluster_bootstrap_mean(v, r, n_boot=3000)
    by_col = cluster_bootstrap_mean(v, c, n_boot=3000)
    assert both.estimate == pytest.approx(v.mean())
    assert _width(both) >= 0.95 * max(_width(by_row), _width(by_col))
    assert both.n_units == "12x12"


def test_two_way_equals_one_way_when_only_rows_vary():
    r = np.repeat(np.arange(10), 8)
    c = np.tile(np.arange(8), 10)
    v = r.astype(float)  # depends on the row only
    both = two_way_bootstrap_mean(v, r, c, n_boot=4000, seed=3)
    rows = cluster_bootstrap_mean(v, r, n_boot=4000, seed=3)
    assert _width(both) == pytest.approx(_width(rows), rel=0.15)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        cluster_bootstrap_mean([1.0, 2.0], [0])
    with pytest.raises(ValueError, match="differ in length"):
        two_way_bootstrap_mean([1.0, 2.0], [0, 1], [0])


def test_paired_permutation_pvalue():
    rng = np.random.default_rng(4)
    assert paired_permutation_pvalue(rng.normal(1.0, 0.5, size=30), n_perm=2000) < 0.01
    assert paired_permutation_pvalue(rng.normal(0.0, 1.0, size=30), n_perm=2000) > 0.05
    # per-unit sign flips: 3 units with a large effect each cannot give p below 1/8 (+1 corr.)
    d = np.repeat([1.0, 1.2, 0.9], 50)
    p = paired_permutation_pvalue(d, units=np.repeat([0, 1, 2], 50), n_perm=4000)
    assert p >= 0.2


def test_permutation_pvalue_is_never_zero():
    assert permutation_pvalue(10.0, np.zeros(99)) == pytest.approx(0.01)


def test_auroc_matches_sklearn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=50)
    s = rng.normal(size=50) + y
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    y3 = rng.integers(0, 3, size=60)
    proba = rng.dirichlet(np.ones(3), size=60)
    assert macro_ovr_auroc(y3, proba) == pytest.approx(
        roc_auc_score(y3, proba, multi_class="ovr", average="macro"))


def test_centroid_difference_jackknife_interval_is_centred_and_shrinks_with_items():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "08_geometry" / "run.py"
    spec = importlib.util.spec_from_file_location("geometry08", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    rng = np.random.default_rng(0)
    emotions = ["w", "x", "y", "z"]
    widths = []
    for per_cell in (6, 60):
        sets = np.repeat(["a", "b"], 4 * per_cell)
        labels = np.tile(np.repeat(emotions, per_cell), 2)
        means = rng.normal(size=(4, 8)) * 2
        X = rng.normal(size=(len(sets), 8)) + means[[emotions.index(e) for e in labels]] + 5
        rows, _ = m.centroid_rows(X, sets, labels, emotions, 100, 0)
        est = [r["difference"] for r in rows if r["treatment"] == "uncentred"][0]
        lo, hi = m.centroid_difference_ci(X, sets, labels, emotions, "uncentred")
        assert (lo + hi) / 2 == pytest.approx(est)  # centred on 08's own estimate
        widths.append(hi - lo)
    assert widths[1] < widths[0]
