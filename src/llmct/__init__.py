"""llmct: a CT scan of an LLM's hidden states.

Load a model, capture per-layer activations exactly, intervene, and measure.
"""

from llmct._version import __version__
from llmct.core.arch import ArchAdapter, describe, get_adapter, head_dim
from llmct.core.capture import SOURCES, Capture, capture, resolve_layers
from llmct.core.chat import ChatRendering, MessageSpan, render_chat
from llmct.core.models import DEFAULT, load_model, model_fingerprint, model_slug
from llmct.errors import (
    CaptureError,
    LLMCTError,
    ModelLoadError,
    StoreError,
    UnsupportedArchitectureError,
)

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
