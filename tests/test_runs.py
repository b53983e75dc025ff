"""llmct.runs: experiment plumbing -- results folders never silently overwritten and staged until
the run succeeds, one-line errors, output and activation folders, story sets, options checked
against the model's config before it loads, stored tables, run records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llmct import runs
from llmct.errors import LLMCTError, UsageError
from llmct.runs import Outputs, experiment_main, run_main


def _args(*argv: str):
    return runs.experiment_parser("test", sets=["set_a", "set_b"]).parse_args(list(argv))


def test_outputs_refuse_to_overwrite_without_overwrite(tmp_path):
    out = Outputs(tmp_path / "res")
    out.claim(["a.csv", "b.csv"])  # nothing there yet: creates the folder (written in place)
    out.record("a.csv", {"x": 1})
    assert json.loads((tmp_path / "res" / "a.csv").read_text()) == {"x": 1}
    assert out.path("a.csv") == tmp_path / "res" / "a.csv"  # a file of this run: writable again
    again = Outputs(tmp_path / "res")
    with pytest.raises(LLMCTError, match=r"res already holds a\.csv; refusing to overwrite "
                       r"results\. Pass --overwrite, or --out NEW_FOLDER to keep both\."):
        again.claim(["a.csv", "c.csv"])
    with pytest.raises(LLMCTError, match=r"a\.csv exists; refusing to overwrite \(pass --overwrite\)"):
        again.path("a.csv")
    replace = Outputs(tmp_path / "res", overwrite=True)
    replace.claim(["a.csv"])
    replace.csv("a.csv", pd.DataFrame({"v": [0.123456789]}))
    assert (tmp_path / "res" / "a.csv").read_text() == "v\n0.123457\n"  # float_format %.6g


def test_a_results_folder_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "res").write_text("mine")
    with pytest.raises(UsageError, match="res is a file, not a folder; pass another --out"):
        Outputs(tmp_path / "res").claim(["a.csv"])


def test_files_are_staged_until_the_run_returns(tmp_path):
    folder = tmp_path / "out"
    seen = {}

    @experiment_main
    def main(argv=None):
        out = Outputs(folder, overwrite=bool(argv))
        out.claim(["r.txt"])
        staged = out.path("r.txt")
        staged.write_text(f"run {argv}")
        seen.update(staged=staged, during=(folder / "r.txt").exists())
        if argv == ["fail"]:
            raise LLMCTError("boom")
        return 0

    with pytest.raises(LLMCTError, match="boom"):
        main(["fail"])
    assert not (folder / "r.txt").exists() and not seen["staged"].exists()
    assert main() == 0
    assert seen["during"] is False and seen["staged"].parent.name.startswith(".out.partial-")
    assert (folder / "r.txt").read_text() == "run None" and not seen["staged"].parent.exists()
    with pytest.raises(LLMCTError, match="already holds r.txt"):
        main()
    with pytest.raises(LLMCTError, match="boom"):  # --overwrite, but the run fails: kept
        main(["fail"])
    assert (folder / "r.txt").read_text() == "run None"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_run_main_reports_one_line_named_after_the_experiment_folder(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.delenv("LLMCT_TRACEBACK", raising=False)

    def main(argv):
        raise UsageError(f"--layers {argv[0]}: out of range")

    assert run_main(main, tmp_path / "09_vectors" / "run.py", ["99"]) == 2
    assert capsys.readouterr().err == "09_vectors: error: --layers 99: out of range\n"
    assert run_main(lambda argv: 0, tmp_path / "x" / "run.py", []) == 0


def test_output_and_activation_folders(tmp_path):
    exp = tmp_path / "experiments" / "05_patching"
    assert runs.out_dir_for(exp, _args()) == exp / "outputs" / "smollm2-135m-instruct"
    assert runs.out_dir_for(exp, _args("--out", "mine")) == Path("mine")
    act = runs.activation_dir_for(exp, _args("--model", "org/Tiny-LM"))
    assert act == (tmp_path / "experiments" / "01_extract" / "outputs" / "tiny-lm" /
                   "activations" / "fewshot")
    own = runs.activation_dir_for(exp, _args("--activations", str(tmp_path / "a"), "--stimuli",
                                             "d/mine.jsonl"), prompt="raw")
    assert own == tmp_path / "a" / "raw-mine"


def test_story_sets_and_their_folders(tmp_path):
    parser = runs.experiment_parser("t", sets=list(runs.V1_STORY_SETS))
    v1, v2 = parser.parse_args([]), parser.parse_args(["--sets", "stories_v2", "neutral_stories"])
    assert runs.story_sets(v1) == ("stories", "neutral_dialogues")
    assert runs.story_out_dir(tmp_path, v1) == tmp_path / "outputs" / "smollm2-135m-instruct"
    assert runs.story_out_dir(tmp_path, v2) == (tmp_path / "outputs" / "smollm2-135m-instruct" /
                                                "stories_v2")
    with pytest.raises(LLMCTError, match=r"--sets takes two names.*got \['stories'\]"):
        runs.story_sets(parser.parse_args(["--sets", "stories"]))


def test_layers_are_checked_against_the_config_before_the_model_loads(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"n_layer": 4}))
    assert runs.model_n_layers(str(folder)) == 4
    assert runs.model_n_layers("default") == 30 and runs.model_n_layers("gemma3-270m") == 18
    assert runs.model_n_layers(str(tmp_path / "none")) is None
    (folder / "config.json").write_text(json.dumps({"text_config": {"num_hidden_layers": 6}}))
    assert runs.model_n_layers(str(folder)) == 6
    runs.check_args(_args("--model", str(folder), "--layers", "0", "5", "-6"))
    with pytest.raises(UsageError, match=r"--layers 6 -7: out of range; '.*model' has 6 layers "
                       r"\(0\.\.5, or -6\.\.-1\)"):
        runs.check_args(_args("--model", str(folder), "--layers", "0", "6", "-7"))


def test_transfer_pairs_need_train_and_test():
    parser = runs.add_probe_args(runs.experiment_parser("t", sets=["a"]))
    args = parser.parse_args(["--transfer", "a:b", "b:a"])
    assert runs._transfer_pairs(args) == [("a", "b"), ("b", "a")]
    args.transfer = ["a:"]
    with pytest.raises(UsageError, match="--transfer 'a:': expected TRAIN:TEST"):
        runs._transfer_pairs(args)


def test_stored_tables_name_the_file_and_what_is_missing(tmp_path):
    with pytest.raises(LLMCTError, match=r"pairs\.csv: no such patching pairs file"):
        runs.stored_table(tmp_path / "pairs.csv", ["a"], "patching pairs")
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "pairs.csv", index=False)
    with pytest.raises(LLMCTError, match=r"not a patching pairs file \(missing columns \['c'\]\)"):
        runs.stored_table(tmp_path / "pairs.csv", ["a", "c"], "patching pairs")
    assert runs.stored_table(tmp_path / "pairs.csv", ["a"], "x").b.tolist() == [2]


def test_run_record_and_panel_names():
    args = _args("--stimuli", "mine.jsonl")
    args.fn = print  # callables are not recorded
    record = runs.run_record(args, left_out=[{"set": "s", "reason": "r"}], extra=1)
    assert record["stimuli"] == ["mine.jsonl"] and "fn" not in record["args"]
    assert record["left_out"] == [{"set": "s", "reason": "r"}] and record["extra"] == 1
    assert runs.run_record(_args())["stimuli"] == ["set_a", "set_b"]
    frame = pd.DataFrame({"train_set": ["a", "a"], "test_set": ["a", "b"]})
    assert list(runs.panel_name(frame)) == ["a (5-fold CV)", "a -> b"]
