"""The CT scan on the embedded model: single pass == per-prefix, errors, files written."""

import json

import numpy as np
import pandas as pd
import pytest

from llmct.errors import StoreError
from llmct.scan.metrics import cosine, jaccard_topk, mae, topk_mask
from llmct.scan.run import run_scan
from llmct.scan.scenario import ScenarioError, load_scenario, parse_scenario
from llmct.scan.snapshots import conversation_snapshots

SCENARIO = "stimuli/scenarios/rollercoaster.yaml"


def test_metrics_by_hand():
    a = np.array([[1.0, 0.0, 0.0, 2.0]])
    b = np.array([[1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, -2.0]])
    np.testing.assert_allclose(cosine(a, b)[0], [1.0, 0.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(mae(a, b)[0], [0.0, 1.0, 1.5])
    x = np.arange(300.0)[None]
    assert topk_mask(x, 3)[0].nonzero()[0].tolist() == [297, 298, 299]
    # top 1% of 300 dims = 3 dims; same magnitudes in both -> Jaccard 1; disjoint -> 0
    assert jaccard_topk(x, -x)[0, 0] == 1.0
    assert jaccard_topk(x, x[:, ::-1])[0, 0] == 0.0


@pytest.mark.integration
@pytest.mark.parametrize("position", ["message_end", "template_end", "mean"])
def test_single_pass_equals_per_prefix(embedded, position):
    model, tok = embedded
    sc = load_scenario(SCENARIO)
    chat = [{"role": m.role, "content": m.content} for m in sc.messages[:9]]
    one = conversation_snapshots(model, tok, chat, sources=["hidden_in", "attn_out", "mlp_out"],
                                 layers=[0, 7, 15, 22, 29], position=position)
    many = conversation_snapshots(model, tok, chat, sources=["hidden_in", "attn_out", "mlp_out"],
                                  layers=[0, 7, 15, 22, 29], position=position,
                                  force_per_prefix=True)
    assert one.mode == "single_pass" and many.mode == "per_prefix"
    for s in ("hidden_in", "attn_out", "mlp_out"):
        a, b = one.capture[s], many.capture[s]
        # SmolLM2's residual stream has 'massive activations' (|x| up to ~600, one fp32 ulp there
        # is 6e-5) whose rounding propagates into every branch: compare each vector at 1e-4 of
        # its own scale (absolute when that is below 1). Exactness is proven in float64 below.
        scale = np.maximum(1.0, np.abs(a).max(-1))
        assert (np.abs(a - b).max(-1) / scale).max() <= 1e-4, s
    assert many.tokens_processed > 3 * one.tokens_processed  # 9 of the 20 messages


@pytest.mark.integration
def test_single_pass_is_exact_in_float64(embedded):
    """In float64 the single pass and the per-prefix passes agree to 1e-9: the same computation."""
    import copy

    import torch

    model, tok = embedded
    model64 = copy.deepcopy(model).to(torch.float64)
    sc = load_scenario(SCENARIO)
    chat = [{"role": m.role, "content": m.content} for m in sc.messages[:7]]
    kw = dict(sources=["hidden_in", "hidden_out", "attn_out", "mlp_out"], layers="all",
              position="message_end")
    one = conversation_snapshots(model64, tok, chat, **kw)
    many = conversation_snapshots(model64, tok, chat, force_per_prefix=True, **kw)
    for s in kw["sources"]:
        assert np.abs(one.capture[s] - many.capture[s]).max() <= 1e-9, s


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
