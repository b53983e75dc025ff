"""04 - Does the emotion signal depend on the few-shot prompt? Zero-shot vs few-shot probes.

The probe battery of 02 (within Set A, within Set B, A->B and B->A; shuffled-label and text-only
controls) is run on activations read out under the zero-shot prompt (the same instruction
without the two worked examples) and under the few-shot prompt, and compared layer by layer:
zeroshot_vs_fewshot.csv gives, per layer, the difference of the per-fold mean AUROCs and the
difference of the pooled held-out AUROCs with a paired bootstrap interval over items.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.analysis import probes
from llmct.analysis.layer_peaks import paired_difference_by_layer
from llmct.errors import LLMCTError
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
RESULTS = ("zeroshot_results.csv", "zeroshot_summary.csv", "zeroshot_vs_fewshot.csv",
           "zeroshot_vs_fewshot.png", "zeroshot_vs_fewshot.svg", "zeroshot_minus_fewshot.png",
           "zeroshot_minus_fewshot.svg", "run.json")
KEYS = ["model", "train_set", "test_set", "source", "layer", "depth", "control"]


def difference_intervals(probas: list[dict], layers, n_boot: int) -> pd.DataFrame:
    """Per probe, source and layer: pooled held-out AUROC of the first prompt minus the second,
    with a paired item-bootstrap interval (:func:`llmct.analysis.layer_peaks.paired_difference_by_layer`;
    the same items and folds under both prompts, probes not refitted)."""
    rows = []
    for key, (y, first) in probas[0].items():
        y_b, second = probas[1][key]
        if list(y) != list(y_b):
            raise LLMCTError(f"{key}: the two prompts scored different items")
        for source, proba in first.items():
            diff, lo, hi = paired_difference_by_layer(proba, second[source], y, np.unique(y),
                                                      n_boot=n_boot)
            unit = ("items (out-of-fold, paired)" if key[0] == key[1]
                    else "test items (probe fitted once, paired)")
            rows += [{"train_set": key[0], "test_set": key[1], "source": source,
                      "layer": int(layer), "control": "none", "pooled_difference": d,
                      "difference_lo": a, "difference_hi": b, "ci_unit": unit}
                     for layer, d, a, b in zip(layers, diff, lo, hi, strict=True)]
    return pd.DataFrame(rows)


@experiment_main
def main(argv=None) -> int:
    parser = add_probe_args(experiment_parser(__doc__.splitlines()[0], sets=("set_a", "set_b"),
                                              prompt="zeroshot"))
    parser.add_argument("--baseline-prompt", default="fewshot")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="item resamples for the per-layer difference intervals")
    args = parser.parse_args(argv)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    plan = plan_probes(stimuli, args)  # refused before any extraction if nothing can be probed
    prompts = [args.prompt, args.baseline_prompt]
    exts = [get_activations(EXP_DIR, args, stimuli, prompt=p) for p in prompts]
    if any(e is None for e in exts):
        return 0

    probas: list[dict] = [{} for _ in exts]
    results = pd.concat([run_probe_suite(e, stimuli, args, plan, proba_out=pr)
                         for e, pr in zip(exts, probas, strict=True)], ignore_index=True)
    out.record("run.json", run_record(args, left_out=plan.left_out,
                                      transfers=[f"{a}->{b}" for a, b, _ in plan.transfers]))
    summary = pd.concat([probes.summarise(results[results.prompt == p], e.n_layers)
                         .assign(prompt=p) for p, e in zip(prompts, exts, strict=True)])
    summary.insert(0, "model", args.model)
    wide = results.pivot_table(index=KEYS, columns="prompt", values="auroc", dropna=False)
    wide = wide.reset_index().dropna(subset=prompts)
    wide = wide.rename(columns={p: f"auroc_{p}" for p in prompts})
    wide["difference"] = wide[f"auroc_{prompts[0]}"] - wide[f"auroc_{prompts[1]}"]
    order = {k: i for i, k in enumerate(dict.fromkeys(zip(results.train_set, results.test_set,
                                                             strict=True)))}
    wide = wide.assign(_order=[order[k] for k in zip(wide.train_set, wide.test_set, strict=True)])
    wide = wide.sort_values(["_order", "control", "source", "layer"]).drop(columns="_order")
    wide = wide.merge(difference_intervals(probas, exts[0].layers, args.n_boot), how="left",
                      on=["train_set", "test_set", "source", "layer", "control"])
    out.csv("zeroshot_results.csv", results)
    out.csv("zeroshot_summary.csv", summary)
    out.csv("zeroshot_vs_fewshot.csv", wide)

    curves = results[results.control.isin(["none"])]
    text = results[(results.control == "text_tfidf") & (results.prompt == prompts[0])]
    frame = pd.concat([curves, text]).assign(style=lambda f: f.prompt.where(f.layer >= 0,
                                                                            "text-only TF-IDF"))
    fig = plot_layer_panels(frame.assign(panel=panel_name(frame)), panel="panel", style="style",
                            title=f"{args.model}: emotion probes, {prompts[0]} (solid) vs "
                            f"{prompts[1]} (dotted)", ylim=(0.3, 1.02), hline=0.5)
    out.figure(fig, "zeroshot_vs_fewshot")
    diff = wide[wide.control == "none"]
    fig = plot_layer_panels(diff.assign(panel=panel_name(diff)), panel="panel", y="difference",
                            ylabel=f"AUROC {prompts[0]} - {prompts[1]}",
                            title=f"{args.model}: per-layer difference", hline=0.0)
    out.figure(fig, "zeroshot_minus_fewshot")
    cols = ["prompt", "train_set", "test_set", "source", "max_auroc", "first_within_layer",
            "layer0_auroc", "shuffled_mean", "text_tfidf_auroc"]
    print(summary[cols].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
