"""Validating loader for stimulus sets (JSONL, one object per line): the shipped sets and a user's
own files.

Every experiment reads its stimuli through this module, so a malformed file fails loudly, once,
with the file name, the 1-based line number and what is wrong, instead of surfacing later as a
silent mislabel or a shape error deep inside an analysis. Errors are
:class:`llmct.errors.StimulusError` (an :class:`~llmct.errors.LLMCTError`).

Format (see ``stimuli/scenarios/stimuli_common.md`` and the README's "Your own data"): required
fields ``id``, ``text``, ``label``; ``set`` (any name; a user file without it takes the file's
stem, so ``heldout.jsonl`` is set ``heldout``); optional ``domain``, ``topic``, ``language``,
``intensity``, ``valence``, ``arousal``, ``pair_id``, ``frame_id``, ``appraisal``. Unknown fields
are rejected (a typo such as ``"lable"`` should not quietly become a missing value). Files must be
UTF-8 without a byte-order mark.

    >>> from llmct.io.stimuli import load_set, load_sets, load_files, to_frame
    >>> set_b = load_set("set_b")
    >>> mine = load_files(["a.jsonl", "b.jsonl"])   # sets "a" and "b" unless rows name their own
"""

from __future__ import annotations

import json
import numbers
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from llmct.errors import StimulusError

__all__ = [
    "EMOTIONS",
    "FRAME_SETS",
    "SET_FILES",
    "STIMULI_DIR",
    "Stimulus",
    "StimulusError",
    "check_frames",
    "load_files",
    "load_jsonl",
    "load_set",
    "load_sets",
    "to_frame",
]


def _stimuli_dir() -> Path:
    """The shipped ``stimuli/`` folder: next to ``src/`` in a checkout, or the installed
    ``stimuli`` package of the wheel (located without importing it)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "stimuli", here.parents[1] / "stimuli"):
        if (candidate / "set_a.jsonl").is_file():
            return candidate
    import importlib.util

    spec = importlib.util.find_spec("stimuli")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return here.parents[2] / "stimuli"


STIMULI_DIR = _stimuli_dir()

#: Set name -> the JSONL files (relative to STIMULI_DIR) that make it up.
SET_FILES: dict[str, tuple[str, ...]] = {
    "set_a": ("set_a.jsonl",),
    "set_b": ("set_b.jsonl",),
    "set_b_control": ("set_b_controls.jsonl",),
    "set_b_control_v2": ("set_b_controls_v2.jsonl",),
    "set_c": ("set_c.jsonl",),
    "set_d": ("set_d_appraisal.jsonl",),
    "set_d_confirm": ("set_d_confirmation.jsonl",),
    "set_d_confirm_2": ("set_d_confirmation_2.jsonl",),
    "stories": ("stories_en.jsonl", "stories_ja.jsonl"),
    "stories_v2": ("stories_v2_en.jsonl", "stories_v2_ja.jsonl"),
    "neutral_dialogues": ("neutral_dialogues_en.jsonl", "neutral_dialogues_ja.jsonl"),
    "neutral_stories": ("neutral_stories_en.jsonl", "neutral_stories_ja.jsonl"),
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

#: Sets built as frames (one scenario frame written once per emotion and once neutral): every
#: ``frame_id`` must have exactly one item of each of these labels.
FRAME_SETS: dict[str, tuple[str, ...]] = {
    "set_d": (*EMOTIONS, "neutral"),
    "set_d_confirm": (*EMOTIONS, "neutral"),
    "set_d_confirm_2": (*EMOTIONS, "neutral"),
}


@dataclass(frozen=True)
class Stimulus:
    """One stimulus: a text with its label and design metadata.

    ``set`` is the stimulus set it belongs to (e.g. ``"set_b"`` or a user's own name);
    ``pair_id`` links an item to its matched control; ``frame_id`` groups the variants of one
    scenario frame (Set D) and ``appraisal`` names the appraisal pattern an item was written to;
    ``valence``/``arousal``/``intensity`` are numbers or short category strings, as written.
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
    frame_id: str | None = None
    appraisal: str | None = None


_REQUIRED = ("id", "text", "label", "set")
_FIELDS = tuple(f.name for f in fields(Stimulus))
_STR_FIELDS = ("id", "text", "label", "set", "domain", "topic", "language", "pair_id", "frame_id",
               "appraisal")
_SCALAR_FIELDS = ("intensity", "valence", "arousal")  # number or string


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def _parse_record(obj: object, path: Path, lineno: int, default_set: str) -> Stimulus:
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
    if "set" not in rec:
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


_BOMS = {b"\xef\xbb\xbf": "a UTF-8 byte-order mark", b"\xff\xfe": "a UTF-16 byte-order mark",
         b"\xfe\xff": "a UTF-16 byte-order mark"}


def _lines(path: Path) -> list[tuple[int, str]]:
    """``(1-based line number, decoded line)`` of a UTF-8 file; a folder, a missing file, a
    byte-order mark or bytes that are not UTF-8 are StimulusErrors naming the file (and line)."""
    if path.is_dir():
        raise StimulusError(f"{path}: is a folder, not a stimulus file (pass a .jsonl file)")
    if not path.is_file():
        raise StimulusError(f"{path}: stimulus file not found")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StimulusError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    for bom, what in _BOMS.items():
        if raw.startswith(bom):
            raise StimulusError(
                f"{path}:1: the file starts with {what}; save it as UTF-8 without BOM"
            )
    out = []
    for lineno, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            out.append((lineno, chunk.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise StimulusError(
                f"{path}:{lineno}: not UTF-8 text (byte 0x{chunk[exc.start]:02x} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from None
    return out


def _looks_like_csv(path: Path, line: str) -> bool:
    return path.suffix.lower() in (".csv", ".tsv") or (
        not line.lstrip().startswith(("{", "[")) and ("," in line or "\t" in line))


def _read(path: Path, default_set: str | None) -> list[tuple[int, Stimulus]]:
    """Parse and validate a file; return (1-based line number, stimulus) pairs."""
    default = default_set or path.stem
    out: list[tuple[int, Stimulus]] = []
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = (" (this looks like CSV; stimulus files are JSONL: one JSON object per line, "
                    "see the README's 'Your own data')" if _looks_like_csv(path, line) else "")
            raise StimulusError(
                f"{_where(path, lineno)}: invalid JSON ({exc.msg} at column {exc.colno}){hint}"
            ) from None
        stim = _parse_record(obj, path, lineno, default)
        if stim.id in first_line:
            raise StimulusError(
                f"{_where(path, lineno)}: duplicate id {stim.id!r} "
                f"(first seen on line {first_line[stim.id]})"
            )
        first_line[stim.id] = lineno
        out.append((lineno, stim))
    if not out:
        raise StimulusError(f"{path}: no stimuli (the file is empty or has only blank lines)")
    return out


def load_jsonl(path: str | Path, default_set: str | None = None) -> list[Stimulus]:
    """Load and validate one JSONL file of stimuli (e.g. a user's own file).

    Blank lines are skipped. Each record needs ``id``, ``text`` and ``label``; ``set`` may be any
    name, and a record without one takes ``default_set`` or, if that is None, the file's stem.
    Ids must be unique within the file.

    Raises:
        StimulusError: naming the file, the 1-based line number and the problem (not UTF-8, a
            byte-order mark, a folder, invalid JSON or CSV, a missing or empty field, a duplicate
            id, an empty file).
    """
    return [s for _, s in _read(Path(path), default_set)]


def load_files(paths: Sequence[str | Path]) -> list[Stimulus]:
    """Several user files concatenated in order (each validated by :func:`load_jsonl`); ids must
    be unique across the files. A file's rows without ``set`` take its stem as their set name,
    so ``load_files(["a.jsonl", "b.jsonl"])`` gives sets ``a`` and ``b``.

    Raises:
        StimulusError: as :func:`load_jsonl`, or for an id found in two files (both named).
    """
    out: list[Stimulus] = []
    first: dict[str, str] = {}
    for p in paths:
        path = Path(p)
        for lineno, s in _read(path, None):
            where = _where(path, lineno)
            if s.id in first:
                raise StimulusError(f"{where}: duplicate id {s.id!r} (first seen at {first[s.id]})")
            first[s.id] = where
            out.append(s)
    return out


def _check_unique(stimuli: Iterable[Stimulus]) -> None:
    seen: dict[str, str] = {}
    for s in stimuli:
        if s.id in seen:
            raise StimulusError(
                f"duplicate id {s.id!r} across sets: in {seen[s.id]!r} and {s.set!r}"
            )
        seen[s.id] = s.set


def check_frames(stimuli: Sequence[Stimulus], labels: Sequence[str], where: str = "") -> None:
    """Every item has a ``frame_id``, and every frame has exactly one item of each of ``labels``
    (and no other label).

    Raises:
        StimulusError: naming the frame and the missing, duplicated or unexpected label.
    """
    prefix = f"{where}: " if where else ""
    frames: dict[str, list[Stimulus]] = defaultdict(list)
    for s in stimuli:
        if not s.frame_id:
            raise StimulusError(f"{prefix}item {s.id!r} has no frame_id (required in this set)")
        frames[s.frame_id].append(s)
    for frame, items in frames.items():
        got = [s.label for s in items]
        for label in labels:
            n = got.count(label)
            if n == 0:
                raise StimulusError(f"{prefix}frame {frame!r} has no {label!r} item "
                                    f"(each frame needs one of: {', '.join(labels)})")
            if n > 1:
                ids = [s.id for s in items if s.label == label]
                raise StimulusError(f"{prefix}frame {frame!r} has {n} {label!r} items "
                                    f"({', '.join(ids)}); exactly one expected")
        extra = sorted(set(got) - set(labels))
        if extra:
            raise StimulusError(f"{prefix}frame {frame!r} has unexpected label(s) "
                                f"{', '.join(map(repr, extra))}; allowed: {', '.join(labels)}")


def load_set(name: str, language: str | None = None) -> list[Stimulus]:
    """Load a shipped stimulus set by name (see SET_FILES), optionally one language only.

    Every row's ``set`` field must equal ``name``, so a file cannot be loaded as the
    wrong set by accident; ids must be unique across the set's files; frame sets (FRAME_SETS)
    must have one item per label in every frame.

    Raises:
        StimulusError: an unknown set name, a missing file of the set, or an invalid row.
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
        for lineno, s in _read(path, name):
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
    if name in FRAME_SETS:
        check_frames(out, FRAME_SETS[name], where=" + ".join(str(STIMULI_DIR / f)
                                                            for f in SET_FILES[name]))
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


def to_frame(stimuli: Iterable[Stimulus]):
    """One row per stimulus, one column per Stimulus field (in declaration order), as a
    ``pandas.DataFrame``."""
    import pandas as pd

    return pd.DataFrame([asdict(s) for s in stimuli], columns=list(_FIELDS))
