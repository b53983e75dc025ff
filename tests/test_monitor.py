"""The real-time monitor scores exactly what capture() sees at each generated position."""

import io
import textwrap

import numpy as np
import pytest
import torch

import llmct
from llmct.core.hooks import count_hooks
from llmct.scan.library import ReferenceLibrary
from llmct.scan.monitor import EmotionMonitor
from tests.tiny_models import tiny_model


def _library(d=64, layers=(1, 2), n_refs=3, seed=0, source="hidden_in"):
    g = torch.Generator().manual_seed(seed)
    return ReferenceLibrary(["a", "b", "c"][:n_refs], list(layers), source,
                            torch.randn(n_refs, len(layers), d, generator=g),
                            torch.randn(len(layers), d, generator=g), {})


@pytest.mark.parametrize("source", ["hidden_in", "hidden_out", "mlp_out"])
def test_monitor_matches_capture(source):
    model = tiny_model("llama")
    lib = _library(source=source)
    prompt = [5, 9, 17, 33, 2, 8]
    seen = []
    with EmotionMonitor(model, lib, on_token=lambda step, s: seen.append(step)) as mon:
        out = model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False,
                             pad_token_id=0)
    full = out[0].tolist()
    assert len(mon.scores) == 5 and seen == list(range(5))
    positions = [[len(prompt) - 1 + k for k in range(5)]]
    cap = llmct.capture(model, None, [full], sources=[source], layers=lib.layers,
                        position=positions)
    refs = lib.centred_unit_references().numpy()  # [L, R, D]
    h = cap[source] - lib.baseline.numpy()[None]  # [5, L, D]
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    expected = np.einsum("sld,lrd->slr", h, refs).mean(1)
    np.testing.assert_allclose(np.concatenate(mon.scores), expected, atol=1e-5)
    assert count_hooks(model) == 0


def test_monitor_removes_hooks_and_checks_layers():
    model = tiny_model("gpt2")
    with pytest.raises(ValueError, match="do not exist"):
        EmotionMonitor(model, _library(layers=(1, 7)))
    with pytest.raises(RuntimeError, match="boom"), EmotionMonitor(model, _library()):
        raise RuntimeError("boom")
    assert count_hooks(model) == 0


@pytest.mark.integration
def test_monitor_cli_streams(tmp_path, embedded, monkeypatch):
    from llmct.scan import monitor

    scenario = tmp_path / "s.yaml"
    scenario.write_text(textwrap.dedent("""\
        name: m
        generation: {max_new_tokens: 4}
        messages:
          - {role: system, content: You are a helpful assistant}
          - {role: user, content: "I just got the job, I am so happy!"}
          - {role: assistant}
        references: {joy: I am overjoyed!, sadness: I miss her so much., peace: All is calm.}
        """))
    monkeypatch.setattr("llmct.core.models.load_model", lambda *a, **k: embedded)

    class Args:
        pass

    args = Args()
    args.scenario, args.model, args.library, args.layers = str(scenario), None, None, "10,20"
    buf = io.StringIO()
    assert monitor.run_monitor_cli(args, out=buf) == 0
    text = buf.getvalue()
    assert "monitoring layers [10, 20]" in text and "turn:" in text
