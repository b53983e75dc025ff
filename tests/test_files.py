"""``llmct.files.atomic_write``: the target holds the old content or the new, never a part; a
failed write leaves the old file and no temporary file behind."""

from __future__ import annotations

import pytest

from llmct.files import atomic_write, atomic_write_text


def test_atomic_write_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    assert atomic_write_text(target, "a,b\n1,2\n") == target  # the folder is created
    atomic_write(target, lambda tmp: tmp.write_text("a,b\n3,4\n"))
    assert target.read_text() == "a,b\n3,4\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def half(tmp):
        tmp.write_text("new, but")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
