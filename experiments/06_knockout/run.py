"""06 - Knockout: which layers' attention or MLP output does the emotion answer depend on?

At every layer, the attention output a or the MLP output m is ablated at the read-out token (the
':' of the few-shot prompt's final "Emotion:") by zeroing, by the mean read-out activation over
all stimuli, or by Gaussian noise with the ablated vector's norm; a smaller variant ablates every
token at a few layers. Scored against the gold labels, not only against the clean output: the
accuracy of the model's answer (greedy next token mapped to an emotion by
stimuli/emotion_words.json) before/after, the accuracy of a downstream probe (fitted on clean
last-layer read-out activations, cross-fitted over 5 folds, applied to the ablated activations),
and the changed-top-token rate. A layer is critical where a drop is >= 0.20; bootstrap CIs over
stimuli (paired: clean and ablated answers of the same items; the unit is the item, named in the
``ci_unit`` column). ``--from-items FILE`` recomputes the summaries and figure from a stored
knockout_items.csv.gz (no model). Compute: the few-shot prompt's shared start runs once
(``--no-shared-prefix`` runs every prompt whole), and every ablated forward resumes at the
ablated layer from the stored clean residual (the blocks below are untouched by the ablation;
``llmct.core.resume``, bit-identical to whole forwards).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.analysis import probes
from llmct.analysis.stats import bootstrap_ci
from llmct.core import interventions as iv
from llmct.core.capture import resolve_layers
from llmct.core.readout import PrefixCache, Readout, readout_logits
from llmct.emotion.answers import AnswerWords
from llmct.emotion.extract import limit_stimuli, load_model_from_args
from llmct.emotion.prompts import build_inputs, shared_prefix_cache
from llmct.errors import LLMCTError
from llmct.runs import (
    OKABE_ITO,
    SOURCE_COLOURS,
    experiment_main,
    experiment_parser,
    get_activations,
    pyplot,
    resummary_outputs,
    run_main,
    start_run,
    stored_table,
)

EXP_DIR = Path(__file__).resolve().parent
RESULTS = ("knockout_items.csv.gz", "knockout_summary.csv", "knockout_critical.csv",
           "knockout_by_layer.png", "knockout_by_layer.svg")
SOURCES = ("attn_out", "mlp_out")
CRITICAL = 0.20
METRICS = {"accuracy": "answer accuracy", "probe_accuracy": "probe accuracy",
           "changed": "changed top token"}


def probe_folds(H: np.ndarray, y: np.ndarray, seed: int) -> list[tuple[np.ndarray, object]]:
    """``(test rows, probe fitted on the other rows)`` per stratified fold; [] if too few."""
    k = min(probes.N_SPLITS, int(pd.Series(y).value_counts().min()))
    if k < 2 or len(set(y)) < 2:
        return []
    return [(te, probes.fit_probe(H[tr], y[tr]))
            for tr, te in probes.make_folds(y, n_splits=k, seed=seed)]


def probe_predict(folds, H: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Cross-fitted predicted labels for ``rows`` (positions in the set) from ``H [len(rows), D]``."""
    pred = np.full(n, None, dtype=object)
    where = {int(r): k for k, r in enumerate(rows)}
    for te, probe in folds:
        take = [t for t in te if int(t) in where]
        if take:
            proba = probe.predict_proba(H[[where[int(t)] for t in take]])
            pred[take] = probe.classes[proba.argmax(1)]
    return pred[rows]


def item_rows(meta: dict, items, labels, clean, ablated, scorer, folds, rows_in_set, last):
    ans_c, ans_a = scorer.answers(clean.logits), scorer.answers(ablated.logits)
    changed = scorer.greedy(clean.logits) != scorer.greedy(ablated.logits)
    n = len(labels)
    if folds:
        p_c = probe_predict(folds, clean.hidden[last].numpy(), rows_in_set, n)
        p_a = probe_predict(folds, ablated.hidden[last].numpy(), rows_in_set, n)
    else:
        p_c = p_a = np.full(len(items), None, dtype=object)
    return [{**meta, "id": s.id, "label": s.label, "clean_answer": ans_c[k], "answer": ans_a[k],
             "correct_clean": int(ans_c[k] == s.label), "correct": int(ans_a[k] == s.label),
             "changed": int(changed[k]),
             "probe_correct_clean": np.nan if p_c[k] is None else int(p_c[k] == s.label),
             "probe_correct": np.nan if p_a[k] is None else int(p_a[k] == s.label)}
            for k, s in enumerate(items)]


def summarise(items: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    keys = ["set", "positions", "source", "layer", "mode"]
    rows = []
    for key, g in items.groupby(keys, sort=False):
        acc = bootstrap_ci((g.correct_clean - g.correct).to_numpy(float), n_boot=n_boot, seed=seed)
        ch = bootstrap_ci(g.changed.to_numpy(float), n_boot=n_boot, seed=seed)
        pr = g.dropna(subset=["probe_correct"])
        pdrop = bootstrap_ci((pr.probe_correct_clean - pr.probe_correct).to_numpy(float),
                             n_boot=n_boot, seed=seed)
        rows.append({**dict(zip(keys, key, strict=True)), "n_items": len(g),
                     "accuracy_clean": g.correct_clean.mean(), "accuracy": g.correct.mean(),
                     "accuracy_drop": acc.estimate, "accuracy_drop_lo": acc.lo,
                     "accuracy_drop_hi": acc.hi,
                     "probe_accuracy_clean": pr.probe_correct_clean.mean() if len(pr) else np.nan,
                     "probe_accuracy": pr.probe_correct.mean() if len(pr) else np.nan,
                     "probe_drop": pdrop.estimate, "probe_drop_lo": pdrop.lo,
                     "probe_drop_hi": pdrop.hi,
                     "changed_rate": ch.estimate, "changed_lo": ch.lo, "changed_hi": ch.hi,
                     "ci_unit": "items"})
    out = pd.DataFrame(rows)
    out["critical_accuracy"] = out.accuracy_drop >= CRITICAL
    out["critical_probe"] = out.probe_drop >= CRITICAL
    out["critical_changed"] = out.changed_rate >= CRITICAL  # the original's criterion
    return out


def plot(summary: pd.DataFrame, title: str):
    plt = pyplot()
    sets = list(dict.fromkeys(summary.set))
    fig, axes = plt.subplots(len(sets), 3, figsize=(12, 3.0 * len(sets)), squeeze=False,
                             sharex=True)
    dashes = {"zero": "-", "mean": "--", "noise": ":"}
    cols = [("accuracy", "accuracy_clean", None), ("probe_accuracy", "probe_accuracy_clean", None),
            ("changed_rate", None, ("changed_lo", "changed_hi"))]
    for r, name in enumerate(sets):
        sub = summary[summary.set == name]
        for c, (y, clean, band) in enumerate(cols):
            ax = axes[r][c]
            for (pos, source, mode), g in sub.groupby(["positions", "source", "mode"], sort=False):
                g = g.sort_values("layer")
                colour = SOURCE_COLOURS.get(source, OKABE_ITO["black"])
                if pos == "readout":
                    ax.plot(g.layer, g[y], color=colour, linestyle=dashes[mode], linewidth=1.2,
                            label=f"{source} {mode}")
                    if band:
                        ax.fill_between(g.layer, g[band[0]], g[band[1]], color=colour, alpha=0.08)
                else:
                    ax.scatter(g.layer, g[y], color=colour, marker={"zero": "o", "mean": "s",
                                                                    "noise": "^"}[mode], s=18,
                               facecolors="none", label=f"{source} {mode} (all tokens)")
            if clean:
                ax.axhline(sub[sub.positions == "readout"][clean].iloc[0],
                           color=OKABE_ITO["grey"], linewidth=1.0, label="clean")
            ax.set_title(f"{name}: {METRICS.get(y.replace('_rate', ''), y)}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            if r == len(sets) - 1:
                ax.set_xlabel("layer ablated")
    axes[0][-1].legend(fontsize=5.5, loc="upper right", ncol=2)
    fig.suptitle(title, fontsize=9)
    return fig


def parse(argv):
    parser = experiment_parser(__doc__.splitlines()[0], sets=("set_a", "set_b"))
    parser.add_argument("--modes", nargs="+", default=list(iv.ABLATIONS), choices=iv.ABLATIONS)
    parser.add_argument("--all-positions-layers", nargs="*", type=int, default=None,
                        help="layers of the every-token variant (default: first, middle, last)")
    parser.add_argument("--all-positions-limit", type=int, default=2, metavar="N",
                        help="items per (set, emotion) in the every-token variant (full forwards)")
    parser.add_argument("--all-positions-modes", nargs="+", default=["zero", "noise"],
                        choices=iv.ABLATIONS,
                        help="ablations of the every-token variant (default: no 'mean': the mean "
                        "is taken at the read-out token and is no stand-in for other tokens)")
    parser.add_argument("--emotion-words", default=None, metavar="PATH.json")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-batch", type=int, default=32)
    parser.add_argument("--no-batch-conditions", dest="batch_conditions", action="store_false",
                        help="one forward per ablation mode instead of every mode of a (source, "
                        "layer) in one forward (same numbers to float rounding; the batched "
                        "cache holds one copy of each prompt's KV cache per mode)")
    parser.add_argument("--from-items", default=None, metavar="ITEMS.csv.gz",
                        help="recompute summaries and figure from stored items (no model)")
    return parser.parse_args(argv)


def knockout_layers(ext, args) -> tuple[list[int], list[int]]:
    """Layers of the read-out knockouts and of the every-token variant (first, middle, last by
    default; an empty ``--all-positions-layers`` switches the variant off), all extracted."""
    n_layers = ext.n_layers
    layers = resolve_layers(args.layers if args.layers else "all", n_layers)
    if args.all_positions_layers is None:
        all_layers = sorted({0, n_layers // 2, n_layers - 1})
    else:
        all_layers = resolve_layers(args.all_positions_layers, n_layers) if (
            args.all_positions_layers) else []
    if not (set(layers) | set(all_layers)) <= set(ext.layers):
        raise LLMCTError("some requested layers were not extracted")
    return layers, all_layers


def copy_of(readout: Readout, c: int, n: int, last: int) -> Readout:
    """Copy ``c`` of the ``n`` items of a run of ``PrefixCache(copies=k)`` (rows ``c*n .. c*n+n``)."""
    rows = slice(c * n, (c + 1) * n)
    return Readout(readout.logits[rows], {last: readout.hidden[last][rows]})


def knock_out_set(model, tok, items, ablation, scorer, layers, all_layers, last: int, args
                  ) -> list[dict]:
    """Item rows of every knockout of one set: each (source, layer, mode) at the read-out token
    (prefix-cached) and, on ``--all-positions-limit`` items per emotion, at every token."""
    set_name = items[0].set
    inputs, position = build_inputs(tok, [s.text for s in items], args.prompt)
    if position != "last":
        raise LLMCTError(f"prompt {args.prompt!r} does not read out at the last token")
    labels = np.array([s.label for s in items])
    print(f"[06] {set_name}: {len(items)} items; caching prompts", flush=True)
    n, modes = len(items), list(args.modes)
    copies = len(modes) if args.batch_conditions else 1
    shared = shared_prefix_cache(model, tok, args.prompt) if args.shared_prefix else None
    cache = PrefixCache(model, tok, inputs, batch_size=args.target_batch, copies=copies,
                        shared_prefix=shared)
    clean = copy_of(cache.run(hidden_layers=[last]), 0, n, last)
    folds = probe_folds(clean.hidden[last].numpy(), labels, seed=probes.SEED)
    every, rows = np.arange(n), []
    for source in SOURCES:
        for layer in layers:
            makers = [lambda pos, s=source, la=layer, m=m: ablation(s, la, m, pos) for m in modes]
            if copies > 1:  # every mode in one forward, one copy of the items each
                both = cache.run(iv.by_copy(makers, n), hidden_layers=[last], start_layer=layer)
                runs = [copy_of(both, c, n, last) for c in range(copies)]
            else:
                runs = [cache.run(lambda rows, mk=mk: mk("last"), hidden_layers=[last],
                                  start_layer=layer) for mk in makers]
            for mode, abl in zip(modes, runs, strict=True):
                meta = {"set": set_name, "positions": "readout", "source": source,
                        "layer": layer, "mode": mode}
                rows += item_rows(meta, items, labels, clean, abl, scorer, folds, every, last)
        print(f"[06] {set_name}: {source} read-out ablations done", flush=True)
    if not (all_layers and args.all_positions_limit):
        return rows
    keep = {s.id for s in limit_stimuli(items, args.all_positions_limit)}
    sub = np.array([k for k, s in enumerate(items) if s.id in keep])
    sub_inputs, sub_items = [inputs[k] for k in sub], [items[k] for k in sub]
    clean_sub = readout_logits(model, tok, sub_inputs, batch_size=args.batch_size,
                               hidden_layers=[last], keep_resid_pre=all_layers)
    for source in SOURCES:
        for layer in all_layers:
            for mode in args.all_positions_modes:
                abl = readout_logits(model, tok, sub_inputs,
                                     lambda rows, s=source, la=layer, m=mode: ablation(
                                         s, la, m, "all"),
                                     batch_size=args.batch_size, hidden_layers=[last],
                                     start_layer=layer, clean=clean_sub)
                meta = {"set": set_name, "positions": "all", "source": source, "layer": layer,
                        "mode": mode}
                rows += item_rows(meta, sub_items, labels, clean_sub, abl, scorer, folds, sub,
                                  last)
    print(f"[06] {set_name}: every-token variant done ({len(sub)} items)", flush=True)
    return rows


@experiment_main
def main(argv=None) -> int:
    args = parse(argv)
    if args.from_items:
        return resummarise(args)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    ext = get_activations(EXP_DIR, args, stimuli)
    if ext is None:
        return 0
    missing = set(SOURCES) - set(ext.acts)
    if missing:
        raise LLMCTError(f"the extraction lacks {sorted(missing)} (add them to --sources)")
    layers, all_layers = knockout_layers(ext, args)
    mean_vec = {s: ext.acts[s].mean(axis=0) for s in SOURCES}  # [L_extracted, D], all stimuli
    model, tok = load_model_from_args(args)
    scorer = AnswerWords.load(args.emotion_words).bind(tok)

    def ablation(source, layer, mode, positions):
        """The knockout context of one (source, layer, mode) at ``positions``."""
        return iv.ablate(model, source, layer, mode, positions=positions,
                         mean_vector=mean_vec[source][ext.layers.index(layer)],
                         seed=args.seed + 1000 * layer)

    rows = []
    for set_name in dict.fromkeys(s.set for s in stimuli):
        items = [s for s in stimuli if s.set == set_name and s.label in scorer.emotions]
        if len({s.label for s in items}) < 2:
            print(f"skipping {set_name}: fewer than 2 emotions")
            continue
        rows += knock_out_set(model, tok, items, ablation, scorer, layers, all_layers,
                              ext.n_layers - 1, args)
    if not rows:
        raise LLMCTError("no set has two emotions with answer words: nothing to score")
    table = pd.DataFrame(rows)
    table.insert(0, "model", args.model)
    out.csv("knockout_items.csv.gz", table)
    return write_summaries(out, table, args)


ITEM_COLUMNS = ("set", "positions", "source", "layer", "mode", "id", "correct_clean", "correct",
                "changed", "probe_correct_clean", "probe_correct")


def resummarise(args) -> int:
    """``--from-items``: summaries, critical table and figure from a stored items file."""
    table = stored_table(args.from_items, ITEM_COLUMNS, "knockout items")
    out = resummary_outputs(EXP_DIR, args, RESULTS, "knockout_items.csv.gz")
    return write_summaries(out, table, args)


def write_summaries(out, table: pd.DataFrame, args) -> int:
    """Summary (intervals over items), critical layers and the figure from the per-item table."""
    summary = summarise(table, args.n_boot, args.seed)
    critical = summary[summary.critical_accuracy | summary.critical_probe | summary.critical_changed]
    out.csv("knockout_summary.csv", summary)
    out.csv("knockout_critical.csv", critical)
    out.figure(plot(summary, f"{args.model}: knockout at the read-out token (lines) and at every "
                    "token (markers); critical = drop >= 0.20"), "knockout_by_layer")
    base = summary.groupby("set").first()[["accuracy_clean", "probe_accuracy_clean"]]
    print(base.round(3).to_string())
    print(critical[["set", "positions", "source", "layer", "mode", "accuracy_drop",
                    "probe_drop", "changed_rate"]].round(3).to_string(index=False))
    return 0

if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
