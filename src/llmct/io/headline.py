"""The experiment contract: every experiment writes ``headline.csv`` with fixed columns.

Each numbered experiment declares, in ``experiments/NN_name/headline.py``, the earlier
experiments it reads (``INPUTS``) and a function ``claims(folder) -> (list[Claim], notes)`` that
picks its headline numbers from its own result files. The harness (:func:`llmct.runs.experiment_main`)
writes them to ``<results folder>/headline.csv`` when a run succeeds; the cross-model summary
(experiment 12), ``scripts/reproduce.py`` and ``scripts/headlines.py`` read only these files.

Columns (:data:`COLUMNS`): ``experiment, model, claim_id, metric, value, ci_lo, ci_hi, ci_unit,
control, control_value, verdict``. ``value`` may be a number or a short text (a layer label such
as ``h@L21``, a count such as ``3/72``); ``ci_*`` are empty when the experiment computes no
interval; ``ci_unit`` names the independent unit the interval resamples (items, conversations,
...); ``control``/``control_value`` name the control that could explain the value; ``verdict`` is
the experiment's own comparison with that control where it makes one (empty otherwise; the
verdicts against the source works are in ``docs/reproducing.md``).

The lookup helpers (:func:`table`, :func:`rows`, :func:`value`, :func:`metric`) raise
:class:`Missing` for an absent file, column or row, so a headline names what it could not find.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llmct.errors import LLMCTError
from llmct.files import atomic_write

COLUMNS = ("experiment", "model", "claim_id", "metric", "value", "ci_lo", "ci_hi", "ci_unit",
           "control", "control_value", "verdict")
FILENAME = "headline.csv"
NAN = float("nan")


class Missing(LookupError):
    """A file, column or row a headline needs is absent."""


@dataclass
class Claim:
    """One headline number (a row of ``headline.csv`` without ``experiment`` and ``model``)."""

    claim_id: str
    metric: str
    value: Any
    ci_lo: float = NAN
    ci_hi: float = NAN
    ci_unit: str = ""
    control: str = ""
    control_value: Any = NAN
    verdict: str = ""


# -- reading an experiment's own tables -----------------------------------------------------------

def table(folder: Path, name: str) -> pd.DataFrame:
    """``folder/name`` as a DataFrame; :class:`Missing` when the file is absent."""
    path = Path(folder) / name
    if not path.exists():
        raise Missing(f"no {name}")
    return pd.read_csv(path)


def rows(df: pd.DataFrame, **eq) -> pd.DataFrame:
    """The rows of ``df`` whose columns equal ``eq``; :class:`Missing` for an absent column."""
    for col, want in eq.items():
        if col not in df.columns:
            raise Missing(f"no column {col!r}")
        df = df[df[col] == want]
    return df


def value(df: pd.DataFrame, col: str, **eq) -> Any:
    """The ``col`` of the first row matching ``eq``; :class:`Missing` when none matches."""
    sub = rows(df, **eq)
    if sub.empty:
        raise Missing(f"no row with {eq}")
    if col not in sub.columns:
        raise Missing(f"no column {col!r}")
    return sub[col].iloc[0]


def metric(df: pd.DataFrame, name: str, col: str = "value", **eq) -> Any:
    """The ``col`` of the row of a long ``summary.csv`` (columns metric, value, p, ...) whose
    metric text starts with ``name`` (experiments append details such as how p was computed)."""
    if "metric" not in df.columns:
        raise Missing("no column 'metric'")
    sub = rows(df[df.metric.astype(str).str.startswith(name)], **eq)
    if sub.empty:
        raise Missing(f"no metric starting {name!r} with {eq}")
    return value(sub, col)


def guarded(claims: list[Claim], notes: list[str], fn, what: str) -> None:
    """``claims += fn()``; a :class:`Missing` (or a lookup error) becomes a note instead."""
    try:
        claims += fn()
    except (Missing, KeyError, ValueError, IndexError) as exc:
        notes.append(f"{what}: {exc}")


# -- the file ---------------------------------------------------------------------------------------

def headline_frame(experiment: str, model: str, claims: Sequence[Claim]) -> pd.DataFrame:
    """``[len(claims), 11]`` DataFrame in :data:`COLUMNS` order. Raises LLMCTError for a repeated
    ``claim_id`` (a claim id names one number)."""
    ids = [c.claim_id for c in claims]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise LLMCTError(f"{experiment}: headline claim ids repeated: {repeated}")
    data = [(experiment, model, *astuple(c)) for c in claims]
    return pd.DataFrame(data, columns=list(COLUMNS))


def write_headline(folder: str | Path, experiment: str, model: str, claims: Sequence[Claim]
                   ) -> Path:
    """Write ``folder/headline.csv`` atomically (temporary file + rename) and return its path."""
    frame = headline_frame(experiment, model, claims)
    return atomic_write(Path(folder) / FILENAME,
                        lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))


def read_headline(path: str | Path) -> pd.DataFrame:
    """A ``headline.csv``, checked against the contract. Raises LLMCTError naming the file and
    the missing or extra columns."""
    path = Path(path)
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if tuple(frame.columns) != COLUMNS:
        missing = [c for c in COLUMNS if c not in frame.columns]
        extra = [c for c in frame.columns if c not in COLUMNS]
        raise LLMCTError(f"{path}: not a headline table (missing columns {missing}, "
                         f"extra {extra}; expected {list(COLUMNS)})")
    return frame


def model_of(folder: Path) -> str:
    """The slug of the model a results folder was made with (from the ``model`` column of any of
    its CSVs, the ``--model`` given), else the folder's name (``outputs/<slug>/``)."""
    from llmct.core.models import model_slug

    for path in sorted(Path(folder).glob("*.csv")):
        if path.name == FILENAME:
            continue
        try:
            head = pd.read_csv(path, nrows=1)
        except (ValueError, OSError):
            continue
        if "model" in head.columns and len(head):
            return model_slug(str(head.model.iloc[0]))
    return Path(folder).name


def as_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """One flat record of a headline table: ``claim_id -> value``, plus ``claim_id_lo`` /
    ``claim_id_hi`` for every claim with an interval (the layout of experiment 12's table)."""
    out: dict[str, Any] = {}
    for r in frame.itertuples(index=False):
        out[str(r.claim_id)] = _number_or_text(r.value)
        if _finite(r.ci_lo) and _finite(r.ci_hi):
            out[f"{r.claim_id}_lo"] = float(r.ci_lo)
            out[f"{r.claim_id}_hi"] = float(r.ci_hi)
    return out


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _number_or_text(x: Any) -> Any:
    """Numbers as float (int when integral and written without a point), text as str."""
    if isinstance(x, str):
        try:
            f = float(x)
        except ValueError:
            return x
        return int(f) if f.is_integer() and "." not in x and "e" not in x.lower() else f
    return x


__all__ = ["COLUMNS", "FILENAME", "Claim", "Missing", "as_columns", "guarded", "headline_frame",
           "metric", "model_of", "read_headline", "rows", "table", "value", "write_headline"]
