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
