"""Every number quoted in a README or doc that is registered in ``analysis/claims.csv`` equals
its source file, rounded as quoted. A quoted number can then never drift from its CSV.

Registry columns: ``doc`` (Markdown file), ``quote`` (text that must appear in it, whitespace
normalised), ``csv`` (the file the numbers come from), ``where`` (a pandas query selecting rows,
in file order), ``column`` (``|``-separated value specs, matched in order to the numbers in the
quote: ``name`` = the column of the first selected row, ``name*k`` = that column of the first k
rows, ``count`` = the number of selected rows, ``constN`` = the number N quoted as such, e.g. the
"2" of "v2"). Numbers in the quote after the last spec are context (e.g. a total) and are not
checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "analysis" / "claims.csv"
NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def _normalise(text: str) -> str:
    """Whitespace collapsed; the typographic minus read as '-'."""
    return re.sub(r"\s+", " ", text.replace("\u2212", "-")).strip()


def _expected(frame: pd.DataFrame, spec: str) -> list[float]:
    values: list[float] = []
    for part in spec.split("|"):
        if part == "count":
            values.append(float(len(frame)))
            continue
        if part.startswith("const"):
            values.append(float(part[len("const"):]))
            continue
        name, _, k = part.partition("*")
        values.extend(float(v) for v in frame[name].iloc[: int(k or 1)])
    return values


def _table(path: Path, where: str) -> pd.DataFrame:
    """A CSV, or a JSON result flattened to one row (nested keys joined by '.'), filtered by
    ``where`` (a pandas query; empty keeps every row)."""
    if path.suffix == ".json":
        import json

        frame = pd.json_normalize(json.loads(path.read_text(encoding="utf-8")))
    else:
        frame = pd.read_csv(path)
    return frame.query(where) if where else frame


def _claims() -> list[dict]:
    return pd.read_csv(REGISTRY, dtype=str, keep_default_na=False).to_dict("records")


@pytest.mark.parametrize("claim", _claims(), ids=lambda c: f"{c['doc']}:{c['note']}")
def test_quoted_number_matches_its_file(claim):
    doc = _normalise((ROOT / claim["doc"]).read_text(encoding="utf-8"))
    quote = _normalise(claim["quote"])
    assert quote in doc, f"{claim['doc']} no longer quotes {quote!r} ({claim['note']})"
    frame = _table(ROOT / claim["csv"], claim["where"])
    assert len(frame), f"{claim['csv']}: no row matches {claim['where']!r}"
    expected = _expected(frame, claim["column"])
    quoted = NUMBER.findall(quote)
    assert len(quoted) >= len(expected), f"{quote!r} quotes fewer numbers than {claim['column']}"
    for text, value in zip(quoted, expected, strict=False):
        decimals = len(text.partition(".")[2])
        shown = f"{value:+.{decimals}f}" if text[0] in "+-" else f"{value:.{decimals}f}"
        assert shown == text, (
            f"{claim['doc']} quotes {text} but {claim['csv']} has {value!r} ({claim['note']})")


def test_registry_is_not_empty():
    assert len(_claims()) >= 15


VERDICTS = ("reproduced", "reproduced, but a control explains it", "partly", "not reproduced",
            "not testable here", "not tested")


def _count_verdicts(text: str) -> dict[str, dict[str, int]]:
    """Per ``## N.`` section, rows by the first bold verdict of their last cell."""
    pattern = re.compile(r"\*\*(" + "|".join(sorted(map(re.escape, VERDICTS), key=len,
                                                     reverse=True)) + r")\*\*")
    counts: dict[str, dict[str, int]] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].split(" ", 1)[0] if line[3:4].isdigit() else None
        elif section and line.startswith("| ") and not line.startswith(("| claim", "|---")):
            match = pattern.search(line.rstrip(" |").split(" | ")[-1])
            verdict = match.group(1) if match else "no verdict"
            counts.setdefault(section, {}).setdefault(verdict, 0)
            counts[section][verdict] += 1
    return counts


def test_verdict_count():
    """The verdict-count table of docs/reproducing.md equals a recount of its tables."""
    text = (ROOT / "docs" / "reproducing.md").read_text(encoding="utf-8")
    body, _, tail = text.partition("## Verdict count")
    counts = _count_verdicts(body)
    columns = [*VERDICTS, "no verdict"]
    rows = [line for line in tail.split("## Caveats")[0].splitlines()
            if re.match(r"\| \d\.", line)]
    assert len(rows) == len(counts) == 3
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        section = cells[0].split(" ")[0]
        stated = dict(zip(columns, map(int, cells[1:]), strict=True))
        found = {c: counts[section].get(c, 0) for c in columns}
        assert stated == found, f"section {section}: table says {stated}, rows give {found}"
