"""Blind manipulation check of Set D (issue #15): a reader who did not write the items labels them.

Two commands:

``make-sheet PATH [--seed N] [--files F ...]``
    Writes a shuffled blind sheet to PATH: one JSON object per line, ``{"blind_id", "text"}``
    only (opaque ids ``B001``..), for all items of Set D and its confirmation frames, plus a
    header line ``{"instructions": ..., "labels": [...]}``. The key (blind id -> item id, label,
    frame, set) goes to ``validation/outputs/set_d_blind_key.json`` (or ``--key``); the sheet
    itself carries no id, label, frame or set.

``score LABELS.jsonl [--key K] [--name STEM]``
    Reads a reader's labels, one ``{"blind_id": ..., "label": ...}`` per line, joins them to the
    key and writes ``set_d_manipulation_check.csv`` (one row per intended label: n, n labelled,
    n correct, % intended label, passes >= 80%) and ``.md`` (that table, the confusion matrix
    intended x given, the failing items, and the same split by set) to ``validation/outputs/``.
    Emotions under 80% are flagged. Missing or unknown labels are reported and counted as wrong.

Thresholds from issue #15: at least 80% of each emotion's items must get their intended label.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "outputs"
FILES = (ROOT / "stimuli" / "set_d_appraisal.jsonl", ROOT / "stimuli" / "set_d_confirmation.jsonl")
KEY = OUT / "set_d_blind_key.json"
LABELS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust",
          "neutral")
PASS = 0.80

INSTRUCTIONS = (
    "Each line after this one is a short scenario. For each, choose the ONE label that best fits "
    "what the main person is most likely to be feeling, from: " + ", ".join(LABELS) + ". "
    "'neutral' means nothing that matters to the person happens. Answer one JSON object per line:"
    ' {"blind_id": "B001", "label": "joy"}. Do not consult any other file.'
)


def _items(files=FILES) -> list[dict]:
    rows = []
    for path in files:
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def make_sheet(path: Path, *, key_path: Path = KEY, seed: int = 15, files=FILES) -> int:
    items = _items(files)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    key, lines = {}, [{"instructions": INSTRUCTIONS, "labels": list(LABELS)}]
    for k, i in enumerate(order, start=1):
        bid = f"B{k:03d}"
        it = items[i]
        key[bid] = {"id": it["id"], "label": it["label"], "frame_id": it.get("frame_id"),
                    "set": it["set"]}
        lines.append({"blind_id": bid, "text": it["text"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_text(json.dumps({"seed": seed, "n": len(key), "key": key}, indent=1,
                                   ensure_ascii=False) + "\n", encoding="utf-8")
    return len(key)


def _read_labels(path: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """(blind id -> label, blind id -> any extra fields the reader gave, e.g. confidence)."""
    given, extra = {}, {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if "blind_id" in row:
                bid = str(row["blind_id"])
                given[bid] = str(row.get("label", "")).strip().lower()
                extra[bid] = {k: v for k, v in row.items() if k not in ("blind_id", "label")}
    return given, extra


def score(labels_path: Path, *, key_path: Path = KEY, out: Path = OUT,
          name: str = "set_d_manipulation_check") -> pd.DataFrame:
    key = json.loads(key_path.read_text(encoding="utf-8"))["key"]
    given, extra = _read_labels(labels_path)
    rows = []
    for bid, k in key.items():
        g = given.get(bid, "")
        rows.append({"blind_id": bid, **k, "given": g if g in LABELS else f"invalid:{g}" if g
                     else "missing", "extra": extra.get(bid, {})})
    df = pd.DataFrame(rows)
    df["correct"] = df.label == df.given
    table = _agreement(df)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}.md").write_text(_render(df, table, labels_path, key_path), encoding="utf-8")
    return table


def _agreement(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for scope, d in (("all", df), *((s, g) for s, g in df.groupby("set"))):
        for lab in LABELS:
            x = d[d.label == lab]
            n_lab = int((~x.given.isin(["missing"]) & ~x.given.str.startswith("invalid")).sum())
            pct = float(x.correct.mean()) if len(x) else float("nan")
            rows.append({"scope": scope, "label": lab, "n": len(x), "n_labelled": n_lab,
                         "n_correct": int(x.correct.sum()), "pct_intended": round(100 * pct, 1),
                         "passes_80": bool(pct >= PASS)})
    return pd.DataFrame(rows)


def _render(df: pd.DataFrame, table: pd.DataFrame, labels_path: Path, key_path: Path) -> str:
    lines = ["# Blind manipulation check", "",
             f"Reader's labels: `{labels_path.name}`; key `{key_path.name}`; criterion:"
             f" >= {PASS:.0%} of each emotion's items get their intended label (issue #15).", ""]
    for scope, t in table.groupby("scope", sort=False):
        lines += [f"## {scope}", "", "| label | n | correct | % intended | >= 80% |",
                  "|---|---|---|---|---|"]
        for r in t.itertuples():
            flag = "yes" if r.passes_80 else "**NO**"
            lines.append(f"| {r.label} | {r.n} | {r.n_correct} | {r.pct_intended:.1f} | {flag} |")
        lines.append("")
    cols = [*LABELS, *sorted(set(df.given) - set(LABELS))]
    cm = pd.crosstab(df.label, df.given).reindex(index=list(LABELS), columns=cols, fill_value=0)
    lines += ["## Confusion matrix (rows: intended, columns: given; all items)", "",
              "| intended \\ given | " + " | ".join(cols) + " |",
              "|---|" + "---|" * len(cols)]
    for lab, r in cm.iterrows():
        lines.append(f"| {lab} | " + " | ".join(str(int(v)) for v in r.to_numpy()) + " |")
    wrong = df[~df.correct].sort_values("id")
    lines += ["", f"## Items not given their intended label ({len(wrong)})", ""]
    lines += [f"- {r.id} (intended {r.label}): given {r.given}" for r in wrong.itertuples()]
    if "confidence" in set().union(*df.extra.map(set)):
        conf = df.extra.map(lambda e: e.get("confidence"))
        top = conf.dropna().max()
        unsure = df[conf.notna() & (conf < top)].sort_values("id")
        lines += ["", f"## Items the reader rated below top confidence ({len(unsure)} of"
                  f" {len(df)}; confidence {top} is the top given)", ""]
        lines += [f"- {r.id}: given {r.given}, confidence {r.extra.get('confidence')}, second"
                  f" choice {r.extra.get('second', '-')}" for r in unsure.itertuples()]
    failing = table[(table.scope == "all") & ~table.passes_80].label.tolist()
    lines += ["", "Emotions under 80%: " + (", ".join(failing) if failing else "none")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-sheet", help="write the shuffled blind sheet and the key")
    m.add_argument("path", type=Path)
    m.add_argument("--seed", type=int, default=15)
    m.add_argument("--key", type=Path, default=KEY)
    m.add_argument("--files", type=Path, nargs="+", default=list(FILES),
                   help="stimulus files to put on the sheet (default: Set D + confirmation)")
    s = sub.add_parser("score", help="score a reader's labels against the key")
    s.add_argument("labels", type=Path)
    s.add_argument("--key", type=Path, default=KEY)
    s.add_argument("--out", type=Path, default=OUT)
    s.add_argument("--name", default="set_d_manipulation_check",
                   help="stem of the .csv/.md written to --out")
    args = ap.parse_args(argv)
    if args.cmd == "make-sheet":
        n = make_sheet(args.path, key_path=args.key, seed=args.seed, files=args.files)
        print(f"wrote {n} items to {args.path}; key in {args.key}")
        return 0
    table = score(args.labels, key_path=args.key, out=args.out, name=args.name)
    allrows = table[table.scope == "all"]
    print(allrows[["label", "n", "n_correct", "pct_intended", "passes_80"]].to_string(index=False))
    bad = allrows[~allrows.passes_80].label.tolist()
    print("emotions under 80%:", ", ".join(bad) if bad else "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
