"""Run a cheap deterministic subset of the experiments twice and demand identical CSVs.

The subset: 02_probes on the stored activations (``--limit`` items per emotion, so it takes
seconds; missing activations are extracted once first) and the 00_ct_scan of the rollercoaster
scenario (one read-out position). Each run writes to its own temporary folder; every CSV of the
two runs must be byte-identical. Exit 1 naming the first differing file and column otherwise.

    uv run --no-sync python scripts/check_determinism.py [--model default] [--limit 6] [--keep]
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(out: Path, model: str, limit: int) -> list[list[str]]:
    py = sys.executable
    return [
        [py, "experiments/02_probes/run.py", "--model", model, "--limit", str(limit),
         "--no-progress", "--out", str(out / "02_probes")],
        [py, "experiments/00_ct_scan/run.py", "--model", model, "--positions", "message_end",
         "--out", str(out / "00_ct_scan")],
    ]


def csvs(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*.csv")}


def explain(a: Path, b: Path) -> str:
    """Which column differs first, and by how much (for numeric columns)."""
    import pandas as pd

    try:
        x, y = pd.read_csv(a), pd.read_csv(b)
    except ValueError as exc:
        return f"unreadable as CSV ({exc})"
    if x.shape != y.shape or list(x.columns) != list(y.columns):
        return f"shape/columns differ: {x.shape} vs {y.shape}"
    for col in x.columns:
        if not x[col].equals(y[col]):
            try:
                diff = (x[col].astype(float) - y[col].astype(float)).abs().max()
                return f"column {col!r} differs (max |diff| {diff:.3g})"
            except (TypeError, ValueError):
                n = int((x[col].astype(str) != y[col].astype(str)).sum())
                return f"column {col!r} differs in {n} rows"
    return "bytes differ (formatting)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--limit", type=int, default=6, help="items per emotion for 02_probes")
    ap.add_argument("--keep", action="store_true", help="keep the two run folders")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="llmct-determinism-"))
    runs = [base / "run1", base / "run2"]
    try:
        for i, out in enumerate(runs, 1):
            for cmd in commands(out, args.model, args.limit):
                print(f"[determinism] run {i}: {Path(cmd[1]).parent.name}", flush=True)
                done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                if done.returncode:
                    print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
                    print(f"[determinism] {cmd[1]} failed (exit {done.returncode})",
                          file=sys.stderr)
                    return 2
        a, b = csvs(runs[0]), csvs(runs[1])
        problems = [f"only in one run: {p}" for p in sorted(a ^ b)]
        for rel in sorted(a & b):
            if not filecmp.cmp(runs[0] / rel, runs[1] / rel, shallow=False):
                problems.append(f"{rel}: {explain(runs[0] / rel, runs[1] / rel)}")
        print(f"[determinism] compared {len(a & b)} CSV files from two runs")
        if problems:
            print("[determinism] NOT deterministic:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        print("[determinism] identical")
        return 0
    finally:
        if args.keep:
            print(f"[determinism] runs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
