"""Atomic file writes: the one place a result file is written through a temporary file.

:func:`atomic_write` writes to a temporary file in the target's folder and renames it over the
target (``os.replace``, atomic on POSIX and Windows within one file system), so a reader sees the
old file or the new one, never half of one, and a crash leaves no partial file (the temporary one
is removed). Used by the activation store, vector libraries, headlines, the model cache's small
JSON files and the CT scan's tables and report.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then move it over ``path``.

    ``write`` receives a :class:`~pathlib.Path` to a closed, empty file it may overwrite (e.g.
    ``frame.to_csv``, ``np.savez``, ``safetensors.save_file``). The parent folder is created.
    Returns ``path``. Whatever ``write`` raises propagates, and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


__all__ = ["atomic_write", "atomic_write_text"]
