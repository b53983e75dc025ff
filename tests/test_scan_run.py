"""llmct.scan.run: the CT scan writes every file, never overwrites, generates missing turns and
refuses bad layers / too-long conversations / missing models (embedded model; a tiny random chat
model for the checks that need no real weights)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmct.errors import StoreError
from llmct.io.store import load_npz
from llmct.scan.run import check_context, default_output_dir, run_scan
from llmct.scan.scenario import ScenarioError, load_scenario, parse_scenario
from tests.test_scan_snapshots import tiny_chat_model

SCENARIO = "stimuli/scenarios/rollercoaster.yaml"
TINY = """name: Tiny Scan!
messages:
  - role: system
    content: You are a helpful assistant.
  - role: user
    emotion: joy
    content: I got the job today!
  - role: assistant
    content: Congratulations, well done.
  - role: user
    emotion: sadness
    content: My cat died last night.
references: {joy: I am so happy., sadness: I am so sad.}
baseline: [The shop opens at nine.]
capture: {layers: all}
"""


@pytest.fixture(scope="module")
def chat_model():
    return tiny_chat_model()


def test_default_output_folder_from_the_scenario_name_or_its_template():
    sc = parse_scenario(TINY)
    assert default_output_dir(sc, "default") == Path(
        "outputs/scans/tiny-scan-/smollm2-135m-instruct")
    sc.output.dir = "runs/{name}/{model}"
    assert default_output_dir(sc, "org/Some-Model") == Path("runs/Tiny Scan!/some-model")


@pytest.mark.usefixtures("one_torch_thread")
def test_scan_on_a_tiny_model_writes_the_metrics_of_its_snapshots(chat_model, tmp_path):
    out = run_scan(parse_scenario(TINY), out=tmp_path / "scan", model_and_tokenizer=chat_model,
                   report=False)
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "single_pass" and run["layers"] == [0, 1] and len(run["messages"]) == 4
    df = pd.read_csv(out / "metrics.csv")
    assert len(df) == 4 * 2 * 4 * 2  # snapshots x references x sources x layers
    arrays, manifest = load_npz(out / "snapshots.npz")
    assert manifest["mode"] == "single_pass"
    snap, ref = arrays["snap_hidden_out"][3, 1], arrays["ref_hidden_out"][1, 1]  # turn 3, sadness
    row = df[(df.snapshot == 3) & (df.reference == "sadness") & (df.source == "hidden_out")
             & (df.layer == 1)]
    by_hand = snap @ ref / np.linalg.norm(snap) / np.linalg.norm(ref)
    assert row.cosine.item() == pytest.approx(by_hand, abs=2e-6)
    assert row.emotion.item() == "sadness" and row.role.item() == "user"
    with pytest.raises(StoreError, match="scan exists; pass --overwrite or another --out"):
        run_scan(parse_scenario(TINY), out=tmp_path / "scan", model_and_tokenizer=chat_model,
                 report=False)
    assert run_scan(parse_scenario(TINY), out=tmp_path / "scan", model_and_tokenizer=chat_model,
                    report=False, overwrite=True) == out


def test_a_conversation_longer_than_the_context_is_refused_before_generating(chat_model):
    model, tok = chat_model  # max_position_embeddings=512
    long_reply = TINY.replace("  - role: assistant\n    content: Congratulations, well done.\n",
                              "  - role: assistant\n") + "generation: {max_new_tokens: 600}\n"
    with pytest.raises(ScenarioError, match=r"messages \(line 2\): the conversation needs \d+ "
                       r"tokens \(1 generated turn\(s\) x max_new_tokens=600 included\) but the "
                       r"model has a context of 512; shorten it \(nothing was generated\)"):
        check_context(model, tok, parse_scenario(long_reply))
    long_ref = TINY.replace("sadness: I am so sad.", "sadness: " + "sad " * 600)
    with pytest.raises(ScenarioError, match=r"references\.sadness \(line \d+\): \d+ tokens; the "
                       r"model has a context of 512"):
        check_context(model, tok, parse_scenario(long_ref))
    check_context(model, tok, parse_scenario(TINY))  # fits: no error


@pytest.mark.integration
def test_scan_writes_everything_and_never_overwrites(embedded, tmp_path):
    sc = load_scenario(SCENARIO)
    out = run_scan(sc, out=tmp_path / "scan", model_and_tokenizer=embedded, report=False,
                   save_library_to=tmp_path / "lib.safetensors")
    for name in ("metrics.csv", "spread.csv", "layer_map.csv", "findings.json", "run.json",
                 "logit_lens.csv", "snapshots.npz"):
        assert (out / name).exists(), name
    df = pd.read_csv(out / "metrics.csv")
    assert {"snapshot", "role", "source", "layer", "reference", "cosine", "cosine_centered",
            "mae", "jaccard"} <= set(df.columns)
    assert len(df) == 20 * 9 * 4 * 30
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "single_pass" and len(run["messages"]) == 20
    findings = json.loads((out / "findings.json").read_text())
    assert {f["id"] for f in findings} >= {"residual_vs_branches", "user_assistant_gap",
                                            "top_reference", "fading_memory",
                                            "discriminative_layers"}
    assert (tmp_path / "lib.safetensors").stat().st_size < 1_000_000
    small = sc.model_copy(deep=True)
    small.capture.layers = [0, -1]
    with pytest.raises(StoreError, match="scan exists; pass --overwrite or another --out"):
        run_scan(small, out=tmp_path / "scan", model_and_tokenizer=embedded, report=False)
    # a default folder (not named by the user) gets a timestamped sibling instead
    again = run_scan(small, out=tmp_path / "scan", model_and_tokenizer=embedded, report=False,
                     explicit_out=False)
    assert again != out and again.name.startswith("scan-")  # a new folder, nothing replaced
    assert (out / "metrics.csv").exists()


@pytest.mark.integration
def test_generated_turns_and_runtime_errors(embedded, tmp_path):
    text = """name: gen
messages:
  - role: user
    content: Hello there, how are you?
  - role: assistant
capture:
  layers: [0, -1]
generation:
  max_new_tokens: 5
references: {a: I am happy., b: I am sad.}
"""
    out = run_scan(parse_scenario(text), out=tmp_path / "g", model_and_tokenizer=embedded,
                   report=False)
    run = json.loads((out / "run.json").read_text())
    assert run["messages"][1]["generated"] and run["messages"][1]["content"]
    assert run["layers"] == [0, 29]
    bad = parse_scenario(text.replace("[0, -1]", "[0, 30]"), "bad.yaml")
    with pytest.raises(ScenarioError, match=r"capture.layers \(line 7\).*out of range"):
        run_scan(bad, out=tmp_path / "b", model_and_tokenizer=embedded, report=False)
    long = parse_scenario(text.replace("Hello there, how are you?", "word " * 9000), "long.yaml")
    with pytest.raises(ScenarioError, match="context"):
        run_scan(long, out=tmp_path / "c", model_and_tokenizer=embedded, report=False)
    missing = parse_scenario(text + "model: ./no/such/model\n", "m.yaml")
    with pytest.raises(ScenarioError, match="does not exist"):
        run_scan(missing, out=tmp_path / "d", report=False)
