"""The repository speaks for itself: no document or script points outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_FILES = sorted(
    p for pattern in ("*.md", "experiments/*/*.md", "docs/*.md", "stimuli/**/*.md", "src/**/*.py",
                      "experiments/*/run.py", "scripts/*.py")
    for p in ROOT.glob(pattern))


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    for needle in ("../shared", "/work/shared", "/work/main"):
        assert needle not in text, f"{path.relative_to(ROOT)} refers to {needle}"


def test_citation_file_is_valid_yaml():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"]
