"""The installable library stands alone: nothing in ``src/llmct`` imports a repository folder
(``stimuli/``, ``visualization/``, ``experiments/``, ``analysis/``, ``validation/``, ``scripts/``),
so ``import llmct.<module>`` works outside a checkout. Stimulus paths are passed in; the figure
style lives in :mod:`llmct.style`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llmct"
FORBIDDEN = ("stimuli", "visualization", "experiments", "analysis", "validation", "scripts")
MODULES = sorted(SRC.rglob("*.py"))


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_library_imports_no_repository_folder(path):
    bad = [n for n in _imports(path) if n.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path.relative_to(SRC.parent)} imports {bad}"


def test_library_imports_outside_a_checkout(tmp_path):
    """Import every top-level module from a directory that is not the repository."""
    names = sorted(".".join(p.relative_to(SRC).with_suffix("").parts) for p in MODULES
                   if p.stem != "__init__")
    code = "import importlib\n" + "".join(f"importlib.import_module('llmct.{n}')\n" for n in names)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
