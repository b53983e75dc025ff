"""analysis/capacity.py: each answer-scored task's accuracy against chance decides testability."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SLUG = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def capacity():
    spec = importlib.util.spec_from_file_location("capacity", ROOT / "analysis" / "capacity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_capacity_table_decides_testability_from_the_interval(capacity):
    table = capacity.capacity_table(SLUG)
    assert set(table.experiment) == {"05_patching", "06_knockout", "11_steering"}
    assert ((table.ci_lo <= table.accuracy) & (table.accuracy <= table.ci_hi)).all()
    assert (table.testable == (table.ci_lo > table.chance)).all()
    assert table.ci_unit.notna().all()


def test_clean_accuracy_agrees_with_the_knockout_summary(capacity):
    table = capacity.capacity_table(SLUG).set_index("task")
    summary = pd.read_csv(ROOT / "experiments/06_knockout/outputs" / SLUG / "knockout_summary.csv")
    for name in ("set_a", "set_b"):
        expected = summary.loc[summary.set == name, "accuracy_clean"].iloc[0]
        assert table.loc[f"name the emotion ({name}, clean)", "accuracy"] == pytest.approx(expected, abs=1e-5)


def test_committed_capacity_table_is_current(capacity):
    committed = pd.read_csv(ROOT / "analysis/outputs" / SLUG / "capacity.csv")
    fresh = capacity.capacity_table(SLUG)
    pd.testing.assert_frame_equal(committed[["task", "testable"]], fresh[["task", "testable"]])
    assert committed.accuracy.round(4).tolist() == fresh.accuracy.round(4).tolist()
