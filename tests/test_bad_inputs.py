"""A catalogue of bad inputs: each gives one line ``NAME: error: PROBLEM`` and exit status 2 (or,
for silent drops, a report in the terminal and in run.json) -- never a traceback, a hang or a
wrong result.

Cases run in-process through the same wrapper the command line uses (:func:`llmct.runs.run_main`,
:func:`llmct.cli.main`); two run as real subprocesses. Models are tiny random Llamas saved to a
temporary folder with a word-level tokenizer (no network). Where an error must come before the
model loads, the model is a path that does not exist or ``load_model`` is replaced by a function
that fails the test, so a late check cannot pass.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llmct import cli
from llmct.errors import StoreError
from llmct.runs import run_main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import VOCAB, tiny_model  # noqa: E402

WORDS = ("the a and i am so happy sad angry afraid today was is it you me my we they of to in on "
         "at for with this that very really great terrible wonderful awful love hate fear joy "
         "trust surprise disgust anger sadness anticipation calm storm river light stone field "
         "bread red glass noise passage emotion read each name conveys one word : . , ! ? ' - "
         "assistant user system helpful delighted miss them terribly").split()
NO_MODEL = "/nonexistent/llmct-test-model"  # loading it would fail: errors must come first


# ----------------------------------------------------------------------------- fixtures

def save_tiny(folder: Path, seed: int = 0) -> Path:
    """A tiny random Llama plus a word-level fast tokenizer with a chat template, saved."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1, "<|im_start|>": 2, "<|im_end|>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    assert len(vocab) <= VOCAB
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="<|im_end|>", bos_token="<|im_start|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>"
                          "assistant\n{% endif %}")
    tiny_model("llama", seed=seed).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-a"), seed=0)


@pytest.fixture(scope="module")
def tiny_b(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-b"), seed=1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A private llmct cache (fingerprint hashes) and one torch thread."""
    import torch

    monkeypatch.setenv("LLMCT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LLMCT_TRACEBACK", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_model_load(monkeypatch):
    """Any model load fails the test: the error under test must come before it."""
    import llmct.core.models
    import llmct.scan.run  # imported before patching: it binds load_model at import

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(llmct.core.models, "load_model", refuse)
    monkeypatch.setattr(llmct.scan.run, "load_model", refuse)


_MODULES: dict[str, object] = {}


def experiment(name: str):
    if name not in _MODULES:
        path = ROOT / "experiments" / name / "run.py"
        spec = importlib.util.spec_from_file_location(f"bad_inputs_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[name] = module
    return _MODULES[name]


def run_exp(name: str, argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit status, stderr, stdout) of an experiment run as from the command line."""
    module = experiment(name)
    capsys.readouterr()
    try:
        rc = run_main(module.main, module.__file__, [str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.err, out.out


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.err, out.out


def assert_one_line(rc: int, err: str, name: str, pattern: str, *, only: bool = True) -> str:
    """Exit status 2 and the error as one line ``NAME: error: ...`` matching ``pattern``; with
    ``only`` nothing else on stderr (after a model load, its progress bar may precede it)."""
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert rc == 2, f"exit status {rc}, stderr: {err}"
    assert "Traceback" not in err, err
    if only:
        assert len(lines) == 1, f"expected one line, got:\n{err}"
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1 and errors[0] == lines[-1], f"expected one error line, got:\n{err}"
    assert lines[-1].startswith(f"{name}: error: "), lines[-1]
    assert re.search(pattern, lines[-1]), f"{pattern!r} not in {lines[-1]!r}"
    return lines[-1]


def jsonl(path: Path, rows, raw: bytes | None = None) -> Path:
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    return path


def rows(prefix: str, labels=("joy", "sadness"), n: int = 5) -> list[dict]:
    out = []
    for lab in labels:
        for k in range(n):
            out.append({"id": f"{prefix}-{lab}-{k}",
                        "text": f"{WORDS[k + 3]} {lab} {WORDS[(k * 7) % 40]} {prefix} {k} .",
                        "label": lab})
    return out


GOOD = [{"id": "u1", "text": "I am so happy today.", "label": "joy"},
        {"id": "u2", "text": "It was a terrible day.", "label": "sadness"}]


# ----------------------------------------------------------------------------- stimulus files

STIMULUS_CASES = {
    # name: (file bytes or rows, expected pattern)
    "missing field": ([*GOOD, {"id": "u3", "label": "joy"}], r"bad\.jsonl:3: missing required field 'text'"),
    "empty text": ([*GOOD, {"id": "u3", "text": "  ", "label": "joy"}], r"bad\.jsonl:3: field 'text' is empty"),
    "duplicate id": ([*GOOD, {"id": "u1", "text": "x", "label": "joy"}], r"bad\.jsonl:3: duplicate id 'u1' \(first seen on line 1\)"),
    "empty label": ([{"id": "u1", "text": "x", "label": ""}], r"bad\.jsonl:1: field 'label' is empty"),
    "typo in a field name": ([{"id": "u1", "text": "x", "lable": "joy"}], r"bad\.jsonl:1: unknown field\(s\) 'lable'"),
    "number as text": ([{"id": "u1", "text": 5, "label": "joy"}], r"bad\.jsonl:1: field 'text' has wrong type int"),
    "not an object": (b'["u1", "x", "joy"]\n', r"bad\.jsonl:1: expected a JSON object, got list"),
    "CSV passed as JSONL": (b"id,text,label\nu1,I am happy,joy\n", r"bad\.jsonl:1: invalid JSON .*looks like CSV"),
    "broken JSON": (b'{"id": "u1", "text": "x", "label": "joy"}\n{"id": "u2", "text": \n', r"bad\.jsonl:2: invalid JSON"),
    "empty file": (b"", r"bad\.jsonl: no stimuli \(the file is empty"),
    "blank lines only": (b"\n  \n\n", r"bad\.jsonl: no stimuli"),
    "not UTF-8 (Latin-1)": ('{"id": "u1", "text": "café", "label": "joy"}\n'.encode("latin-1"), r"bad\.jsonl:1: not UTF-8 text \(byte 0xe9"),
    "UTF-8 byte-order mark": (b"\xef\xbb\xbf" + json.dumps(GOOD[0]).encode() + b"\n", r"bad\.jsonl:1: the file starts with a UTF-8 byte-order mark; save it as UTF-8 without BOM"),
    "UTF-16": (json.dumps(GOOD[0]).encode("utf-16"), r"bad\.jsonl:1: the file starts with a UTF-16 byte-order mark"),
}


@pytest.mark.parametrize("case", list(STIMULUS_CASES))
def test_bad_stimulus_file(case, tmp_path, capsys, no_model_load):
    content, pattern = STIMULUS_CASES[case]
    path = tmp_path / "bad.jsonl"
    jsonl(path, None if isinstance(content, bytes) else content,
          raw=content if isinstance(content, bytes) else None)
    rc, err, _ = run_exp("02_probes", ["--stimuli", path, "--model", NO_MODEL, "--out",
                                       tmp_path / "out"], capsys)
    assert_one_line(rc, err, "02_probes", pattern)
    assert not (tmp_path / "out").exists()


def test_stimulus_paths(tmp_path, capsys, no_model_load):
    (tmp_path / "folder.jsonl").mkdir()
    rc, err, _ = run_exp("01_extract", ["--stimuli", tmp_path / "folder.jsonl"], capsys)
    assert_one_line(rc, err, "01_extract", r"folder\.jsonl: is a folder, not a stimulus file")
    rc, err, _ = run_exp("01_extract", ["--stimuli", tmp_path / "nope.jsonl"], capsys)
    assert_one_line(rc, err, "01_extract", r"nope\.jsonl: stimulus file not found")
    a = jsonl(tmp_path / "a.jsonl", GOOD)
    b = jsonl(tmp_path / "b.jsonl", [GOOD[1]])
    rc, err, _ = run_exp("01_extract", ["--stimuli", a, b], capsys)
    assert_one_line(rc, err, "01_extract",
                    r"b\.jsonl:1: duplicate id 'u2' \(first seen at .*a\.jsonl:2\)")


def test_unknown_shipped_set(capsys, no_model_load):
    rc, err, _ = run_exp("02_probes", ["--sets", "set_zz"], capsys)
    assert_one_line(rc, err, "02_probes", r"unknown stimulus set 'set_zz'; known sets: .*set_a")


# ----------------------------------------------------------------------------- options and limits

@pytest.mark.parametrize("argv, pattern", [
    (["--batch-size", "0"], r"argument --batch-size: must be >= 1, got 0"),
    (["--batch-size", "two"], r"argument --batch-size: expected an integer >= 1, got 'two'"),
    (["--chunk-size", "-3"], r"argument --chunk-size: must be >= 1, got -3"),
    (["--limit", "0"], r"argument --limit: must be >= 1, got 0"),
    (["--layers", "true"], r"argument --layers: invalid int value: 'true'"),
    (["--prompt", "nonsense"], r"argument --prompt: invalid choice"),
    (["--shard", "2/2"], r"--shard 2/2: need n >= 1 and 0 <= i < n \(shards are 0-based"),
    (["--shard", "half"], r"--shard must look like i/n \(e\.g\. 0/4\), got 'half'"),
    (["--shard", "0/0"], r"--shard 0/0: need n >= 1"),
])
def test_bad_option(argv, pattern, tmp_path, capsys, no_model_load):
    rc, err, _ = run_exp("01_extract", [*argv, "--model", NO_MODEL, "--out", tmp_path / "o"],
                         capsys)
    assert_one_line(rc, err, "01_extract", pattern)


def test_layers_out_of_range_before_the_model_loads(tiny, tmp_path, capsys, no_model_load):
    rc, err, _ = run_exp("01_extract", ["--model", tiny, "--layers", "99", "-5", "1",
                                        "--out", tmp_path / "o", "--sets", "set_a"], capsys)
    assert_one_line(rc, err, "01_extract",
                    r"--layers 99 -5: out of range; .* has 3 layers \(0\.\.2, or -3\.\.-1\)")


def test_probe_experiments_refuse_nothing_to_probe_before_extraction(tmp_path, capsys,
                                                                     no_model_load):
    one = jsonl(tmp_path / "one.jsonl", rows("x", labels=("joy",), n=8))
    for name in ("02_probes", "04_zeroshot"):
        rc, err, out = run_exp(name, ["--stimuli", one, "--model", NO_MODEL,
                                      "--out", tmp_path / name], capsys)
        assert_one_line(rc, err, name, r"nothing to probe: .*items per label: one: joy=8")
        assert "left out: set 'one': no within-set probe: 1 usable label(s)" in out
    few = jsonl(tmp_path / "few.jsonl", rows("y", labels=("joy", "fear"), n=3))
    rc, err, out = run_exp("02_probes", ["--stimuli", few, "--model", NO_MODEL], capsys)
    assert_one_line(rc, err, "02_probes", r"nothing to probe")
    assert "label 'fear': only 3 item(s); a probe needs >= 5 per label" in out
    two = jsonl(tmp_path / "two.jsonl", rows("z"))
    rc, err, _ = run_exp("02_probes", ["--stimuli", two, "--model", NO_MODEL,
                                       "--transfer", "two:heldout"], capsys)
    assert_one_line(rc, err, "02_probes",
                    r"transfer two:heldout: set\(s\) 'heldout' not in the stimuli \(sets present: two\)")
    rc, err, _ = run_exp("02_probes", ["--stimuli", two, "--transfer", "two", "--out",
                                       tmp_path / "t"], capsys)
    assert_one_line(rc, err, "02_probes", r"--transfer 'two': expected TRAIN:TEST")


def test_binary_experiment_checks_its_sets_first(tmp_path, capsys, no_model_load):
    mine = jsonl(tmp_path / "mine.jsonl", rows("m"))
    rc, err, _ = run_exp("03_binary", ["--stimuli", mine, "--model", NO_MODEL], capsys)
    assert_one_line(rc, err, "03_binary", r"set\(s\) 'set_b', 'set_b_control' not in the "
                    r"stimuli \(sets present: mine\); name them with --emotional-set")


# ----------------------------------------------------------------------------- output paths

def test_output_paths(tmp_path, capsys, no_model_load):
    mine = jsonl(tmp_path / "mine.jsonl", rows("m"))
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--out", a_file], capsys)
    assert_one_line(rc, err, "02_probes", r"results\.txt is a file, not a folder; pass another --out")
    rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--out", a_file / "sub"], capsys)
    assert_one_line(rc, err, "02_probes", r"results\.txt.*: a part of this path is a file, not a "
                    r"folder|results\.txt.*already exists")
    done = tmp_path / "done"
    done.mkdir()
    (done / "probe_results.csv").write_text("earlier results\n")
    rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--out", done], capsys)
    assert_one_line(rc, err, "02_probes", r"already holds probe_results\.csv; refusing to "
                    r"overwrite results\. Pass --overwrite, or --out NEW_FOLDER")
    assert (done / "probe_results.csv").read_text() == "earlier results\n"


def test_activation_root_that_is_a_file(tmp_path, capsys, no_model_load):
    mine = jsonl(tmp_path / "mine.jsonl", rows("m"))
    (tmp_path / "acts").write_text("not a folder")
    rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--activations", tmp_path / "acts",
                                       "--out", tmp_path / "o"], capsys)
    assert_one_line(rc, err, "02_probes", r"--activations: .*acts is a file, not a folder")


def test_windows_line_endings_are_fine(tmp_path):
    from llmct.io.stimuli import load_jsonl

    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"id": "u1", "text": "a", "label": "joy"}\r\n\r\n'
                     b'{"id": "u2", "text": "b", "label": "fear"}\r\n')
    assert [(s.id, s.text, s.set) for s in load_jsonl(path)] == [("u1", "a", "crlf"),
                                                                 ("u2", "b", "crlf")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_unwritable_output_folder(tmp_path, capsys, no_model_load):
    mine = jsonl(tmp_path / "mine.jsonl", rows("m"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--out", locked / "o"], capsys)
    finally:
        locked.chmod(0o700)
    assert_one_line(rc, err, "02_probes", r"locked.*: permission denied")


# ----------------------------------------------------------------------------- your own data, end to end

def test_own_sets_a_b_give_both_transfers_and_report_what_was_left_out(tiny, tmp_path, capsys):
    a = jsonl(tmp_path / "a.jsonl", rows("a") + [{"id": "a-fear", "text": "i am afraid .",
                                                   "label": "fear"}])
    b = jsonl(tmp_path / "b.jsonl", rows("b"))
    acts, out = tmp_path / "acts", tmp_path / "out"
    rc, err, stdout = run_exp("02_probes", ["--stimuli", a, b, "--model", tiny, "--activations",
                                            acts, "--out", out, "--no-progress"], capsys)
    assert rc == 0, err
    import pandas as pd

    results = pd.read_csv(out / "probe_results.csv")
    pairs = set(zip(results.train_set, results.test_set, strict=True))
    assert pairs == {("a", "a"), ("b", "b"), ("a", "b"), ("b", "a")}
    summary = pd.read_csv(out / "probe_summary.csv")
    assert {("a", "b"), ("b", "a")} <= set(zip(summary.train_set, summary.test_set, strict=True))
    transfer = results[(results.train_set == "a") & (results.test_set == "b")]
    assert set(transfer.n_classes) == {2} and set(transfer.n_test) == {10}
    assert "left out: set 'a' label 'fear': only 1 item(s)" in stdout
    run = json.loads((out / "run.json").read_text())
    assert {"set": "a", "label": "fear", "n_items": 1} == {
        k: v for k, v in run["left_out"][0].items() if k != "reason"}
    assert run["transfers"] == ["a->b", "b->a"]
    assert list(acts.iterdir()) == [acts / "fewshot-a+b"]
    assert not list(tmp_path.glob(".out.partial-*"))  # staging folder moved into place

    # the same store read by another model, or in another dtype, is refused (nothing read)
    rc, err, _ = run_exp("02_probes", ["--stimuli", a, b, "--model", tiny_model_dir(tmp_path),
                                       "--activations", acts, "--out", tmp_path / "o2"], capsys)
    line = assert_one_line(rc, err, "02_probes", r"fewshot-a\+b/chunk-00000\.npz holds "
                           r"activations of another configuration \(model, model_fingerprint "
                           r"differ\)")
    assert f"model={tiny}" in line and "this run [model=" in line
    rc, err, _ = run_exp("02_probes", ["--stimuli", a, b, "--model", tiny, "--dtype", "bfloat16",
                                       "--activations", acts, "--out", tmp_path / "o3"], capsys)
    assert_one_line(rc, err, "02_probes", r"\(dtype differ\): stored \[.*dtype=float32.*\], "
                    r"this run \[.*dtype=bfloat16")

    # a truncated chunk is named, with how to recover; nothing half-written is left
    chunk = acts / "fewshot-a+b" / "chunk-00000.npz"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    rc, err, _ = run_exp("02_probes", ["--stimuli", a, b, "--model", tiny, "--activations", acts,
                                       "--out", tmp_path / "o4"], capsys)
    assert_one_line(rc, err, "02_probes", r"chunk-00000\.npz: truncated or corrupt file .*; "
                    r"delete this chunk and run again: the extraction resumes")
    assert not (tmp_path / "o4").exists() and not list(tmp_path.glob(".o4.partial-*"))


def tiny_model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "other-model"
    return folder if folder.exists() else save_tiny(folder, seed=1)


def test_corrupt_manifest_and_foreign_chunk(tmp_path, capsys, no_model_load):
    store = tmp_path / "acts" / "fewshot-mine"
    store.mkdir(parents=True)
    mine = jsonl(tmp_path / "mine.jsonl", rows("m"))
    np.savez(store / "chunk-00000.npz", ids=np.array(["m-joy-0"]),
             __manifest__=np.array("{not json"))
    rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--activations", tmp_path / "acts",
                                       "--model", NO_MODEL], capsys)
    assert_one_line(rc, err, "02_probes", r"chunk-00000\.npz: corrupt manifest \(invalid JSON")
    np.savez(store / "chunk-00000.npz", ids=np.array(["m-joy-0"]))
    rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--activations", tmp_path / "acts",
                                       "--model", NO_MODEL], capsys)
    assert_one_line(rc, err, "02_probes", r"chunk-00000\.npz has no llmct manifest")


def test_experiment_error_leaves_no_half_written_folder(tiny, tmp_path, capsys, monkeypatch):
    mine = jsonl(tmp_path / "mine.jsonl", rows("m"))
    module = experiment("02_probes")

    def fail(*a, **k):
        raise StoreError("simulated failure after the CSVs were written")

    monkeypatch.setattr(module, "plot_layer_panels", fail)
    rc, err, _ = run_exp("02_probes", ["--stimuli", mine, "--model", tiny, "--activations",
                                       tmp_path / "acts", "--out", tmp_path / "out",
                                       "--no-progress"], capsys)
    assert_one_line(rc, err, "02_probes", "simulated failure", only=False)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]


def test_real_processes_print_one_line_and_exit_2(tmp_path):
    bad = jsonl(tmp_path / "bad.jsonl", [*GOOD, {"id": "u3", "text": "", "label": "joy"}])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLMCT_CACHE": str(tmp_path / "cache")}
    for argv, pattern in [(["--stimuli", str(bad), "--batch-size", "2"],
                           r"bad\.jsonl:3: field 'text' is empty")]:  # one: a process costs ~15 s
        proc = subprocess.run([sys.executable, str(ROOT / "experiments/02_probes/run.py"), *argv,
                               "--model", NO_MODEL], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=300)
        assert_one_line(proc.returncode, proc.stderr, "02_probes", pattern)


# ----------------------------------------------------------------------------- scenarios (YAML)

SCENARIO = """\
name: t
messages:
  - role: system
    content: you are helpful
  - role: user
    emotion: joy
    content: i am so happy today
  - role: assistant
references:
  joy: wonderful i am delighted
  sadness: i miss them terribly
generation: {max_new_tokens: 4}
"""


def billion_laughs() -> str:
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    prev = "a"
    for k in "bcdefghi":
        text += f"{k}: &{k} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
        prev = k
    return text + SCENARIO.replace("name: t", "name: *i")


YAML_CASES = {
    "duplicate reference label": (SCENARIO.replace("  sadness:", "  joy: again\n  sadness:"),
                                  r"s\.yaml:11: duplicate key 'joy' \(first given on line 10\)"),
    "duplicate top-level key": (SCENARIO + "name: u\n", r"s\.yaml:13: duplicate key 'name' \(first given on line 1\)"),
    "booleans as layers": (SCENARIO + "capture: {layers: [true, false]}\n",
                           r"s\.yaml:13: capture\.layers: layer indices must be integers, not booleans"),
    "unknown key": (SCENARIO.replace("name: t", "name: t\nmodle: x"), r"s\.yaml:2: modle: unknown key"),
    "bad role": (SCENARIO.replace("role: user", "role: narrator"), r"s\.yaml:5: messages\[1\]\.role"),
    "invalid YAML": ("name: [unclosed\n", r"s\.yaml: invalid YAML"),
    "not a mapping": ("- a\n- b\n", r"s\.yaml: a scenario must be a YAML mapping"),
    "empty file": ("", r"s\.yaml: the scenario is empty"),
    "boolean max_new_tokens": (SCENARIO.replace("max_new_tokens: 4", "max_new_tokens: true"),
                               r"generation\.max_new_tokens: Input should be a valid integer"),
    "zero max_new_tokens": (SCENARIO.replace("max_new_tokens: 4", "max_new_tokens: 0"),
                            r"s\.yaml:12: generation\.max_new_tokens: Input should be greater than 0"),
    "one reference": (SCENARIO.replace("  sadness: i miss them terribly\n", ""),
                      r"s\.yaml:9: references: Dictionary should have at least 2 items"),
    "python tag": (SCENARIO.replace("name: t", "name: !!python/object:os.system echo"),
                   r"s\.yaml: invalid YAML: could not determine a constructor"),
    "tab indentation": (SCENARIO.replace("  joy:", "\tjoy:"), r"s\.yaml: invalid YAML"),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_bad_scenario(case, tmp_path, capsys, no_model_load):
    text, pattern = YAML_CASES[case]
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    rc, err, _ = run_cli(["scan", path, "--out", tmp_path / "o"], capsys)
    assert_one_line(rc, err, "llmct", pattern)
    assert not (tmp_path / "o").exists()


def test_billion_laughs_is_refused_at_once(tmp_path, capsys, no_model_load):
    path = tmp_path / "lol.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    assert 300 < path.stat().st_size < 2048
    t0 = time.perf_counter()
    rc, err, _ = run_cli(["scan", path], capsys)
    assert time.perf_counter() - t0 < 1.0
    assert_one_line(rc, err, "llmct", r"lol\.yaml:\d+: YAML aliases expand this document beyond "
                    r"100000 nodes")


def test_small_aliases_still_work():
    from llmct.scan.scenario import parse_scenario

    text = SCENARIO.replace("references:\n  joy: wonderful i am delighted",
                            "references:\n  joy: &j wonderful i am delighted\n  calm: *j")
    assert parse_scenario(text).references["calm"].text == "wonderful i am delighted"


@pytest.mark.parametrize("content, pattern", [
    (b"\xef\xbb\xbf" + SCENARIO.encode(), r"s\.yaml:1: the file starts with a byte-order mark"),
    (SCENARIO.replace("happy", "h\xe4ppy").encode("latin-1"), r"s\.yaml:7: not UTF-8 text \(byte 0xe4\)"),
])
def test_scenario_encodings(content, pattern, tmp_path, capsys, no_model_load):
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    rc, err, _ = run_cli(["scan", path], capsys)
    assert_one_line(rc, err, "llmct", pattern)


def test_scenario_paths_and_outputs_before_the_model_loads(tmp_path, capsys, no_model_load):
    rc, err, _ = run_cli(["scan", tmp_path], capsys)
    assert_one_line(rc, err, "llmct", r": (is a folder, not a scenario file|folder holds no "
                    r"scenario files)")
    rc, err, _ = run_cli(["scan", tmp_path / "nope.yaml"], capsys)
    assert_one_line(rc, err, "llmct", r"scenario file .*nope\.yaml does not exist")
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    existing = tmp_path / "earlier-scan"
    existing.mkdir()
    (existing / "metrics.csv").write_text("x\n")
    rc, err, _ = run_cli(["scan", path, "--out", existing], capsys)
    assert_one_line(rc, err, "llmct", rf"{re.escape(str(existing))} exists; pass --overwrite or "
                    "another --out")
    library = tmp_path / "lib.safetensors"
    library.write_bytes(b"earlier library")
    rc, err, _ = run_cli(["scan", path, "--out", tmp_path / "new", "--save-library", library],
                         capsys)
    assert_one_line(rc, err, "llmct", r"lib\.safetensors already exists; pass --overwrite or "
                    r"another --save-library \(nothing was scanned\)")
    assert library.read_bytes() == b"earlier library" and not (tmp_path / "new").exists()
    rc, err, _ = run_cli(["scan"], capsys)
    assert_one_line(rc, err, "llmct", r"the following arguments are required: scenario")


def test_default_scan_folder_keeps_the_timestamped_sibling(tmp_path):
    from llmct.io.store import output_dir_for

    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "run.json").write_text("{}")
    sibling = output_dir_for(folder)
    assert sibling.parent == tmp_path and sibling.name.startswith("scan-") and not sibling.exists()
    with pytest.raises(StoreError, match="scan exists; pass --overwrite or another --out"):
        output_dir_for(folder, explicit=True)
    assert output_dir_for(folder, explicit=True, overwrite=True) == folder


def test_conversation_longer_than_context_is_refused_before_generating(tiny, tmp_path, capsys,
                                                                       monkeypatch):
    import llmct.scan.run as scan_run

    monkeypatch.setattr(scan_run, "generate_reply",
                        lambda *a, **k: pytest.fail("generated before checking the length"))
    long_turn = " ".join(WORDS[:40] * 6)  # ~240 tokens + template > 256 with the reply budget
    path = tmp_path / "long.yaml"
    path.write_text(SCENARIO.replace("i am so happy today", long_turn)
                    .replace("max_new_tokens: 4", "max_new_tokens: 64"), encoding="utf-8")
    rc, err, _ = run_cli(["scan", path, "--model", tiny, "--out", tmp_path / "o"], capsys)
    assert_one_line(rc, err, "llmct", r"messages \(line 2\): the conversation needs \d+ tokens "
                    r"\(1 generated turn\(s\) x max_new_tokens=64 included\) but the model has a "
                    r"context of 256; shorten it \(nothing was generated\)", only=False)
    assert not (tmp_path / "o").exists()
    path.write_text(SCENARIO.replace("joy: wonderful i am delighted", f"joy: {long_turn} {long_turn}"),
                    encoding="utf-8")
    rc, err, _ = run_cli(["scan", path, "--model", tiny, "--out", tmp_path / "o"], capsys)
    assert_one_line(rc, err, "llmct", r"references\.joy \(line 10\): \d+ tokens; the model has "
                    r"a context of 256", only=False)
    path.write_text(SCENARIO + "capture: {layers: [0, 99]}\n", encoding="utf-8")
    rc, err, _ = run_cli(["scan", path, "--model", tiny, "--out", tmp_path / "o"], capsys)
    assert_one_line(rc, err, "llmct", r"capture\.layers \(line 13\): .*99", only=False)


def test_scan_reports_unmatched_tags_and_is_written_atomically(tiny, tmp_path, capsys,
                                                               monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("  - role: assistant\n",
                                     "  - role: assistant\n  - role: user\n    emotion: sadnes\n"
                                     "    content: i miss them terribly\n"), encoding="utf-8")
    rc, err, out = run_cli(["scan", path, "--model", tiny, "--out", tmp_path / "ok",
                            "--no-report"], capsys)
    assert rc == 0, err
    assert "left out: message 3 (line 10) emotion 'sadnes': matches no reference label" in err
    assert "did you mean 'sadness'?" in err
    run = json.loads((tmp_path / "ok" / "run.json").read_text())
    assert [(x["message"], x["emotion"]) for x in run["left_out"]] == [(3, "sadnes")]

    import llmct.scan.run as scan_run

    def boom(*a, **k):
        raise StoreError("simulated failure while writing")

    monkeypatch.setattr(scan_run, "_write_tables", boom)
    rc, err, _ = run_cli(["scan", path, "--model", tiny, "--out", tmp_path / "half"], capsys)
    assert_one_line(rc, err, "llmct", "simulated failure while writing", only=False)
    assert not (tmp_path / "half").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".half.")]


def test_truncated_reference_library(tmp_path):
    from llmct.scan.library import ReferenceLibrary

    bad = tmp_path / "lib.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(StoreError, match=r"lib\.safetensors is not a readable reference library "
                       r"\(truncated or not safetensors"):
        ReferenceLibrary.load(bad)
    with pytest.raises(StoreError, match="is a folder"):
        ReferenceLibrary.load(tmp_path)


def test_booleans_are_not_layer_indices_in_the_api():
    from llmct.emotion.extract import check_layer_values
    from llmct.errors import UsageError

    check_layer_values("all")
    check_layer_values([0, -1, np.int64(3)])
    with pytest.raises(UsageError, match=r"layer indices must be integers \(or 'all'\), got \[True, False\]"):
        check_layer_values([True, False])
    with pytest.raises(UsageError, match="got \\['3'\\]"):
        check_layer_values([1, "3"])
