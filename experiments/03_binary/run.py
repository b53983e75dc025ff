"""03 - Emotional vs neutral: how early does the model separate Set B from its matched controls?

Per layer and source, a binary probe (same protocol as 02) separates the 96 keyword-free
vignettes of Set B from their 96 matched neutral controls under grouped 5-fold CV (a vignette and
its control never straddle a split). We report AUROC, the saturation depth (first layer within
0.005 of the maximum), controls (shuffled labels, text-only TF-IDF, a token-length-only
classifier, and the probe re-run on a length-matched subsample), and P(emotional) that the probe
trained on all of B vs controls assigns to Set C's vivid neutral narratives (bootstrap CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.analysis import probes
from llmct.analysis.stats import bootstrap_ci, match_pairs
from llmct.errors import UsageError
from llmct.runs import (
    OKABE_ITO,
    SOURCE_COLOURS,
    experiment_main,
    experiment_parser,
    get_activations,
    plot_layer_panels,
    pyplot,
    run_main,
    start_run,
)

EXP_DIR = Path(__file__).resolve().parent
RESULTS = ("binary_results.csv", "binary_summary.csv", "scored_sets.csv",
           "binary_auroc_by_layer.png", "binary_auroc_by_layer.svg",
           "p_emotional_by_layer.png", "p_emotional_by_layer.svg")


def layer_free_row(source: str, control: str, scores: np.ndarray) -> dict:
    return {"source": source, "layer": -1, "depth": np.nan, "auroc": float(np.mean(scores)),
            "auroc_std": float(np.std(scores)), "n_folds": len(scores), "control": control}


def score_sets(acts, y, targets: dict[str, np.ndarray], layers, n_layers) -> pd.DataFrame:
    """P(emotional) of each target group under the probe fitted on all training rows."""
    rows = []
    for source, X in acts["train"].items():
        for j, layer in enumerate(layers):
            probe = probes.fit_probe(X[:, j], y)
            for name, idx in targets.items():
                p = probe.predict_proba(acts["all"][source][idx, j])[:, 1]
                ci = bootstrap_ci(p, n_boot=2000, seed=0)
                rows.append({"source": source, "layer": layer,
                             "depth": probes.depth(layer, n_layers), "scored": name,
                             "n": len(idx), "mean_p_emotional": ci.estimate, "ci_lo": ci.lo,
                             "ci_hi": ci.hi, "ci_unit": "scored items"})
    return pd.DataFrame(rows)


def plot_scores(scored: pd.DataFrame, title: str):
    plt = pyplot()
    sources = list(dict.fromkeys(scored.source))
    colours = [OKABE_ITO[c] for c in ("vermillion", "blue", "bluish_green", "reddish_purple")]
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources), 3.4), sharey=True,
                             squeeze=False)
    for ax, source in zip(axes[0], sources, strict=True):
        for k, (name, grp) in enumerate(scored[scored.source == source].groupby("scored",
                                                                                  sort=False)):
            ax.plot(grp.layer, grp.mean_p_emotional, color=colours[k % 4], label=name)
            ax.fill_between(grp.layer, grp.ci_lo, grp.ci_hi, color=colours[k % 4], alpha=0.2)
        ax.set_title(source, fontsize=10, color=SOURCE_COLOURS.get(source, "black"))
        ax.set_xlabel("layer")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("mean P(emotional), 95% CI")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def parse(argv):
    parser = experiment_parser(__doc__.splitlines()[0],
                               sets=("set_b", "set_b_control", "set_c", "set_a"))
    parser.add_argument("--emotional-set", default="set_b")
    parser.add_argument("--control-set", default="set_b_control")
    parser.add_argument("--caliper", type=float, default=2.0,
                        help="max token-length difference of a matched pair (length control)")
    return parser.parse_args(argv)


def check_sets(sets: np.ndarray, args) -> None:
    """Both sets present with at least one item per fold (checked before any extraction)."""
    missing = [n for n in (args.emotional_set, args.control_set) if n not in set(sets)]
    if missing:
        raise UsageError(f"set(s) {', '.join(map(repr, missing))} not in the stimuli (sets "
                         f"present: {', '.join(dict.fromkeys(sets))}); name them with "
                         "--emotional-set/--control-set")
    for name in (args.emotional_set, args.control_set):
        if (sets == name).sum() < probes.N_SPLITS:
            raise UsageError(f"set {name!r} has {(sets == name).sum()} item(s); the binary probe "
                             f"needs >= {probes.N_SPLITS} (one per cross-validation fold)")


def binary_results(acts, y, groups, texts, length, grid: dict, caliper: float
                   ) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-layer AUROC of the emotional-vs-control probe, its shuffled-label control, the
    text-only and length-only baselines on the same folds, and the same probe on a
    token-length-matched subsample (pairs within ``caliper`` tokens). Returns the results and
    the matched item indices."""
    folds = probes.make_folds(y, groups)
    frames = [
        probes.layer_sweep(acts, y, folds, **grid),
        probes.layer_sweep(acts, probes.shuffled(y), folds, control="shuffled", **grid),
        pd.DataFrame([
            layer_free_row("text", "text_tfidf", probes.text_cv_auroc(texts, y, folds)),
            layer_free_row("length", "length_only", probes.feature_cv_auroc(length, y, folds)),
        ]),
    ]
    matched = match_pairs(length, y == 1, caliper=caliper, seed=0)
    if len(matched) // 2 >= probes.N_SPLITS:
        m_folds = probes.make_folds(y[matched], groups[matched])
        frames += [
            probes.layer_sweep({s: a[matched] for s, a in acts.items()}, y[matched], m_folds,
                               control="length_matched", **grid),
            pd.DataFrame([layer_free_row("length", "length_only_matched", probes.feature_cv_auroc(
                length[matched], y[matched], m_folds))]),
        ]
    else:
        print(f"only {len(matched) // 2} length-matched pairs within {caliper} tokens: "
              "length-matched control skipped")
    results = pd.concat(frames, ignore_index=True)
    results["n_items"] = np.where(results.control.str.contains("matched"), len(matched), len(y))
    return results, matched


def scoring_targets(sets: np.ndarray, labels: np.ndarray, args) -> dict[str, np.ndarray]:
    """The other sets' items, split into neutral and emotional, to score with the probe."""
    targets = {}
    for name in dict.fromkeys(sets):
        if name in (args.emotional_set, args.control_set):
            continue
        for lab_name, sel in (("neutral", labels == "neutral"), ("emotional", labels != "neutral")):
            idx = np.flatnonzero((sets == name) & sel)
            if len(idx):
                targets[f"{name} ({lab_name})"] = idx
    return targets


@experiment_main
def main(argv=None) -> int:
    args = parse(argv)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    sets = np.array([s.set for s in stimuli])
    labels = np.array([s.label for s in stimuli])
    check_sets(sets, args)
    ext = get_activations(EXP_DIR, args, stimuli)
    if ext is None:
        return 0
    train = np.flatnonzero(np.isin(sets, [args.emotional_set, args.control_set]))
    y = (sets[train] == args.emotional_set).astype(int)
    groups = np.array([s.pair_id or s.id for s in stimuli])[train]
    length = ext.n_tokens[train].astype(float)  # prompt tokens = stimulus tokens + a constant
    acts = {s: a[train] for s, a in ext.acts.items()}
    grid = {"layers": ext.layers, "n_layers": ext.n_layers}
    results, matched = binary_results(acts, y, groups, [stimuli[i].text for i in train], length,
                                      grid, args.caliper)
    task = f"{args.emotional_set} vs {args.control_set}"
    for col, val in (("test_set", task), ("train_set", task),
                     ("prompt", ext.manifest["prompt"]), ("model", args.model)):
        results.insert(0, col, val)
    summary = probes.peak_table(results[results.control.isin(["none", "length_matched"])],
                                ["control", "source"], ext.n_layers)
    summary.insert(0, "model", args.model)
    summary["saturation_depth"] = summary.first_within_depth
    summary["mean_tokens_emotional"] = float(length[y == 1].mean())
    summary["mean_tokens_control"] = float(length[y == 0].mean())
    summary["n_matched_pairs"] = len(matched) // 2
    scored = score_sets({"train": acts, "all": ext.acts}, y,
                        scoring_targets(sets, labels, args), **grid)
    if not scored.empty:
        scored.insert(0, "trained_on", task)
        scored.insert(0, "model", args.model)
    out.csv("binary_results.csv", results)
    out.csv("binary_summary.csv", summary)
    out.csv("scored_sets.csv", scored)
    markers = {(r.source, r.source): int(r.first_within_layer)
               for r in summary[summary.control == "none"].itertuples()}
    out.figure(_plot_binary(results, markers, args, task), "binary_auroc_by_layer")
    if not scored.empty:
        out.figure(plot_scores(scored, f"{args.model}: P(emotional) from the probe trained on "
                               f"{task}"), "p_emotional_by_layer")
    print(summary[["control", "source", "max_auroc", "first_within_layer", "saturation_depth"]]
          .round(3).to_string(index=False))
    print(results[results.layer < 0][["control", "auroc", "auroc_std", "n_items"]]
          .round(3).to_string(index=False))
    return 0


def _plot_binary(results: pd.DataFrame, markers, args, task: str):
    """AUROC per layer, one panel per source; layer-free controls drawn in every panel."""
    by_layer = results[results.layer >= 0]
    free = results[results.layer < 0]
    panels = [pd.concat([by_layer[by_layer.source == s], free]).assign(panel=s)
              for s in dict.fromkeys(by_layer.source)]
    return plot_layer_panels(pd.concat(panels), panel="panel",
                             title=f"{args.model}: {task}, grouped 5-fold CV "
                             "(dot = saturation layer)", ylim=(0.3, 1.02), hline=0.5,
                             markers=markers)


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
