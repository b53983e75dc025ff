"""The package's layers (issue #12): each subpackage imports only the layers below it, and the
installable library stands alone.

    errors, _version, style, files   base: import nothing from llmct
    analysis                         statistics over arrays: base only; never torch/transformers
    core                             model-facing mechanics: base only
    io                               on-disk formats: base + core
    emotion                          the study's methods: base + core + io + analysis
    scan                             the CT scan: everything above
    runs, cli, __init__              entry points: anything

Nothing under ``src/`` imports a repository folder (``stimuli/``, ``visualization/``,
``experiments/``, ``analysis/``, ``validation/``, ``scripts/``), so ``import llmct.<module>``
works outside a checkout: stimulus paths are passed in, the house style lives in
:mod:`llmct.style`. Read from the source's AST, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llmct"
BASE = {"errors", "_version", "style", "files"}
ALLOWED = {
    "base": BASE,
    "analysis": BASE | {"analysis"},
    "core": BASE | {"core"},
    "io": BASE | {"core", "io"},
    "emotion": BASE | {"core", "io", "analysis", "emotion"},
    "scan": BASE | {"core", "io", "analysis", "emotion", "scan"},
}
ENTRY = {"runs", "cli", "__init__"}
FORBIDDEN_TOP = {"stimuli", "visualization", "experiments", "analysis", "validation", "scripts"}


def layer_of(path: Path) -> str | None:
    """The layer a module of the package belongs to (None: an entry point, unconstrained)."""
    rel = path.relative_to(SRC).parts
    if len(rel) > 1:
        return rel[0]
    stem = path.stem
    return None if stem in ENTRY else "base"


def imported_modules(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``path`` (relative ones resolved against
    ``package``, default: the package ``path`` sits in under ``src/llmct``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = (package.split(".") if package else ["llmct", *path.relative_to(SRC).parts[:-1]])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            if mod == "llmct":  # from llmct import X: X may be a subpackage
                out += [(node.lineno, f"llmct.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            out += [(node.lineno, a.value) for a in node.args if isinstance(a, ast.Constant)]
    return out


def target_layer(module: str) -> str | None:
    """The layer (subpackage or base module name) ``module`` lives in; "entry" for an entry
    point; None outside the package."""
    parts = module.split(".")
    if parts[0] != "llmct" or len(parts) == 1:
        return None
    head = parts[1]
    return head if head in ALLOWED or head in BASE else "entry"


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_lower_layers(path: Path):
    layer = layer_of(path)
    bad = []
    for line, mod in imported_modules(path):
        top = mod.split(".")[0]
        if top in FORBIDDEN_TOP:
            bad.append(f"{line}: {mod} (a repository folder, not the package)")
        if layer is None:
            continue
        target = target_layer(mod)
        if target == "entry" or (target is not None and target not in ALLOWED[layer]):
            bad.append(f"{line}: {mod} ({layer} may import {sorted(ALLOWED[layer])})")
        if layer == "analysis" and top in {"torch", "transformers"}:
            bad.append(f"{line}: {mod} (analysis never touches a torch model)")
    assert not bad, f"{path.relative_to(SRC)}: " + "; ".join(bad)


def test_every_module_has_a_layer():
    """A new top-level module must be placed in a layer (or declared an entry point)."""
    top = {p.stem for p in SRC.glob("*.py")}
    assert top <= BASE | ENTRY, f"top-level modules outside the layers: {sorted(top - BASE - ENTRY)}"
    subs = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert subs <= set(ALLOWED) - {"base"}, f"unknown subpackages: {sorted(subs - set(ALLOWED))}"


def test_the_checker_sees_a_violation(tmp_path):
    """The AST reader resolves relative and lazy imports (so the rule test can fail)."""
    fake = tmp_path / "probe.py"
    fake.write_text("def f():\n    from ..emotion import vectors\n    import stimuli.loader\n",
                    encoding="utf-8")
    mods = imported_modules(fake, package="llmct.core")
    assert (2, "llmct.emotion") in mods and (3, "stimuli.loader") in mods
    assert target_layer("llmct.emotion.vectors") == "emotion" not in ALLOWED["core"]
    assert target_layer("llmct.runs") == "entry" and target_layer("numpy") is None


def test_library_imports_outside_a_checkout(tmp_path):
    """Import every module from a directory that is not the repository."""
    names = sorted(".".join(p.relative_to(SRC).with_suffix("").parts) for p in MODULES
                   if p.stem != "__init__")
    code = "import importlib\n" + "".join(f"importlib.import_module('llmct.{n}')\n" for n in names)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
