"""llmct: a CT scan of an LLM's hidden states.

Load a model, capture per-layer activations exactly, intervene, and measure.
"""

from .arch import ArchAdapter, describe, get_adapter, head_dim
from .capture import SOURCES, Capture, capture, resolve_layers
from .chat import ChatRendering, MessageSpan, render_chat
from .errors import (
    CaptureError,
    LLMCTError,
    ModelLoadError,
    StoreError,
    UnsupportedArchitectureError,
)
from .models import DEFAULT, load_model, model_fingerprint, model_slug

__version__ = "0.1.0"

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
