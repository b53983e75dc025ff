"""Capacity before verdicts: can the model do each answer-scored task at all?

A causal claim scored by the model's answer (05 patching, 06 knockout, 11's preference read-out)
cannot be tested on a model that does not do the task: a knockout cannot lower an accuracy that
is already at chance. This script reads the committed per-item outputs of those experiments and
writes, per model, the accuracy of the *unintervened* model on each task against chance, with an
interval over the independent unit, and decides ``testable`` from it (the interval's lower bound
must exceed chance). ``docs/reproducing.md`` takes its "not testable here" verdicts from this table.

    uv run python analysis/capacity.py [--model-slug smollm2-135m-instruct]

Output: ``analysis/outputs/<model-slug>/capacity.csv`` (columns: model, experiment, task, n_units,
ci_unit, accuracy, ci_lo, ci_hi, chance, testable, reason).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from llmct.analysis.stats import cluster_bootstrap_mean, two_way_bootstrap_mean

ROOT = Path(__file__).resolve().parents[1]
N_EMOTIONS = 8  # answers are scored among the 8 Plutchik emotion words


def _row(model: str, experiment: str, task: str, iv, chance: float, what: str) -> dict:
    testable = bool(iv.lo > chance)
    reason = (f"{what} above chance" if testable else
              f"{what} {iv.estimate:.3f} [{iv.lo:.3f}, {iv.hi:.3f}] does not exceed chance {chance:.3f}")
    return {"model": model, "experiment": experiment, "task": task, "n_units": iv.n_units,
            "ci_unit": iv.unit, "accuracy": iv.estimate, "ci_lo": iv.lo, "ci_hi": iv.hi,
            "chance": chance, "testable": testable, "reason": reason}


def patching_sources(slug: str) -> list[dict]:
    """05: does the model name the emotion of the exemplars used as patch sources?"""
    path = ROOT / "experiments/05_patching/outputs" / slug / "patching_pairs.csv.gz"
    if not path.is_file():
        return []
    pairs = pd.read_csv(path, usecols=["pairing", "source_id", "source_label",
                                       "source_clean_answer"])
    rows = []
    for pairing, g in pairs.groupby("pairing", sort=False):
        items = g.drop_duplicates("source_id")
        correct = (items.source_clean_answer == items.source_label).astype(float)
        iv = cluster_bootstrap_mean(correct, items.source_id, unit="items")
        rows.append(_row(slug, "05_patching", f"name the source's emotion ({pairing})", iv,
                         1 / N_EMOTIONS, "accuracy on the sources"))
    return rows


def knockout_clean(slug: str) -> list[dict]:
    """06: clean (unablated) answer accuracy per stimulus set."""
    path = ROOT / "experiments/06_knockout/outputs" / slug / "knockout_items.csv.gz"
    if not path.is_file():
        return []
    items = pd.read_csv(path, usecols=["set", "id", "correct_clean"]).drop_duplicates(["set", "id"])
    rows = []
    for name, g in items.groupby("set", sort=False):
        iv = cluster_bootstrap_mean(g.correct_clean.astype(float), g.id, unit="items")
        rows.append(_row(slug, "06_knockout", f"name the emotion ({name}, clean)", iv,
                         1 / N_EMOTIONS, "clean accuracy"))
    return rows


def preference_readout(slug: str) -> list[dict]:
    """11: does the unsteered preference read-out choose the same activity in both orders?

    A read-out driven by position (always "A") is never order-consistent; a coin flip is
    consistent half the time. Interval: two-way bootstrap over the two activities of a pair.
    """
    path = ROOT / "experiments/11_steering/outputs" / slug / "choices.csv"
    if not path.is_file():
        return []
    c = pd.read_csv(path)
    base = c[c.condition == "baseline"]
    consistent = ((base.p_a_ij > 0.5) != (base.p_a_ji > 0.5)).astype(float)
    iv = two_way_bootstrap_mean(consistent, base.i, base.j, unit="activity x activity")
    return [_row(slug, "11_steering", "order-consistent preference (baseline)", iv, 0.5,
                 "order-consistent choice rate")]


def capacity_table(slug: str) -> pd.DataFrame:
    """Every answer-scored task of ``slug`` with its accuracy, interval, chance and verdict."""
    return pd.DataFrame(patching_sources(slug) + knockout_clean(slug) + preference_readout(slug))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-slug", default="smollm2-135m-instruct")
    args = parser.parse_args(argv)
    table = capacity_table(args.model_slug)
    if table.empty:
        print(f"capacity: error: no outputs of 05, 06 or 11 for {args.model_slug!r}",
              file=sys.stderr)
        return 2
    out = ROOT / "analysis" / "outputs" / args.model_slug
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "capacity.csv", index=False, float_format="%.4f")
    print(table[["experiment", "task", "accuracy", "ci_lo", "ci_hi", "chance", "testable"]]
          .round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
