"""llmct: a CT scan of an LLM's hidden states.

Load a model, capture per-layer activations exactly, intervene, and measure.

The names below are imported on first use (PEP 562), so ``import llmct`` and the ``llmct``
command start without torch; ``llmct.capture`` etc. are the same objects as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmct._version import __version__
from llmct.errors import (
    CaptureError,
    LLMCTError,
    ModelLoadError,
    StoreError,
    UnsupportedArchitectureError,
)

if TYPE_CHECKING:
    from llmct.core.arch import ArchAdapter, describe, get_adapter, head_dim
    from llmct.core.capture import SOURCES, Capture, capture, resolve_layers
    from llmct.core.chat import ChatRendering, MessageSpan, render_chat
    from llmct.core.models import DEFAULT, load_model, model_fingerprint, model_slug

#: public name -> the module it lives in
_LAZY = {
    **dict.fromkeys(("ArchAdapter", "describe", "get_adapter", "head_dim"), "llmct.core.arch"),
    **dict.fromkeys(("SOURCES", "Capture", "capture", "resolve_layers"), "llmct.core.capture"),
    **dict.fromkeys(("ChatRendering", "MessageSpan", "render_chat"), "llmct.core.chat"),
    **dict.fromkeys(("DEFAULT", "load_model", "model_fingerprint", "model_slug"),
                    "llmct.core.models"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmct' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "SOURCES",
    "ArchAdapter",
    "Capture",
    "CaptureError",
    "ChatRendering",
    "DEFAULT",
    "LLMCTError",
    "MessageSpan",
    "ModelLoadError",
    "StoreError",
    "UnsupportedArchitectureError",
    "__version__",
    "capture",
    "describe",
    "get_adapter",
    "head_dim",
    "load_model",
    "model_fingerprint",
    "model_slug",
    "render_chat",
    "resolve_layers",
]
