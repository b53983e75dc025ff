"""Exceptions with messages a researcher can act on (never a bare traceback from deep inside HF).

Every error llmct raises on purpose derives from :class:`LLMCTError`; the experiments' and the
``llmct`` command's shared wrapper (:func:`report_errors`) prints its message as one line
``NAME: error: MESSAGE`` and exits with status 2.
"""

import argparse
import contextvars
import os
import sys
from collections.abc import Callable

#: The name errors are reported under while a command runs (an experiment's folder name, "llmct").
RUN_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmct_run", default=None)


class LLMCTError(Exception):
    """Base class for every error llmct raises on purpose."""


class ModelLoadError(LLMCTError):
    """A model could not be loaded: missing path, offline hub, bad dtype/device."""


class UnsupportedArchitectureError(LLMCTError):
    """No adapter knows where this model keeps its blocks, attention, MLP and norms."""


class CaptureError(LLMCTError, ValueError):
    """Bad capture request: out-of-range layer, unknown source, bad position, too long input."""


class StoreError(LLMCTError):
    """Storage problem: refusing to overwrite, a corrupt or foreign file, a store of another model."""


class StimulusError(LLMCTError, ValueError):
    """A stimulus file or record is invalid (the message names file, line and problem)."""


class UsageError(LLMCTError, ValueError):
    """A command-line option or argument that cannot work (checked before any model is loaded)."""


def one_line(exc: BaseException) -> str:
    """A one-line message for an llmct, file-system or encoding error (file, line and problem).

    OSErrors name the path and what went wrong (a folder where a file was expected, a folder that
    cannot be written, a missing file); UnicodeDecodeErrors say the bytes are not UTF-8.
    """
    if isinstance(exc, OSError) and not isinstance(exc, LLMCTError):
        hints = {
            IsADirectoryError: "is a folder, not a file",
            NotADirectoryError: "a part of this path is a file, not a folder",
            FileNotFoundError: "no such file or folder",
            FileExistsError: "already exists",
            PermissionError: "permission denied (cannot write or read here; choose another "
                             "--out or fix the permissions)",
        }
        what = next((h for t, h in hints.items() if isinstance(exc, t)), None)
        what = what or exc.strerror or type(exc).__name__
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return f"{where}: {what}" if where else f"{what} ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return (f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                "save the file as UTF-8")
    text = str(exc) or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, ``NAME: error: MESSAGE`` (exit 2),
    without the long usage block (``--help`` still prints it)."""

    def error(self, message: str):  # argparse API
        self.exit(2, f"{RUN_NAME.get() or self.prog}: error: {message}\n")


def report_errors(name: str, command: Callable[[], int | None]) -> int:
    """Run ``command()`` under the run name ``name``: llmct's own errors, file-system errors and
    encoding errors print one line ``NAME: error: PROBLEM`` on stderr and give 2
    (``LLMCT_TRACEBACK=1`` re-raises instead). Returns the command's exit status (0 for None).
    The one error handler of the ``llmct`` command and of every experiment."""
    token = RUN_NAME.set(name)
    try:
        result = command()
        return result if isinstance(result, int) else 0
    except (LLMCTError, OSError, UnicodeError) as exc:
        if os.environ.get("LLMCT_TRACEBACK"):
            raise
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        RUN_NAME.reset(token)
