"""Pre-registered lexical ceiling of Set D (appraisal frames), issue #15 item 2.

Question: can a classifier that sees only the surface of a text (words, characters, length and
punctuation) tell the emotion of a Set D item, on frames it was not trained on? If it can, a
probe on model activations that does so is no evidence of an emotion representation.

Pre-registered before any model saw the set (thresholds from issue #15):

* baselines: :mod:`llmct.analysis.text_baselines` ``word_tfidf`` (word 1-2-gram TF-IDF + LR),
  ``char_tfidf`` (char_wb 3-5-gram TF-IDF + LR), ``stylometric`` (counts + LR), all with C = 1;
* folds: leave-one-frame-out (a frame is never in both train and test), AUROC on the pooled
  out-of-fold probabilities;
* tasks: ``8class`` = the 8 emotions (neutral excluded), macro one-vs-rest AUROC <= 0.75;
  ``emo_vs_neutral`` = the 8 emotional versions vs the neutral version, AUROC <= 0.70.

Robustness rows (reported, not the pre-registered criterion): the same baselines with C = 0.1 and
C = 10, and with 4-fold ``StratifiedGroupKFold`` (seeds 0, 1, 2) instead of leave-one-frame-out.

Post-hoc classifiers (``--extra``, added after the confirmation result; reported, never
thresholded): multinomial naive Bayes on word 1-2-gram counts, a linear SVM on word 1-2-gram
TF-IDF, and logistic regression on binary word unigrams without English stop words, scored on the
same leave-one-frame-out folds and on the confirmation hold-out.

Confirmation frames (``--confirm``; run only once they were written without any classifier):
``confirm_holdout`` trains on the frozen 16 frames and tests on DC-01..DC-04; ``all_cv`` is
leave-one-frame-out over all 20 frames. The later confirmation sets, each frozen before
scoring, are scored the same way when present (one loop over ``CONFIRM_SETS``): the second
(DC2-01..DC2-04, ``set_d_confirmation_2.jsonl``) as ``confirm2_holdout`` (train on the frozen 16,
test on DC2) and ``all2_cv`` (leave-one-frame-out over the 16 + 4 DC2 frames), the third
(DC3-01..DC3-04, ``set_d_confirmation_3.jsonl``) as ``confirm3_holdout`` and ``all3_cv``.

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

from llmct.analysis.text_baselines import BASELINES, grouped_cv_auroc, grouped_folds, top_features  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SET_D = ROOT / "stimuli" / "set_d_appraisal.jsonl"
SET_D_CONFIRM = ROOT / "stimuli" / "set_d_confirmation.jsonl"
SET_D_CONFIRM_2 = ROOT / "stimuli" / "set_d_confirmation_2.jsonl"
SET_D_CONFIRM_3 = ROOT / "stimuli" / "set_d_confirmation_3.jsonl"
DEFAULT_OUT = Path(__file__).resolve().parent / "outputs"

EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
THRESHOLDS = {"8class": 0.75, "emo_vs_neutral": 0.70}
C_PREREG = 1.0
ROBUST_C = (0.1, 10.0)
ROBUST_SEEDS = (0, 1, 2)

#: Confirmation sets, each written after the freeze and scored once, in the order their rows are
#: written: (file, hold-out eval, all-frame leave-one-frame-out eval, hold-out folds label). The
#: first is required by ``--confirm``; a later one is scored when its file exists.
CONFIRM_SETS = (
    (SET_D_CONFIRM, "confirm_holdout", "all_cv", "train D-01..D-16, test DC"),
    (SET_D_CONFIRM_2, "confirm2_holdout", "all2_cv", "train D-01..D-16, test DC2"),
    (SET_D_CONFIRM_3, "confirm3_holdout", "all3_cv", "train D-01..D-16, test DC3"),
)

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


def _extra_models() -> dict:
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return {
        "posthoc_nb_word12_counts": lambda: make_pipeline(
            CountVectorizer(ngram_range=(1, 2)), MultinomialNB()),
        "posthoc_svm_word12_tfidf": lambda: make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LinearSVC(C=1.0)),
        "posthoc_lr_word1_binary_nostop": lambda: make_pipeline(
            CountVectorizer(binary=True, stop_words="english"),
            LogisticRegression(max_iter=10_000)),
    }


def _extra_auroc(X, y, folds, make) -> float:
    """Pooled AUROC over the test items of ``folds`` (macro one-vs-rest for > 2 classes)."""
    from sklearn.metrics import roc_auc_score

    classes = np.unique(y)
    scores = np.full((len(y), len(classes)), np.nan)
    for tr, te in folds:
        m = make().fit(X[tr], y[tr])
        s = m.predict_proba(X[te]) if hasattr(m, "predict_proba") else m.decision_function(X[te])
        if s.ndim == 1:
            s = np.vstack([-s, s]).T
        scores[te] = s
    idx = np.concatenate([te for _, te in folds])
    yt, st = y[idx], scores[idx]
    if len(classes) == 2:
        return float(roc_auc_score(yt == classes[1], st[:, 1]))
    return float(np.mean([roc_auc_score(yt == c, st[:, j]) for j, c in enumerate(classes)]))


def extra_rows(d: pd.DataFrame, c: pd.DataFrame | None) -> list[dict]:
    """Post-hoc classifiers (not pre-registered) on the frozen set and the confirmation hold-out."""
    rows = []
    for task in THRESHOLDS:
        X, y, g = task_data(d, task)
        evals = [("set_d_cv", X, y, grouped_folds(y, g), len(y), len(np.unique(g)))]
        if c is not None:
            Xb, yb, gb = task_data(pd.concat([d, c], ignore_index=True), task)
            is_test = np.isin(gb, c.frame_id.unique())
            evals.append(("confirm_holdout", Xb, yb,
                          [(np.flatnonzero(~is_test), np.flatnonzero(is_test))],
                          int(is_test.sum()), len(np.unique(gb[is_test]))))
        for ev, Xe, ye, folds, n_items, n_frames in evals:
            for name, make in _extra_models().items():
                auroc = _extra_auroc(Xe, ye, folds, make)
                rows.append({"eval": ev, "task": task, "baseline": name, "C": 1.0,
                             "folds": "post hoc", "auroc": round(auroc, 4),
                             "fold_mean": float("nan"), "threshold": THRESHOLDS[task],
                             "passes": bool(auroc <= THRESHOLDS[task]), "preregistered": False,
                             "n_items": n_items, "n_frames": n_frames})
    return rows


def holdout_rows(train: pd.DataFrame, test: pd.DataFrame, eval_name: str = "confirm_holdout",
                 folds_name: str = "train D-01..D-16, test DC") -> list[dict]:
    """Train on the frozen set, test on the confirmation frames (one fold)."""
    both = pd.concat([train, test], ignore_index=True)
    rows = []
    for task in THRESHOLDS:
        X, y, g = task_data(both, task)
        is_test = np.isin(g, test.frame_id.unique())
        folds = [(np.flatnonzero(~is_test), np.flatnonzero(is_test))]
        for b in BASELINES:
            s = grouped_cv_auroc(X, y, g, b, C=C_PREREG, folds=folds)
            rows.append(_row(eval_name, task, b, C_PREREG, folds_name,
                             s, True, int(is_test.sum()), len(np.unique(g[is_test]))))
    return rows


def leak_table(df: pd.DataFrame, k: int = 8) -> pd.DataFrame:
    """Top word features per class of word_tfidf fitted on all items (diagnostic only)."""
    X, y, _ = task_data(df, "8class")
    t8 = top_features(X, y, "word_tfidf", k=k)
    X, y, _ = task_data(df, "emo_vs_neutral")
    t2 = top_features(X, y, "word_tfidf", k=k)
    return pd.concat([t8, t2], ignore_index=True)


def run(out: Path, *, confirm: bool = False, robustness: bool = True,
        extra: bool = False) -> pd.DataFrame:
    """Score the ceiling, write ``set_d_ceiling.csv`` / ``.md`` under ``out``; return the rows."""
    d = load_items(SET_D)
    c = load_items(SET_D_CONFIRM) if confirm else None
    rows = cv_rows(d, "set_d_cv", robustness=robustness)
    if confirm:  # every confirmation set scored the same way: hold-out, then 16 + its frames CV
        for i, (path, holdout_eval, cv_eval, folds_name) in enumerate(CONFIRM_SETS):
            if i and not path.is_file():
                continue
            ci = c if i == 0 else load_items(path)
            rows += holdout_rows(d, ci, holdout_eval, folds_name)
            rows += cv_rows(pd.concat([d, ci], ignore_index=True), cv_eval,
                            robustness=robustness)
    if extra:
        rows += extra_rows(d, c)
    res = pd.DataFrame(rows, columns=COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    res.to_csv(out / "set_d_ceiling.csv", index=False)
    (out / "set_d_ceiling.md").write_text(render_md(res, leak_table(d)), encoding="utf-8")
    return res


def render_md(res: pd.DataFrame, leaks: pd.DataFrame) -> str:
    """Short human-readable summary of ``res`` and the top-weighted words."""
    lines = ["# Set D lexical ceiling", "",
             "Text-only baselines (`llmct.analysis.text_baselines`), folds grouped by frame. Pre-registered:"
             " leave-one-frame-out, C = 1; 8-class macro AUROC <= 0.75, emotional-vs-neutral"
             " AUROC <= 0.70. Generated by `validation/set_d_ceiling.py`; numbers from"
             " `set_d_ceiling.csv`.", ""]
    pre = res[res.preregistered]
    lines += ["## Pre-registered", "", "| eval | task | baseline | AUROC | threshold | passes |",
              "|---|---|---|---|---|---|"]
    for r in pre.itertuples():
        lines.append(f"| {r.eval} | {r.task} | {r.baseline} | {r.auroc:.3f} | {r.threshold:.2f}"
                     f" | {'yes' if r.passes else '**no**'} |")
    lines += ["", "Verdict per evaluation (all pre-registered rows of that evaluation):", ""]
    for ev, grp in pre.groupby("eval", sort=False):
        worst = ", ".join(f"{t} max {g.auroc.max():.3f}" for t, g in grp.groupby("task", sort=False))
        lines.append(f"- {ev}: {'passes' if grp.passes.all() else '**fails**'} ({worst})")
    rob = res[~res.preregistered & (res.folds != "post hoc")]
    if len(rob):
        lines += ["", "## Robustness (not pre-registered): maximum AUROC over C in {0.1, 10} and"
                  " 4-fold grouped splits (seeds 0-2)", "",
                  "| eval | task | baseline | max AUROC | rows above threshold |", "|---|---|---|---|---|"]
        for (ev, task, b), grp in rob.groupby(["eval", "task", "baseline"], sort=False):
            lines.append(f"| {ev} | {task} | {b} | {grp.auroc.max():.3f} |"
                         f" {int((~grp.passes).sum())}/{len(grp)} |")
    post = res[res.folds == "post hoc"]
    if len(post):
        lines += ["", "## Post-hoc classifiers (added after the confirmation result; not thresholded)",
                  "", "| eval | task | classifier | AUROC |", "|---|---|---|---|"]
        for r in post.itertuples():
            lines.append(f"| {r.eval} | {r.task} | {r.baseline} | {r.auroc:.3f} |")
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
    ap.add_argument("--extra", action="store_true",
                    help="also score the post-hoc classifiers (not pre-registered)")
    args = ap.parse_args(argv)
    res = run(args.out, confirm=args.confirm, robustness=not args.no_robustness,
              extra=args.extra)
    pre = res[res.preregistered]
    print(pre[["eval", "task", "baseline", "auroc", "threshold", "passes"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
