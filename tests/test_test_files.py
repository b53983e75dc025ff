"""Every library module has a test file named after it (issue #12, item 5), and that file uses it.

Naming rule: module ``llmct/<package>/<name>.py`` (or ``llmct/<name>.py``) is tested in
``tests/test_<name>.py`` or ``tests/test_<name>_<aspect>.py``; a module of ``llmct.scan`` may
instead use ``tests/test_scan_<name>[_<aspect>].py`` (``library``, ``metrics``, ``run`` ... would
be ambiguous without it). The few exceptions are listed in ``EXCEPTIONS`` with their reason. At
least one of the matching files must import or name the module (``llmct.<package>.<name>``,
``from llmct.<package> import <name>``, or its top-level re-export ``llmct.<name>``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "llmct"
TESTS = Path(__file__).resolve().parent

#: module (path under src/llmct without .py) -> its test file, or None when it needs none
EXCEPTIONS: dict[str, str | None] = {
    "__init__": None,  # re-exports only; every re-exported name is tested with its module
    "_version": None,  # one constant
    "core/prefix": "test_shared_prefix.py",  # 'test_prefix' would not say which prefix
}


def library_modules() -> list[str]:
    return sorted(p.relative_to(SRC).with_suffix("").as_posix() for p in SRC.rglob("*.py")
                  if p.name != "__init__.py" or p.parent == SRC)


def candidate_files(module: str) -> list[Path]:
    """The test files the naming rule allows for ``module`` (those that exist)."""
    if module in EXCEPTIONS:
        name = EXCEPTIONS[module]
        return [TESTS / name] if name and (TESTS / name).exists() else []
    *package, name = module.split("/")
    stems = [f"test_{name}"] + ([f"test_scan_{name}"] if package == ["scan"] else [])
    found = []
    for stem in stems:
        found += [TESTS / f"{stem}.py", *sorted(TESTS.glob(f"{stem}_*.py"))]
    return [f for f in found if f.exists()]


def uses_module(text: str, module: str) -> bool:
    *package, name = module.split("/")
    dotted = ".".join(["llmct", *package])
    if re.search(rf"\b{re.escape(dotted)}\.{name}\b|\bllmct\.{name}\b", text):
        return True
    for m in re.finditer(rf"^\s*from {re.escape(dotted)} import (\([^)]*\)|[^\n]*)", text,
                         re.MULTILINE):
        if re.search(rf"\b{name}\b", m.group(1)):
            return True
    return False


MODULES = library_modules()


def test_the_module_list_is_complete():
    assert {"errors", "style", "runs", "cli", "core/arch", "core/hooks", "scan/run",
            "emotion/null_directions", "io/store", "analysis/stats"} <= set(MODULES)
    assert not [m for m in EXCEPTIONS if m not in MODULES]  # no stale exception


@pytest.mark.parametrize("module", [m for m in MODULES if EXCEPTIONS.get(m, "") is not None])
def test_every_module_has_a_test_file_named_after_it(module):
    files = candidate_files(module)
    assert files, (f"src/llmct/{module}.py has no test file: add tests/test_"
                   f"{module.rsplit('/', 1)[-1]}.py (see the naming rule of {Path(__file__).name})")
    assert any(uses_module(f.read_text(encoding="utf-8"), module) for f in files), (
        f"none of {[f.name for f in files]} imports llmct.{module.replace('/', '.')}")


def test_the_rule_itself():
    assert [f.name for f in candidate_files("core/capture")] == [
        "test_capture_errors.py", "test_capture_parity.py"]
    assert [f.name for f in candidate_files("scan/run")] == ["test_scan_run.py"]
    assert candidate_files("core/no_such_module") == []
    assert uses_module("from llmct.scan import population as pop\n", "scan/population")
    assert uses_module("from llmct.core.positions import (\n    batch_readout,\n)\n",
                       "core/positions")
    assert uses_module("llmct.capture(model, None, ids)", "core/capture")  # top-level re-export
    assert not uses_module("from llmct.core import hooks\nimport positions\n", "core/positions")
    assert not uses_module("from llmct.scan.run import run_scan\n", "runs")
