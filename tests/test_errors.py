"""llmct.errors: every deliberate error is an LLMCTError; report_errors prints one line
``NAME: error: PROBLEM`` on stderr and returns 2 (file-system and encoding errors included), other
exceptions propagate; argparse errors are one line too."""

from __future__ import annotations

import pytest

from llmct import errors
from llmct.errors import (
    RUN_NAME,
    CaptureError,
    LLMCTError,
    ModelLoadError,
    OneLineParser,
    StimulusError,
    StoreError,
    UnsupportedArchitectureError,
    UsageError,
    one_line,
    report_errors,
)


@pytest.fixture(autouse=True)
def _no_traceback(monkeypatch):
    monkeypatch.delenv("LLMCT_TRACEBACK", raising=False)


def _raise(exc):
    def command():
        raise exc
    return command


def test_every_error_is_an_llmct_error_and_bad_values_are_value_errors():
    for cls in (ModelLoadError, UnsupportedArchitectureError, CaptureError, StoreError,
                StimulusError, UsageError):
        assert issubclass(cls, LLMCTError)
    assert all(issubclass(c, ValueError) for c in (CaptureError, StimulusError, UsageError))
    assert not issubclass(StoreError, ValueError)


def test_report_errors_prints_one_line_and_returns_2(capsys):
    rc = report_errors("02_probes", _raise(StoreError("a.npz: corrupt\n  details here\n")))
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err == "02_probes: error: a.npz: corrupt; details here\n"


@pytest.mark.parametrize(("exc", "message"), [
    (FileNotFoundError(2, "No such file or directory", "data/x.jsonl"),
     "data/x.jsonl: no such file or folder"),
    (IsADirectoryError(21, "Is a directory", "out"), "out: is a folder, not a file"),
    (NotADirectoryError(20, "Not a directory", "f/x"), "f/x: a part of this path is a file, not a "
                                                        "folder"),
    (PermissionError(13, "Permission denied", "locked"), "locked: permission denied"),
    (FileExistsError(17, "File exists", "a", None, "b"), "a -> b: already exists"),
    (OSError(28, "No space left on device"), "No space left on device"),
    (UnicodeDecodeError("utf-8", b"ok \xff", 3, 4, "invalid start byte"),
     "not UTF-8 text (byte 0xff at offset 3); save the file as UTF-8"),
])
def test_file_system_and_encoding_errors_are_one_line_too(capsys, exc, message):
    assert report_errors("llmct", _raise(exc)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"llmct: error: {message}") and err.count("\n") == 1
    assert one_line(exc).startswith(message)


def test_the_command_s_status_and_the_run_name():
    seen = []

    def command():
        seen.append(RUN_NAME.get())
        return 3

    assert RUN_NAME.get() is None
    assert report_errors("07_attention", command) == 3
    assert seen == ["07_attention"] and RUN_NAME.get() is None  # reset afterwards
    assert report_errors("x", lambda: None) == 0


def test_other_exceptions_and_llmct_traceback_propagate(monkeypatch):
    with pytest.raises(KeyError):  # a bug is never hidden behind one line
        report_errors("llmct", _raise(KeyError("k")))
    monkeypatch.setenv("LLMCT_TRACEBACK", "1")
    with pytest.raises(UsageError, match="bad option"):
        report_errors("llmct", _raise(UsageError("bad option")))
    assert RUN_NAME.get() is None


def test_one_line_parser_errors(capsys):
    parser = OneLineParser(prog="llmct scan")
    parser.add_argument("scenario")
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("llmct scan: error: the following arguments are required: "
                                       "scenario\n")
    token = RUN_NAME.set("02_probes")
    try:
        with pytest.raises(SystemExit):
            parser.parse_args(["a", "--nope"])
    finally:
        RUN_NAME.reset(token)
    assert capsys.readouterr().err == "02_probes: error: unrecognized arguments: --nope\n"


def test_an_error_without_a_message_is_named_by_its_type():
    assert one_line(StoreError()) == "StoreError"
    assert errors.one_line(CaptureError("  one\n\n  two  ")) == "one; two"
