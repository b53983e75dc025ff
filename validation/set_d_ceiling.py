"""Pre-registered lexical ceiling of Set D (appraisal frames), issue #15 item 2.

Question: can a classifier that sees only the surface of a text (words, characters, length and
punctuation) tell the emotion of a Set D item, on frames it was not trained on? If it can, a
probe on model activations that does so is no evidence of an emotion representation.

Pre-registered before any model saw the set (thresholds from issue #15):

* baselines: :mod:`llmct.text_baselines` ``word_tfidf`` (word 1-2-gram TF-IDF + LR),
  ``char_tfidf`` (char_wb 3-5-gram TF-IDF + LR), ``stylometric`` (counts + LR), all with C = 1;
* folds: leave-one-frame-out (a frame is never in both train and test), AUROC on the pooled
  out-of-fold probabilities;
* tasks: ``8class`` = the 8 emotions (neutral excluded), macro one-vs-rest AUROC <= 0.75;
  ``emo_vs_neutral`` = the 8 emotional versions vs the neutral version, AUROC <= 0.70.

Robustness rows (reported, not the pre-registered criterion): the same baselines with C = 0.1 and
C = 10, and with 4-fold ``StratifiedGroupKFold`` (seeds 0, 1, 2) instead of leave-one-frame-out.

Confirmation frames (``--confirm``; run only once they were written without any classifier):
``confirm_holdout`` trains on the frozen 16 frames and tests on DC-01..DC-04; ``all_cv`` is
leave-one-frame-out over all 20 frames.

CLI: ``python validation/set_d_ceiling.py [--confirm] [--out DIR]`` writes ``set_d_ceiling.csv``
and ``set_d_ceiling.md`` (with the top-weighted word features: the words that leak, if any).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from llmct.text_baselines import BASELINES, grouped_cv_auroc, grouped_folds, top_features  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SET_D = ROOT / "stimuli" / "set_d_appraisal.jsonl"
SET_D_CONFIRM = ROOT / "stimuli" / "set_d_confirmation.jsonl"
DEFAULT_OUT = Path(__file__).resolve().parent / "outputs"

EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
THRESHOLDS = {"8class": 0.75, "emo_vs_neutral": 0.70}
C_PREREG = 1.0
ROBUST_C = (0.1, 10.0)
ROBUST_SEEDS = (0, 1, 2)

COLUMNS = ["eval", "task", "baseline", "C", "folds", "auroc", "fold_mean", "threshold",
           "passes", "preregistered", "n_items", "n_frames"]


def load_items(path: Path = SET_D) -> pd.DataFrame:
    """The JSONL file as a frame (id, text, label, set, frame_id, domain, appraisal)."""
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return pd.DataFrame(rows)


def task_data(df: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(texts, labels, groups) for ``8class`` (emotions only) or ``emo_vs_neutral`` (0/1)."""
    if task == "8class":
        d = df[df.label.isin(EMOTIONS)]
        return d.text.to_numpy(), d.label.to_numpy(), d.frame_id.to_numpy()
    if task == "emo_vs_neutral":
        y = np.where(df.label == "neutral", "neutral", "emotional")
        return df.text.to_numpy(), y, df.frame_id.to_numpy()
    raise ValueError(f"unknown task {task!r}")


def _auroc_of(score, task: str) -> tuple[float, float]:
    """Pooled and fold-mean AUROC. For the binary task text_baselines scores classes[1] =
    "neutral" with its own probability, which is the same AUROC as "emotional" scored with
    P(emotional) (AUROC is symmetric under swapping the positive class and negating the score)."""
    return score.auroc, score.fold_mean


def _row(eval_name, task, baseline, C, folds_name, score, prereg, n_items, n_frames) -> dict:
    auroc, fold_mean = _auroc_of(score, task)
    thr = THRESHOLDS[task]
    return {"eval": eval_name, "task": task, "baseline": baseline, "C": C, "folds": folds_name,
            "auroc": round(float(auroc), 4), "fold_mean": round(float(fold_mean), 4),
            "threshold": thr, "passes": bool(auroc <= thr), "preregistered": prereg,
            "n_items": n_items, "n_frames": n_frames}


def cv_rows(df: pd.DataFrame, eval_name: str, *, robustness: bool = True) -> list[dict]:
    """Grouped-CV rows for both tasks and all baselines (pre-registered + robustness)."""
    rows = []
    for task in THRESHOLDS:
        X, y, g = task_data(df, task)
        n_frames = len(np.unique(g))
        for b in BASELINES:
            s = grouped_cv_auroc(X, y, g, b, C=C_PREREG)
            rows.append(_row(eval_name, task, b, C_PREREG, "leave-one-frame-out", s, True,
                             len(y), n_frames))
            if not robustness:
                continue
            for C in ROBUST_C:
                s = grouped_cv_auroc(X, y, g, b, C=C)
                rows.append(_row(eval_name, task, b, C, "leave-one-frame-out", s, False,
                                 len(y), n_frames))
            for seed in ROBUST_SEEDS:
                folds = grouped_folds(y, g, n_splits=4, seed=seed)
                s = grouped_cv_auroc(X, y, g, b, C=C_PREREG, folds=folds)
                rows.append(_row(eval_name, task, b, C_PREREG, f"4-fold grouped seed {seed}", s,
                                 False, len(y), n_frames))
    return rows


def holdout_rows(train: pd.DataFrame, test: pd.DataFrame) -> list[dict]:
    """Train on the frozen set, test on the confirmation frames (one fold)."""
    both = pd.concat([train, test], ignore_index=True)
    rows = []
    for task in THRESHOLDS:
        X, y, g = task_data(both, task)
        is_test = np.isin(g, test.frame_id.unique())
        folds = [(np.flatnonzero(~is_test), np.flatnonzero(is_test))]
        for b in BASELINES:
            s = grouped_cv_auroc(X, y, g, b, C=C_PREREG, folds=folds)
            rows.append(_row("confirm_holdout", task, b, C_PREREG, "train D-01..D-16, test DC",
                             s, True, int(is_test.sum()), len(np.unique(g[is_test]))))
    return rows


def leak_table(df: pd.DataFrame, k: int = 8) -> pd.DataFrame:
    """Top word features per class of word_tfidf fitted on all items (diagnostic only)."""
    X, y, _ = task_data(df, "8class")
    t8 = top_features(X, y, "word_tfidf", k=k)
    X, y, _ = task_data(df, "emo_vs_neutral")
    t2 = top_features(X, y, "word_tfidf", k=k)
    return pd.concat([t8, t2], ignore_index=True)


def run(out: Path, *, confirm: bool = False, robustness: bool = True) -> pd.DataFrame:
    """Score the ceiling, write ``set_d_ceiling.csv`` / ``.md`` under ``out``; return the rows."""
    d = load_items(SET_D)
    rows = cv_rows(d, "set_d_cv", robustness=robustness)
    if confirm:
        c = load_items(SET_D_CONFIRM)
        rows += holdout_rows(d, c)
        rows += cv_rows(pd.concat([d, c], ignore_index=True), "all_cv", robustness=robustness)
    res = pd.DataFrame(rows, columns=COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    res.to_csv(out / "set_d_ceiling.csv", index=False)
    (out / "set_d_ceiling.md").write_text(render_md(res, leak_table(d)), encoding="utf-8")
    return res


def render_md(res: pd.DataFrame, leaks: pd.DataFrame) -> str:
    """Short human-readable summary of ``res`` and the top-weighted words."""
    lines = ["# Set D lexical ceiling", "",
             "Text-only baselines (`llmct.text_baselines`), folds grouped by frame. Pre-registered:"
             " leave-one-frame-out, C = 1; 8-class macro AUROC <= 0.75, emotional-vs-neutral"
             " AUROC <= 0.70. Generated by `validation/set_d_ceiling.py`; numbers from"
             " `set_d_ceiling.csv`.", ""]
    pre = res[res.preregistered]
    lines += ["## Pre-registered", "", "| eval | task | baseline | AUROC | threshold | passes |",
              "|---|---|---|---|---|---|"]
    for r in pre.itertuples():
        lines.append(f"| {r.eval} | {r.task} | {r.baseline} | {r.auroc:.3f} | {r.threshold:.2f}"
                     f" | {'yes' if r.passes else '**no**'} |")
    rob = res[~res.preregistered]
    if len(rob):
        lines += ["", "## Robustness (not pre-registered): maximum AUROC over C in {0.1, 10} and"
                  " 4-fold grouped splits (seeds 0-2)", "",
                  "| eval | task | baseline | max AUROC | rows above threshold |", "|---|---|---|---|---|"]
        for (ev, task, b), grp in rob.groupby(["eval", "task", "baseline"], sort=False):
            lines.append(f"| {ev} | {task} | {b} | {grp.auroc.max():.3f} |"
                         f" {int((~grp.passes).sum())}/{len(grp)} |")
    lines += ["", "## Top-weighted word features (word_tfidf fitted on all of Set D; diagnostic)",
              ""]
    for lab, grp in leaks.groupby("label", sort=False):
        feats = ", ".join(f"{f} ({w:+.2f})" for f, w in zip(grp.feature, grp.weight, strict=True))
        lines.append(f"- **{lab}**: {feats}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--confirm", action="store_true",
                    help="also score the confirmation frames (holdout and all-frame CV)")
    ap.add_argument("--no-robustness", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.out, confirm=args.confirm, robustness=not args.no_robustness)
    pre = res[res.preregistered]
    print(pre[["eval", "task", "baseline", "auroc", "threshold", "passes"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
