"""The experiment contract (issue #12): ``headline.csv`` with fixed columns, written by the
harness when a run succeeds, declared inputs, and committed headlines equal to their CSVs."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from llmct.errors import LLMCTError
from llmct.io import headline as hl
from llmct.runs import Outputs, experiment_headline, experiment_main

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p for p in (ROOT / "experiments").glob("[0-9][0-9]_*") if p.is_dir())


def _claims():
    return [hl.Claim("a_auroc", "probe AUROC", 0.91, 0.88, 0.94, "items", "text-only", 0.75,
                     "beats"),
            hl.Claim("a_layer", "where", "h@L3")]


def test_roundtrip_has_the_contract_columns_and_intervals_as_lo_hi(tmp_path):
    path = hl.write_headline(tmp_path, "02_probes", "tiny", _claims())
    frame = hl.read_headline(path)
    assert tuple(frame.columns) == hl.COLUMNS == (
        "experiment", "model", "claim_id", "metric", "value", "ci_lo", "ci_hi", "ci_unit",
        "control", "control_value", "verdict")
    assert list(frame.claim_id) == ["a_auroc", "a_layer"]
    assert [p.name for p in tmp_path.iterdir()] == ["headline.csv"]  # no temporary file left
    cols = hl.as_columns(frame)
    assert cols == {"a_auroc": 0.91, "a_auroc_lo": 0.88, "a_auroc_hi": 0.94, "a_layer": "h@L3"}


def test_repeated_claim_id_and_a_foreign_table_are_errors(tmp_path):
    with pytest.raises(LLMCTError, match=r"repeated: \['x'\]"):
        hl.headline_frame("e", "m", [hl.Claim("x", "a", 1), hl.Claim("x", "b", 2)])
    bad = tmp_path / "headline.csv"
    pd.DataFrame({"experiment": ["e"], "value": [1]}).to_csv(bad, index=False)
    with pytest.raises(LLMCTError, match=re.escape(str(bad)) + ".*missing columns"):
        hl.read_headline(bad)


def test_lookups_name_what_is_missing(tmp_path):
    df = pd.DataFrame({"metric": ["rsa r; p by shuffles"], "value": [0.3], "kind": ["proj"]})
    assert hl.metric(df, "rsa r", kind="proj") == 0.3
    with pytest.raises(hl.Missing, match="no row"):
        hl.value(df, "value", kind="centred")
    with pytest.raises(hl.Missing, match="no column 'layer'"):
        hl.rows(df, layer=3)
    with pytest.raises(hl.Missing, match="no x.csv"):
        hl.table(tmp_path, "x.csv")


@pytest.mark.parametrize("exp", [e for e in EXPERIMENTS if e.name != "12_summary"],
                         ids=lambda p: p.name)
def test_every_experiment_declares_its_headline_and_earlier_inputs(exp):
    module = experiment_headline(exp)
    assert module is not None, f"{exp.name} has no headline.py"
    names = {e.name for e in EXPERIMENTS}
    for inp in module.INPUTS:
        assert inp in names and inp < exp.name, f"{exp.name}: INPUTS names {inp!r}"


def test_committed_headlines_equal_their_csvs():
    spec = importlib.util.spec_from_file_location("headlines_script",
                                                  ROOT / "scripts" / "headlines.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pairs = mod.result_folders()
    assert len(pairs) >= 24  # 12 experiments x 2 models
    problems = {str(f.relative_to(ROOT)): p for e, f in pairs if (p := mod.check(e, f))}
    assert not problems


def test_harness_writes_the_headline_when_a_run_succeeds(tmp_path, monkeypatch):
    exp = tmp_path / "07_fake"
    exp.mkdir()
    (exp / "headline.py").write_text(
        "from llmct.io.headline import Claim, table\nINPUTS = ()\n"
        "def claims(folder):\n    t = table(folder, 'r.csv')\n"
        "    return [Claim('fake_max', 'max of x', float(t.x.max()))], []\n")
    (exp / "run.py").write_text("")
    out_dir = exp / "outputs" / "tiny"

    def main(argv=None):
        out = Outputs(out_dir)
        out.csv("r.csv", pd.DataFrame({"x": [1.0, 3.0]}))
        if argv == ["fail"]:
            raise LLMCTError("boom")
        return 0

    main.__globals__["__file__"] = str(exp / "run.py")  # the harness finds the folder from it
    try:
        wrapped = experiment_main(main)
        with pytest.raises(LLMCTError):
            wrapped(["fail"])
        assert not out_dir.exists()
        assert wrapped() == 0
    finally:
        main.__globals__["__file__"] = __file__
    frame = hl.read_headline(out_dir / "headline.csv")
    assert frame.claim_id.tolist() == ["fake_max"] and frame.value.iloc[0] == 3.0
    assert frame.experiment.iloc[0] == "07_fake" and frame.model.iloc[0] == "tiny"
    assert math.isnan(frame.ci_lo.iloc[0])
