"""Lexical ceiling of Set B against its matched controls (v2 and, for comparison, v1), issue #15
item 3.

Question: can a classifier that sees only the surface of a text tell a Set B vignette from its
matched neutral control? If it can, experiments 03 and 07 (Set B vs controls) may measure register
or vocabulary rather than emotion.

Protocol (fixed before the controls were revised against it):

* baselines: :mod:`llmct.analysis.text_baselines` ``word_tfidf`` (word 1-2-gram TF-IDF + LR),
  ``char_tfidf`` (char_wb 3-5-gram TF-IDF + LR), ``stylometric`` (counts + LR), all with C = 1;
* folds: 5-fold ``StratifiedGroupKFold`` by ``pair_id``, seed 0 (a vignette and its control are
  always in the same test fold, so a classifier never sees the pair it is scored on), AUROC of
  "is Set B" on the pooled out-of-fold probabilities;
* target: AUROC <= 0.75 for every baseline on Set B vs controls v2.

Robustness rows (reported, not the criterion; ``--robust``): C = 0.1 and C = 10, fold seeds 1
and 2, and leave-one-pair-out. The old controls (``set_b_controls.jsonl``, clinical case notes)
are scored on exactly the same folds. Always reported as a diagnostic: leave-one-emotion-out
(train on the pairs of 7 emotions, test on the 8th), which asks whether what separates a
vignette from its control is emotion-specific vocabulary or something common to all of Set B.
(Leave-one-pair-out was the first choice of headline; it
costs ~100 s per char-TF-IDF run on this machine, and on the first draft it agreed with the
5-fold value within 0.01, so the 5-fold value was made the headline before any revision.)

CLI: ``python validation/controls_v2_ceiling.py [--out DIR]`` writes ``controls_v2_ceiling.csv``
and ``controls_v2_ceiling.md`` (with the top-weighted features: the words that leak, if any, and
the surface statistics of each set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from llmct.analysis.text_baselines import (  # noqa: E402
    BASELINES,
    STYLOMETRIC_FEATURES,
    grouped_cv_auroc,
    grouped_folds,
    stylometric_features,
    top_features,
)
from stimuli.loader import load_set  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "outputs"
THRESHOLD = 0.75
C_PREREG = 1.0
ROBUST_C = (0.1, 10.0)
SEED = 0
N_SPLITS = 5
ROBUST_SEEDS = (1, 2)
#: control set name (stimuli.loader) -> short name in the outputs
CONTROLS = {"set_b_control_v2": "controls_v2", "set_b_control": "controls_v1"}

COLUMNS = ["controls", "baseline", "C", "folds", "auroc", "fold_mean", "threshold", "passes",
           "preregistered", "n_items", "n_pairs"]

#: What leaked while the controls were written and how they were revised (kept in the report).
REVISION_NOTES = """\
All figures: 5-fold CV grouped by pair_id (seed 0), C = 1, word / char / stylometric.

Version 1 of controls v2 FAILED the target (word 0.981, char 0.977, stylometric 0.742; table
kept in controls_v2_ceiling_first_draft.csv, texts in git history). Version 1 controls were
sentence-by-sentence parallels of their vignettes (same people, ages, roles, setting, speech,
digits) in which the event was replaced by an ordinary exchange, written in the writer's own
neutral vocabulary. Its history:

- Draft: 0.990 / 0.982 / 0.758. Pass 1 (routine words varied): 0.992 / 0.986 / 0.746. Pass 2
  (neutral physical description): 0.986 / 0.977 / 0.745. Pass 3 (writer's tics: weekdays,
  rota/timetable/shift/route): 0.982 / 0.977 / 0.746. Pass 4 ("at the weekend", goes, while,
  dates): 0.981 / 0.977 / 0.742.
- Words that leaked in version 1 (word TF-IDF LR on all pairs, largest coefficients). Toward
  Set B: mouth, voice, as if, hard, you, laugh, away, if, head, short, refuses, stopped, were,
  face, nose, shakes / shook, cannot, eyebrows, grips, loud, breathing, eyes, jaw, arms,
  several, times, between, saying, been. Toward the controls: on, on the, is, to see, from the,
  by, to the, see, for the, about, from, whether (the), asks (whether), bag, went through,
  school, takes, tablets, bus, work, list, them, where, should, lift, sits back. I.e. only Set
  B used the body-part and behaviour words, negation, repetition and direct address; only the
  controls used the logistics vocabulary. Leave-one-emotion-out stayed at 0.94 / 0.91.

Version 2 (this file): the 96 controls were rewritten, per issue #15, as lexically matched
("lure") neutral narratives: each keeps its vignette's people, setting, sentence order,
quoted or reported speech, digits and length (within 10%) and reuses most of its salient
content words, including the behaviour words and event nouns, in an emotionally insignificant
sense (a hand over the mouth to cover a cough, a nose wrinkled to push glasses up, a short laugh
when a printer jams, a result that comes back as expected), so that nothing emotionally
significant happens to anyone. Procedure: each control was first rewritten from its vignette
with the leaked words of version 1 in mind; then, in repeated passes, the document frequency of
every word and character n-gram that the pre-registered baselines weighted was compared between
Set B and the controls, and individual controls were edited (never the code, folds or
threshold) to use the vignette's words and avoid the writer's own recurring words (e.g. same,
while, next, about, cold, glasses, shift, weekend, "laughed at", semicolons); every pass was
followed by a read-through for neutrality that removed residual emotional cues (e.g. restoring
a neutral reason for a gesture such as gripping, staring or a shaking hand). Figures along the
way: 0.957 / 0.960 / 0.702 (first rewrite) -> 0.853 / 0.845 -> 0.790 / 0.787 -> 0.735 / 0.743
-> final (table above). Caveat: the items were revised while looking at these same
pre-registered folds, so the headline is selected and optimistic; the robustness rows (other
fold seeds, C, leave-one-pair-out) and leave-one-emotion-out are the less biased check.
Residual separating features are listed above (mostly single emotion-specific words such as
grinning, died, clenched, pregnancy, spitting that the controls do not reuse). Word overlap:
on average 72% of a vignette's word types occur in its control (version 1: 55%).
"""


def load_pairs(controls: str) -> pd.DataFrame:
    """Set B and one control set as a frame (``id, text, set, pair_id, emotion, y``; ``y`` = 1 for
    Set B; ``emotion`` is the Set B label of the pair, also on its control).

    Only pairs present in both sets are kept. Raises ``ValueError`` if a pair_id repeats within
    a set.
    """
    rows = []
    emotion_of = {s.pair_id: s.label for s in load_set("set_b")}
    for name in ("set_b", controls):
        items = load_set(name)
        pids = [s.pair_id for s in items]
        if len(set(pids)) != len(pids):
            raise ValueError(f"{name}: a pair_id occurs more than once")
        rows += [{"id": s.id, "text": s.text, "set": name, "pair_id": s.pair_id,
                  "emotion": emotion_of.get(s.pair_id), "y": int(name == "set_b")}
                 for s in items]
    df = pd.DataFrame(rows)
    both = df.groupby("pair_id")["set"].nunique() == 2
    return df[df.pair_id.isin(both[both].index)].reset_index(drop=True)


def ceiling(controls_sets: tuple[str, ...] = tuple(CONTROLS), *,
            robustness: bool = False) -> pd.DataFrame:
    """Every baseline on Set B vs each control set, on folds grouped by ``pair_id``.

    One row per (controls, baseline, C, folds); columns :data:`COLUMNS`. The pre-registered rows
    (``preregistered=True``) are C = 1 on 5-fold grouped folds with seed 0; ``passes`` is
    ``auroc <= 0.75``. Always also ``leave_one_emotion_out`` (a diagnostic: does what separates
    Set B from its controls carry over to an emotion never seen in training?). With
    ``robustness``, also C = 0.1 and 10, fold seeds 1 and 2, and
    leave-one-pair-out (slow: minutes). All control sets are scored on the same folds (the folds
    depend only on the pair ids and labels, which are the same for every control set).
    """
    rows = []
    for name in controls_sets:
        df = load_pairs(name)
        texts, y, g = df.text.tolist(), df.y.to_numpy(), df.pair_id.to_numpy()
        runs = [(f"group{N_SPLITS}fold_seed{SEED}", grouped_folds(y, g, n_splits=N_SPLITS,
                                                                   seed=SEED), C_PREREG),
                # diagnostic: train on 7 emotions' pairs, test on the 8th (whole pairs move)
                ("leave_one_emotion_out", grouped_folds(y, df.emotion.to_numpy()), C_PREREG)]
        if robustness:
            runs += [(runs[0][0], runs[0][1], C) for C in ROBUST_C]
            runs += [(f"group{N_SPLITS}fold_seed{s}", grouped_folds(y, g, n_splits=N_SPLITS,
                                                                     seed=s), C_PREREG)
                     for s in ROBUST_SEEDS]
            runs += [("leave_one_pair_out", grouped_folds(y, g), C_PREREG)]
        for baseline in BASELINES:
            for folds_name, folds, C in runs:
                score = grouped_cv_auroc(texts, y, g, baseline, C=C, folds=folds)
                rows.append({
                    "controls": CONTROLS.get(name, name), "baseline": baseline, "C": C,
                    "folds": folds_name, "auroc": round(score.auroc, 4),
                    "fold_mean": round(score.fold_mean, 4), "threshold": THRESHOLD,
                    "passes": bool(score.auroc <= THRESHOLD),
                    "preregistered": bool(C == C_PREREG and folds_name == runs[0][0]),
                    "n_items": len(df), "n_pairs": int(len(np.unique(g)))})
    return pd.DataFrame(rows, columns=COLUMNS)


def surface_table(controls_sets: tuple[str, ...] = tuple(CONTROLS)) -> pd.DataFrame:
    """Mean stylometric features of Set B and of each control set (rows: feature)."""
    cols = {}
    for i, name in enumerate(controls_sets):
        df = load_pairs(name)
        feats = pd.DataFrame(stylometric_features(df.text.tolist()), columns=STYLOMETRIC_FEATURES)
        if i == 0:
            cols["set_b"] = feats[df.y.to_numpy() == 1].mean()
        cols[CONTROLS.get(name, name)] = feats[df.y.to_numpy() == 0].mean()
    return pd.DataFrame(cols).round(2)


def leaked_features(controls: str = "set_b_control_v2", k: int = 20) -> pd.DataFrame:
    """Top-``k`` word and character features toward each side (fitted on all pairs)."""
    df = load_pairs(controls)
    labels = np.where(df.y.to_numpy() == 1, "set_b", CONTROLS.get(controls, controls))
    frames = []
    for baseline in ("word_tfidf", "char_tfidf"):
        tf = top_features(df.text.tolist(), labels, baseline, k=k)
        tf.insert(0, "baseline", baseline)
        frames.append(tf)
    return pd.concat(frames, ignore_index=True)


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def report(results: pd.DataFrame, surface: pd.DataFrame, leaks: pd.DataFrame) -> str:
    """The markdown report: headline, robustness, leaked features, surface statistics, notes."""
    pre = results[results.preregistered]
    head = pre.pivot(index="baseline", columns="controls", values="auroc").reindex(BASELINES)
    pair_rows = results[results.folds != "leave_one_emotion_out"]
    robust = (pair_rows.groupby(["controls", "baseline"]).auroc.agg(["min", "max"])
              .reset_index().rename(columns={"min": "auroc_min", "max": "auroc_max"}))
    loeo = (results[results.folds == "leave_one_emotion_out"]
            .pivot(index="baseline", columns="controls", values="auroc").reindex(BASELINES))
    verdict = pre[pre.controls == "controls_v2"]
    ok = bool(verdict.passes.all()) if len(verdict) else False
    leak_lines = []
    for (baseline, label), grp in leaks.groupby(["baseline", "label"], sort=False):
        leak_lines.append(f"- **{baseline} -> {label}**: "
                          + ", ".join(f"`{f}`" for f in grp.feature))
    return "\n".join([
        "# Set B vs matched controls: text-only lexical ceiling (issue #15, item 3)",
        "",
        "Generated by `validation/controls_v2_ceiling.py`. AUROC of \"is Set B\" from text alone,"
        f" {N_SPLITS}-fold CV grouped by pair_id, seed {SEED} (a vignette and its control are"
        " always in the same test fold), pooled out-of-fold probabilities, C = 1. Target for"
        " controls v2: every baseline <= "
        f"{THRESHOLD}.",
        "",
        _md_table(head.reset_index()),
        "",
        f"**Controls v2 {'meet' if ok else 'do NOT meet'} the target** "
        f"(max {verdict.auroc.max():.3f}).",
        "",
        "## Robustness (range over C in {0.1, 1, 10}, fold seeds 0-2, leave-one-pair-out)",
        "",
        _md_table(robust) if len(pair_rows) > len(pre) else "Not run (use `--robust`).",
        "",
        "## Leave one emotion out (diagnostic, C = 1)",
        "",
        "Trained on the pairs of 7 emotions, tested on the pairs of the 8th: a value as high as"
        " the headline means the separating features are common to all of Set B, not words"
        " specific to one emotion.",
        "",
        _md_table(loeo.reset_index()),
        "",
        "## Features that separate Set B from controls v2 (fitted on all pairs; diagnostic)",
        "",
        *leak_lines,
        "",
        "## Surface statistics (means per item)",
        "",
        _md_table(surface.reset_index(names="feature")),
        "",
        "## Revision notes",
        "",
        REVISION_NOTES,
    ])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: compute, print and write the CSV and markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--robust", action="store_true",
                    help="also C = 0.1/10, fold seeds 1-2 and leave-one-pair-out (minutes)")
    args = ap.parse_args(argv)
    results = ceiling(robustness=args.robust)
    surface = surface_table()
    leaks = leaked_features()
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "controls_v2_ceiling.csv", index=False)
    text = report(results, surface, leaks)
    (args.out / "controls_v2_ceiling.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
