"""scripts/generate_stories.py runs on the embedded model (tiny length), resumes, validates."""

import importlib.util
from pathlib import Path

import pytest

from stimuli.loader import load_jsonl

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generate_stories.py"


def _script():
    spec = importlib.util.spec_from_file_location("generate_stories", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_generates_resumes_and_validates(tmp_path, embedded):
    gen = _script()
    out = tmp_path / "more.jsonl"
    args = ["--kind", "stories", "--language", "en", "--emotions", "happy", "--topics", "work",
            "home", "--out", str(out), "--max-new-tokens", "6"]
    assert gen.main(args) == 0
    first = load_jsonl(out)
    assert [s.id for s in first] == ["GS-en-happy-work-1", "GS-en-happy-home-1"]
    assert all(s.text and s.label == "happy" and s.valence == 1.0 for s in first)
    before = out.read_text()
    assert gen.main(args + ["--per", "2"]) == 0  # resumes: only the two new items
    after = load_jsonl(out)
    assert out.read_text().startswith(before) and len(after) == 4
    assert gen.main(["--kind", "dialogues", "--language", "ja", "--topics", "travel", "--out",
                     str(tmp_path / "d.jsonl"), "--max-new-tokens", "4"]) == 0
    assert load_jsonl(tmp_path / "d.jsonl")[0].set == "neutral_dialogues"
