"""The committed summaries of 05 (patching) and 06 (knockout) are a pure function of their
committed per-pair / per-item tables: ``--from-pairs`` / ``--from-items`` recompute them without a
model, and the result equals the committed files (so a reader can re-derive every interval)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from llmct.errors import LLMCTError

ROOT = Path(__file__).resolve().parents[1]
SLUG = "smollm2-135m-instruct"
CASES = [
    ("05_patching", "--from-pairs", "patching_pairs.csv.gz",
     ["patching_summary.csv", "patching_vs_controls.csv"]),
    ("06_knockout", "--from-items", "knockout_items.csv.gz",
     ["knockout_summary.csv", "knockout_critical.csv"]),
]


def load_experiment(name: str):
    spec = importlib.util.spec_from_file_location(f"resum_{name}", ROOT / "experiments" / name /
                                                  "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "flag", "table", "summaries"), CASES)
def test_summaries_recomputed_from_committed_table(tmp_path, name, flag, table, summaries):
    committed = ROOT / "experiments" / name / "outputs" / SLUG
    out = tmp_path / "out"
    assert load_experiment(name).main([flag, str(committed / table), "--out", str(out)]) == 0
    for csv in summaries:
        pd.testing.assert_frame_equal(pd.read_csv(out / csv), pd.read_csv(committed / csv),
                                      check_exact=False, rtol=1e-9, atol=1e-12)
        assert "ci_unit" in pd.read_csv(out / csv).columns


@pytest.mark.parametrize(("name", "flag", "table", "summaries"), CASES)
def test_resummarise_refuses_a_foreign_table(tmp_path, name, flag, table, summaries):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(LLMCTError, match=r"bad\.csv: not a .* file \(missing columns"):
        load_experiment(name).main([flag, str(bad), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
