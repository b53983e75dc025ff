"""Exceptions with messages a researcher can act on (never a bare traceback from deep inside HF)."""


class LLMCTError(Exception):
    """Base class for every error llmct raises on purpose."""


class ModelLoadError(LLMCTError):
    """A model could not be loaded: missing path, offline hub, bad dtype/device."""


class UnsupportedArchitectureError(LLMCTError):
    """No adapter knows where this model keeps its blocks, attention, MLP and norms."""


class CaptureError(LLMCTError, ValueError):
    """Bad capture request: out-of-range layer, unknown source, bad position, too long input."""


class StoreError(LLMCTError):
    """Storage problem: refusing to overwrite, a corrupt or foreign file."""
