"""Write (or check) ``headline.csv`` in every experiment results folder from its stored CSVs.

Every experiment writes its headline when it runs (:func:`llmct.runs.experiment_main`); this
rebuilds them without a model, e.g. after a change to an experiment's ``headline.py``, and with
``--check`` fails when a committed ``headline.csv`` differs from a recomputation.

    uv run python scripts/headlines.py [--models SLUG ...] [--check]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmct.io.headline import (  # noqa: E402
    FILENAME,
    Missing,
    model_of,
    read_headline,
    write_headline,
)
from llmct.runs import experiment_headline, write_headline_for  # noqa: E402

EXPERIMENTS = ROOT / "experiments"


def result_folders(models: list[str] | None = None) -> list[tuple[Path, Path]]:
    """``(experiment dir, results folder)`` for every experiment with a ``headline.py`` and
    every model slug under its ``outputs/``."""
    pairs = []
    for exp in sorted(EXPERIMENTS.glob("[0-9][0-9]_*")):
        if experiment_headline(exp) is None:
            continue
        for folder in sorted(p for p in (exp / "outputs").glob("*") if p.is_dir()):
            if models is None or folder.name in models:
                pairs.append((exp, folder))
    return pairs


def check(exp: Path, folder: Path) -> str | None:
    """None when ``folder/headline.csv`` equals a recomputation from the folder's CSVs, else
    what differs (the recomputation is written to a temporary folder, never over the file)."""
    module = experiment_headline(exp)
    stored = folder / FILENAME
    try:
        claims, _ = module.claims(folder)
    except (Missing, KeyError, ValueError, IndexError) as exc:
        return f"headline.csv stored but not recomputable: {exc}" if stored.exists() else None
    if not stored.exists():
        return "no headline.csv stored"
    with tempfile.TemporaryDirectory() as tmp:
        fresh = read_headline(write_headline(tmp, exp.name, model_of(folder), claims))
    return None if read_headline(stored).equals(fresh) else "differs from a recomputation"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None, metavar="SLUG")
    ap.add_argument("--check", action="store_true",
                    help="compare the stored headline.csv files with a recomputation")
    args = ap.parse_args(argv)
    bad = 0
    for exp, folder in result_folders(args.models):
        if args.check:
            problem = check(exp, folder)
            if problem:
                bad += 1
                print(f"{folder.relative_to(ROOT)}: {problem}")
        else:
            path = write_headline_for(exp, folder)
            if path is not None:
                print(f"wrote {path.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
