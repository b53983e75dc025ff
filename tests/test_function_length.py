"""No function of the library or of an experiment is longer than a screen (80 lines, docstring
included; issue #12): a longer one is split by meaning, not by line count."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 80
FILES = sorted([*(ROOT / "src" / "llmct").rglob("*.py"), *(ROOT / "experiments").glob("*/*.py")])


def long_functions(path: Path, limit: int = LIMIT) -> list[str]:
    """``name (n lines)`` of every function or method in ``path`` longer than ``limit``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_is_longer_than_a_screen():
    found = {str(p.relative_to(ROOT)): bad for p in FILES if (bad := long_functions(p))}
    assert not found, found


def test_the_counter_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    f = tmp_path / "long.py"
    f.write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n", encoding="utf-8")
    assert long_functions(f) == [f"long ({LIMIT + 1} lines)"]
