"""The llmct command as a user runs it."""

import subprocess
import sys

import pytest

from llmct.cli import main


def test_bad_scenario_gives_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmessages:\n  - role: user\n    content: hi\nreferences: {a: x, b: y}\ncapture:\n  position: first\n")
    assert main(["scan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:7: capture.position" in err


@pytest.mark.integration
def test_layers_command(embedded):
    out = subprocess.run([sys.executable, "-m", "llmct.cli", "layers", "default"],
                         capture_output=True, text=True, check=True).stdout
    assert "n_layers" in out and "30" in out and "model.layers[i].self_attn" in out


def test_missing_model_is_a_clear_error(capsys):
    assert main(["layers", "./no/such/dir"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.integration
def test_experiment_args_load_with_device_map(embedded, monkeypatch):
    """--device-map reaches from_pretrained (accelerate's dispatch) and gives the same weights."""
    import argparse

    import torch
    from transformers import AutoModelForCausalLM

    from llmct.emotion.extract import add_extract_args, load_model_from_args

    seen = {}
    original = AutoModelForCausalLM.from_pretrained

    def spy(*a, **kw):
        seen.update(kw)
        return original(*a, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    args = add_extract_args(argparse.ArgumentParser()).parse_args(
        ["--device-map", "auto", "--dtype", "float32"])
    model, _ = load_model_from_args(args)
    assert seen["device_map"] == "auto"
    ref = embedded[0].get_input_embeddings().weight
    assert torch.equal(model.get_input_embeddings().weight, ref)
