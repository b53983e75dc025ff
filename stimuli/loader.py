"""Validating loader for the llmct stimulus sets (JSONL, one object per line).

Every experiment reads its stimuli through this module, so a malformed file fails
loudly, once, with the file name, the 1-based line number and what is wrong, instead
of surfacing later as a silent mislabel or a shape error deep inside an analysis.

Format (see ``stimuli/scenarios/stimuli_common.md``): required fields ``id``, ``text``,
``label``, ``set``; optional ``domain``, ``topic``, ``language``, ``intensity``,
``valence``, ``arousal``, ``pair_id``. Unknown fields are rejected (a typo such as
``"lable"`` should not quietly become a missing value).

    >>> from stimuli.loader import load_set, load_sets, to_frame
    >>> set_b = load_set("set_b")
    >>> df = to_frame(load_sets("set_b", "set_b_control"))
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

__all__ = [
    "EMOTIONS",
    "SET_FILES",
    "STIMULI_DIR",
    "Stimulus",
    "StimulusError",
    "load_jsonl",
    "load_set",
    "load_sets",
    "to_frame",
]

STIMULI_DIR = Path(__file__).parent

#: Set name -> the JSONL files (relative to STIMULI_DIR) that make it up.
SET_FILES: dict[str, tuple[str, ...]] = {
    "set_a": ("set_a.jsonl",),
    "set_b": ("set_b.jsonl",),
    "set_b_control": ("set_b_controls.jsonl",),
    "set_c": ("set_c.jsonl",),
    "stories": ("stories_en.jsonl", "stories_ja.jsonl"),
    "neutral_dialogues": ("neutral_dialogues_en.jsonl", "neutral_dialogues_ja.jsonl"),
    "activities": ("activities.jsonl",),
}

#: The 8 Plutchik basic emotions used as labels in Set A and Set B.
EMOTIONS: tuple[str, ...] = (
    "anger",
    "anticipation",
    "disgust",
    "fear",
    "joy",
    "sadness",
    "surprise",
    "trust",
)


class StimulusError(ValueError):
    """A stimulus file or record is invalid (the message names file, line and problem)."""


@dataclass(frozen=True)
class Stimulus:
    """One stimulus: a text with its label and design metadata.

    ``set`` is the stimulus set it belongs to (e.g. ``"set_b"``); ``pair_id`` links an
    item to its matched control; ``valence``/``arousal``/``intensity`` are numbers or
    short category strings, as written in the file.
    """

    id: str
    text: str
    label: str
    set: str
    domain: str | None = None
    topic: str | None = None
    language: str | None = None
    intensity: float | str | None = None
    valence: float | str | None = None
    arousal: float | str | None = None
    pair_id: str | None = None


_REQUIRED = ("id", "text", "label", "set")
_FIELDS = tuple(f.name for f in fields(Stimulus))
_STR_FIELDS = ("id", "text", "label", "set", "domain", "topic", "language", "pair_id")
_SCALAR_FIELDS = ("intensity", "valence", "arousal")  # number or string


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def _parse_record(obj: object, path: Path, lineno: int, default_set: str | None) -> Stimulus:
    """Check one decoded JSON value against the schema and build a Stimulus."""
    where = _where(path, lineno)
    if not isinstance(obj, dict):
        raise StimulusError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise StimulusError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"allowed fields: {', '.join(_FIELDS)}"
        )
    rec = dict(obj)
    if "set" not in rec and default_set is not None:
        rec["set"] = default_set
    for name in _REQUIRED:
        if name not in rec or rec[name] is None:
            raise StimulusError(f"{where}: missing required field {name!r}")
    for name in _STR_FIELDS:
        value = rec.get(name)
        if value is not None and not isinstance(value, str):
            raise StimulusError(
                f"{where}: field {name!r} has wrong type {type(value).__name__} "
                f"(expected a string): {value!r}"
            )
    for name in _SCALAR_FIELDS:
        value = rec.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (str, numbers.Real))
        ):
            raise StimulusError(
                f"{where}: field {name!r} has wrong type {type(value).__name__} "
                f"(expected a number or a string): {value!r}"
            )
    for name in ("id", "label", "set"):
        if not rec[name].strip():
            raise StimulusError(f"{where}: field {name!r} is empty")
    if not rec["text"].strip():
        raise StimulusError(f"{where}: field 'text' is empty or whitespace only")
    return Stimulus(**rec)


def _read(path: Path, default_set: str | None) -> list[tuple[int, Stimulus]]:
    """Parse and validate a file; return (1-based line number, stimulus) pairs."""
    if not path.is_file():
        raise StimulusError(f"{path}: stimulus file not found")
    known_sets = set(SET_FILES) | ({default_set} if default_set else set())
    out: list[tuple[int, Stimulus]] = []
    first_line: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StimulusError(
                    f"{_where(path, lineno)}: invalid JSON ({exc.msg} at column {exc.colno})"
                ) from None
            stim = _parse_record(obj, path, lineno, default_set)
            if stim.set not in known_sets:
                raise StimulusError(
                    f"{_where(path, lineno)}: unknown set name {stim.set!r}; known sets: "
                    f"{', '.join(sorted(known_sets))} (pass default_set= to name your own)"
                )
            if stim.id in first_line:
                raise StimulusError(
                    f"{_where(path, lineno)}: duplicate id {stim.id!r} "
                    f"(first seen on line {first_line[stim.id]})"
                )
            first_line[stim.id] = lineno
            out.append((lineno, stim))
    return out


def load_jsonl(path: str | Path, default_set: str | None = None) -> list[Stimulus]:
    """Load and validate one JSONL file of stimuli (e.g. a user's own file).

    Blank lines are skipped. Each record needs ``id``, ``text`` and ``label``. ``set`` may
    be omitted only when ``default_set`` is given, and must be one of the shipped set
    names (SET_FILES) or ``default_set`` itself -- so a user file can use its own set
    name by passing it as ``default_set``. Ids must be unique within the file.
    Raises StimulusError naming the file, the 1-based line number and the problem.
    """
    return [s for _, s in _read(Path(path), default_set)]


def _check_unique(stimuli: Iterable[Stimulus]) -> None:
    seen: dict[str, str] = {}
    for s in stimuli:
        if s.id in seen:
            raise StimulusError(
                f"duplicate id {s.id!r} across sets: in {seen[s.id]!r} and {s.set!r}"
            )
        seen[s.id] = s.set


def load_set(name: str, language: str | None = None) -> list[Stimulus]:
    """Load a shipped stimulus set by name (see SET_FILES), optionally one language only.

    Every row's ``set`` field must equal ``name``, so a file cannot be loaded as the
    wrong set by accident; ids must be unique across the set's files.
    """
    if name not in SET_FILES:
        raise StimulusError(
            f"unknown stimulus set {name!r}; known sets: {', '.join(sorted(SET_FILES))}"
        )
    out: list[Stimulus] = []
    first: dict[str, str] = {}
    for fname in SET_FILES[name]:
        path = STIMULI_DIR / fname
        if not path.is_file():
            raise StimulusError(f"{path}: stimulus file for set {name!r} not found")
        for lineno, s in _read(path, None):
            where = _where(path, lineno)
            if s.set != name:
                raise StimulusError(
                    f"{where}: set {s.set!r} does not match the set this file is "
                    f"loaded as ({name!r})"
                )
            if s.id in first:
                raise StimulusError(f"{where}: duplicate id {s.id!r} (first seen at {first[s.id]})")
            first[s.id] = where
            out.append(s)
    if language is not None:
        out = [s for s in out if s.language == language]
    return out


def load_sets(*names: str) -> list[Stimulus]:
    """Load several shipped sets, concatenated, checking that ids are unique across them."""
    out: list[Stimulus] = []
    for name in names:
        out.extend(load_set(name))
    _check_unique(out)
    return out


def to_frame(stimuli: Iterable[Stimulus]) -> pd.DataFrame:
    """One row per stimulus, one column per Stimulus field (in declaration order)."""
    return pd.DataFrame([asdict(s) for s in stimuli], columns=list(_FIELDS))
