"""02 - Where can the 8 emotions be linearly decoded? Per-layer probes with controls.

For every layer and source (block output h, attention output a, MLP output m) a standardised
logistic-regression probe is scored by 5-fold macro one-vs-rest AUROC within Set A and within
Set B, and by transfer A->B (and B->A); with --stimuli a.jsonl b.jsonl ... within each of your
sets and between every ordered pair of them. Controls on the same folds: shuffled labels, the
layer-0 baseline, and a text-only TF-IDF baseline (the keyword-spotting test). Reads 01's
activations, extracting whatever is missing. What is left out (labels with too few items) is
printed and recorded in run.json. Each within-set probe is re-scored under 5 fold seeds at the
layers the summary quotes (fold_seeds.csv; spread in probe_summary.csv's ``*_seed_*`` columns).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from llmct.analysis import probes
from llmct.runs import (
    add_probe_args,
    experiment_main,
    experiment_parser,
    get_activations,
    panel_name,
    plan_probes,
    plot_layer_panels,
    run_main,
    run_probe_suite,
    run_record,
    start_run,
)

EXP_DIR = Path(__file__).resolve().parent
RESULTS = ("probe_results.csv", "probe_summary.csv", "probe_auroc_by_layer.png",
           "probe_auroc_by_layer.svg", "fold_seeds.csv", "run.json")


@experiment_main
def main(argv=None) -> int:
    parser = add_probe_args(experiment_parser(__doc__.splitlines()[0], sets=("set_a", "set_b")))
    args = parser.parse_args(argv)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    plan = plan_probes(stimuli, args)  # a single label etc. is refused before any extraction
    ext = get_activations(EXP_DIR, args, stimuli)
    if ext is None:
        return 0
    peaks: list[dict] = []
    seeds: list[dict] = []
    results = run_probe_suite(ext, stimuli, args, plan, peaks_out=peaks, seeds_out=seeds)
    out.record("run.json", run_record(args, left_out=plan.left_out,
                                      transfers=[f"{a}->{b}" for a, b, _ in plan.transfers]))
    summary = probes.summarise(results, ext.n_layers, peak_ci=peaks)
    if seeds:
        summary = summary.merge(probes.seed_spread(seeds), how="left",
                                on=["train_set", "test_set", "source"])
    summary.insert(0, "model", args.model)
    out.csv("probe_results.csv", results)
    out.csv("probe_summary.csv", summary)
    if seeds:
        out.csv("fold_seeds.csv", pd.DataFrame(seeds).assign(model=args.model))

    frame = results.assign(panel=panel_name(results))
    markers = {(p, s): int(r) for p, s, r in zip(panel_name(summary), summary.source,
                                                  summary.first_within_layer, strict=True)}
    fig = plot_layer_panels(frame, panel="panel", title=f"{args.model}: emotion probes "
                            f"({ext.manifest['prompt']} prompt); dot = first layer within 0.005 "
                            "of max", ylim=(0.3, 1.02), hline=0.5, markers=markers)
    out.figure(fig, "probe_auroc_by_layer")
    cols = ["train_set", "test_set", "source", "max_auroc", "argmax_layer", "first_within_layer",
            "first_within_depth", "layer0_auroc", "shuffled_mean", "text_tfidf_auroc",
            "text_word_tfidf_auroc", "text_char_tfidf_auroc", "text_stylometric_auroc",
            "probe_minus_best_text", "argmax_lo", "argmax_hi", "first_within_lo",
            "first_within_hi", "p_max_over_layers", "argmax_seed_min", "argmax_seed_max"]
    print(summary[[c for c in cols if c in summary]].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
