"""The package version, in one place (read by ``llmct.__version__`` and written into every store)."""

__version__ = "0.1.0"
