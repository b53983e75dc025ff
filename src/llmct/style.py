"""Access to the project's one style module, ``visualization/figures/style_config.py``.

The library's figures and the HTML report take their colours from it so that every chart of the
project shares one palette; it is loaded from the repository root (it is not part of the wheel).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path


@functools.cache
def style():
    """The shared style module ``visualization/figures/style_config.py`` (repo root)."""
    try:
        return importlib.import_module("visualization.figures.style_config")
    except ImportError:
        path = Path(__file__).resolve().parents[2] / "visualization" / "figures" / "style_config.py"
        spec = importlib.util.spec_from_file_location("llmct_style_config", path)
        if spec is None or not path.exists():
            raise ImportError(f"style config not found at {path}") from None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
