"""05 - Activation patching: does copying a stimulus's activation carry its emotion into another?

For ordered pairs (source, target) of exemplars with different emotions, the source's block
output h, attention output a or MLP output m at the read-out token (the ':' of the few-shot
prompt's final "Emotion:") overwrites the target's at one layer, at 8 depths spanning the network
(layer 0 to the last). A patch succeeds when the target's greedy next token names the *source's*
emotion (stimuli/emotion_words.json); we also record the shift of probability mass toward the
source's emotion words. Pairings: within Set A, within Set B, and A -> B (A source, B target).
Controls on the same pairs: the unpatched target, a random vector with the source vector's norm,
the mean activation over all stimuli, and a source of the target's own emotion (same-emotion).
Intervals: a two-way bootstrap over source items x target items (every pair shares its source and
its target with other pairs, so pairs are not independent units; `ci_unit` in every CSV says so);
patch vs each control as a paired difference on the same pairs, resampled the same way.
`--from-pairs FILE` recomputes the summaries and figure from a stored patching_pairs.csv.gz
without loading the model. Compute: the few-shot prompt's shared start runs once
(``--no-shared-prefix`` runs every prompt whole), and each patched forward resumes at the
patched layer from the stored clean residual (``llmct.core.resume``, bit-identical).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.analysis.stats import two_way_bootstrap_mean
from llmct.core import interventions as iv
from llmct.core.capture import resolve_layers
from llmct.core.readout import PrefixCache, Readout
from llmct.emotion.answers import AnswerWords
from llmct.emotion.extract import load_model_from_args
from llmct.emotion.prompts import build_inputs, shared_prefix_cache
from llmct.errors import LLMCTError
from llmct.runs import (
    OKABE_ITO,
    experiment_main,
    experiment_parser,
    get_activations,
    pyplot,
    resummary_outputs,
    run_main,
    start_run,
    stored_table,
)
from llmct.style import sequential_cmap

EXP_DIR = Path(__file__).resolve().parent
RESULTS = ("patching_pairs.csv.gz", "patching_summary.csv", "patching_vs_controls.csv",
           "patching_success.png", "patching_success.svg")
CONDITIONS = ("patch", "random", "mean", "same_emotion", "unpatched")
SHORT = {"hidden_out": "h", "attn_out": "a", "mlp_out": "m"}
CI_UNIT = "source x target items"


def pair_interval(grp: pd.DataFrame, column: str, n_boot: int, seed: int):
    """Mean of ``column`` over the pairs in ``grp``, two-way bootstrap over source x target items."""
    return two_way_bootstrap_mean(grp[column].to_numpy(float), grp.source_id.to_numpy(),
                                  grp.target_id.to_numpy(), unit=CI_UNIT, n_boot=n_boot,
                                  seed=seed)


def add_causal_args(parser):
    """Patching options (--layers, shared with the extraction, picks the layers patched;
    default: 8 evenly spaced layers from the first to the last)."""
    parser.add_argument("--emotion-words", default=None, metavar="PATH.json",
                        help="answer words per emotion (default: stimuli/emotion_words.json)")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-batch", type=int, default=32,
                        help="targets per cached forward (the read-out token is re-run per patch)")
    parser.add_argument("--copies", type=int, default=4,
                        help="patches per target sharing one forward (copies of the cache)")
    return parser


def exemplars(stimuli, set_name: str, emotions, k: int) -> list:
    """The first ``k`` items (file order) of each emotion in ``set_name``."""
    out = []
    for emo in emotions:
        out += [s for s in stimuli if s.set == set_name and s.label == emo][:k]
    return out


def run_pairing(model, scorer, cache, clean, targets, sources, src_acts, src_answers, mean_acts, *,
                pairing, layers, patch_sources, within, seed):
    """Every ordered (target, source) pair under each condition; one row per pair.
    ``src_answers``: each source's own unpatched answer (the ceiling of a last-layer h patch)."""
    n_t, n_s = len(targets), len(sources)
    t_lab = np.array([s.label for s in targets])
    s_lab = np.array([s.label for s in sources])
    col = {e: j for j, e in enumerate(scorer.emotions)}
    clean_ans = scorer.answers(clean.logits)  # clean: [n_t, V] (first copy)
    clean_mass = scorer.mass(clean.logits)
    rows = []

    def record(cond, source, layer, ti, si, logits):
        ans = scorer.answers(logits)
        mass = scorer.mass(logits)
        for r, (t, s) in enumerate(zip(ti, si, strict=True)):
            if within and targets[t].id == sources[s].id:
                continue
            same = t_lab[t] == s_lab[s]
            condition = "same_emotion" if cond == "patch" and same else cond
            if condition not in ("same_emotion",) and same:
                continue  # controls are scored on different-emotion pairs only
            e = col[s_lab[s]]
            rows.append({"pairing": pairing, "source": source, "layer": layer,
                         "condition": condition, "target_id": targets[t].id,
                         "source_id": sources[s].id, "target_label": t_lab[t],
                         "source_label": s_lab[s], "target_clean_answer": clean_ans[t],
                         "source_clean_answer": src_answers[s],
                         "source_correct": int(src_answers[s] == s_lab[s]), "answer": ans[r],
                         "token": scorer.tokenizer.decode([int(logits[r].argmax())]),
                         "success": int(ans[r] == s_lab[s]),
                         "follows_source": int(ans[r] is not None and ans[r] == src_answers[s]),
                         "mass_source": float(mass[r, e]),
                         "mass_shift": float(mass[r, e] - clean_mass[t, e])})

    everyone = np.arange(n_t)
    for s in range(n_s):  # the unpatched target scored against every source's emotion
        record("unpatched", "none", -1, everyone, np.full(n_t, s), clean.logits)
    copies = cache.copies
    for source in patch_sources:
        for j, layer in layers:
            # every job patches all targets; `copies` jobs share one cached forward
            jobs = [("mean", everyone * 0, np.tile(mean_acts[source][j], (n_t, 1)))]
            for r in range(n_s):
                if within and r == 0:
                    continue  # a stimulus patched with itself
                si = (everyone + r) % n_s
                vecs = src_acts[source][si, j]
                rand = iv.random_like_norm(vecs, seed=seed + 7919 * r + 104729 * layer)
                jobs += [("patch", si, vecs), ("random", si, rand)]
            for k in range(0, len(jobs), copies):
                chunk = jobs[k: k + copies]
                vals = np.concatenate([v for _, _, v in chunk] + [chunk[0][2]] * (
                    copies - len(chunk)))
                logits = cache.run(lambda rows, v=vals, s=source, la=layer: iv.patch(
                    model, s, la, v[rows], positions="last"), start_layer=layer).logits
                for c, (cond, si, _) in enumerate(chunk):
                    part = logits[c * n_t:(c + 1) * n_t]
                    if cond == "mean":  # one vector for all: scored against every source
                        for s in range(n_s):
                            record("mean", source, layer, everyone, np.full(n_t, s), part)
                    else:
                        record(cond, source, layer, everyone, si, part)
    return rows


def summarise(pairs: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    keys = ["pairing", "source", "layer", "condition"]
    for key, grp in pairs.groupby(keys, sort=False):
        succ = pair_interval(grp, "success", n_boot, seed)
        shift = pair_interval(grp, "mass_shift", n_boot, seed)
        rows.append({**dict(zip(keys, key, strict=True)), "n_pairs": len(grp),
                     "n_units": succ.n_units, "ci_unit": CI_UNIT,
                     "success": succ.estimate, "success_lo": succ.lo, "success_hi": succ.hi,
                     "mass_shift": shift.estimate, "mass_shift_lo": shift.lo,
                     "mass_shift_hi": shift.hi, "mass_source": grp.mass_source.mean(),
                     "follows_source": grp.follows_source.mean(),
                     "success_if_source_read": grp.success[grp.source_correct == 1].mean()})
    return pd.DataFrame(rows)


def versus_controls(pairs: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Paired differences patch - control on the same (target, source) pairs, for each control
    (the random vector, the mean activation, the unpatched target), with a two-way bootstrap over
    source x target items."""
    keys = ["pairing", "target_id", "source_id"]
    patched = pairs[pairs.condition == "patch"]
    rows = []
    for control in ("random", "mean", "unpatched"):
        ctl = pairs[pairs.condition == control]
        on = keys + ["source", "layer"] if control != "unpatched" else keys
        both = patched.merge(ctl[on + ["success", "mass_shift"]], on=on, suffixes=("", "_c"))
        for key, g in both.groupby(["pairing", "source", "layer"], sort=False):
            g = g.assign(d_s=g.success - g.success_c, d_m=g.mass_shift - g.mass_shift_c)
            s = pair_interval(g, "d_s", n_boot, seed)
            m = pair_interval(g, "d_m", n_boot, seed)
            rows.append({"pairing": key[0], "source": key[1], "layer": key[2],
                         "control": control, "n_pairs": len(g), "n_units": s.n_units,
                         "ci_unit": CI_UNIT,
                         "success_patch": g.success.mean(), "success_control": g.success_c.mean(),
                         "success_diff": s.estimate, "success_diff_lo": s.lo,
                         "success_diff_hi": s.hi, "mass_shift_diff": m.estimate,
                         "mass_shift_diff_lo": m.lo, "mass_shift_diff_hi": m.hi,
                         "verdict": f"beats {control}" if s.lo > 0 else (
                             f"worse than {control}" if s.hi < 0 else
                             f"no better than {control}")})
    return pd.DataFrame(rows)


def plot(summary: pd.DataFrame, layers: list[int], title: str):
    plt = pyplot()
    pairings = list(dict.fromkeys(summary.pairing))
    conds = ["patch", "same_emotion", "random", "mean"]
    fig, axes = plt.subplots(1, len(pairings), figsize=(2.0 + 0.6 * len(layers) * len(pairings),
                                                         4.6), squeeze=False, sharey=True)
    vmax = max(0.2, float(np.ceil(summary.success.max() * 10) / 10))
    for k, (ax, pairing) in enumerate(zip(axes[0], pairings, strict=True)):
        sub = summary[(summary.pairing == pairing) & (summary.layer >= 0)]
        labels, grid = [], []
        for source in dict.fromkeys(sub.source):
            for cond in conds:
                g = sub[(sub.source == source) & (sub.condition == cond)].set_index("layer")
                if len(g):
                    labels.append(f"{SHORT.get(source, source)} {cond}")
                    grid.append([g.success.get(la, np.nan) for la in layers])
        base = summary[(summary.pairing == pairing) & (summary.condition == "unpatched")]
        if len(base):
            labels.append("unpatched")
            grid.append([float(base.success.iloc[0])] * len(layers))
        grid = np.array(grid, dtype=float)
        im = ax.imshow(grid, vmin=0, vmax=vmax, cmap=sequential_cmap(), aspect="auto")
        for (r, c), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color=OKABE_ITO["black"] if v > 0.6 * vmax else "white")
        ax.set_xticks(range(len(layers)), [str(la) for la in layers], fontsize=7)
        if k == 0:
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("layer patched")
        ax.set_title(pairing, fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="success (greedy token names source)")
    fig.suptitle(title, fontsize=9)
    return fig


@experiment_main
def main(argv=None) -> int:
    parser = add_causal_args(experiment_parser(__doc__.splitlines()[0], sets=("set_a", "set_b")))
    parser.add_argument("--exemplars", type=int, default=2,
                        help="items per emotion and set used as sources and targets (file order)")
    parser.add_argument("--pairings", nargs="+", default=["set_a:set_a", "set_b:set_b",
                                                          "set_a:set_b"], metavar="SOURCE:TARGET")
    parser.add_argument("--patch-sources", nargs="+", default=list(SHORT), choices=list(SHORT))
    parser.add_argument("--from-pairs", default=None, metavar="PAIRS.csv.gz",
                        help="recompute summaries and figure from stored pairs (no model)")
    args = parser.parse_args(argv)
    if args.from_pairs:
        return resummarise(args)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    missing = set(args.patch_sources) - set(args.sources)
    if missing:
        raise LLMCTError(f"--patch-sources {sorted(missing)} are not among --sources")
    ext = get_activations(EXP_DIR, args, stimuli)
    if ext is None:
        return 0
    layers = resolve_layers(args.layers if args.layers else iv.spaced_layers(ext.n_layers),
                            ext.n_layers)
    if not set(layers) <= set(ext.layers):
        raise LLMCTError(f"layers {sorted(set(layers) - set(ext.layers))} were not extracted")
    lj = [(ext.layers.index(la), la) for la in layers]  # (index in the extraction, layer)
    model, tok = load_model_from_args(args)
    scorer = AnswerWords.load(args.emotion_words).bind(tok)
    mean_acts = {s: ext.acts[s].mean(axis=0) for s in args.patch_sources}  # over all stimuli

    chosen = {name: exemplars(stimuli, name, scorer.emotions, args.exemplars)
              for p in args.pairings for name in p.split(":")}
    shared = shared_prefix_cache(model, tok, args.prompt) if args.shared_prefix else None
    caches, cleans = {}, {}
    for name, items in chosen.items():
        if len({s.label for s in items}) < 2:
            print(f"skipping {name}: fewer than 2 emotions with answer words")
            continue
        inputs, position = build_inputs(tok, [s.text for s in items], args.prompt)
        if position != "last":
            raise LLMCTError(f"prompt {args.prompt!r} does not read out at the last token")
        caches[name] = PrefixCache(model, tok, inputs, batch_size=args.target_batch,
                                   copies=args.copies, shared_prefix=shared)
        clean = caches[name].run()
        cleans[name] = Readout(clean.logits[: len(items)])

    rows = []
    for pairing in args.pairings:
        src_set, tgt_set = pairing.split(":")
        if src_set not in caches or tgt_set not in caches:
            continue
        sources = chosen[src_set]
        sub = ext.subset([s.id for s in sources])
        name = f"within {src_set}" if src_set == tgt_set else f"{src_set} -> {tgt_set}"
        print(f"[05] {name}: {len(chosen[tgt_set])} targets x {len(sources)} sources, "
              f"{len(layers)} layers, {len(args.patch_sources)} sources", flush=True)
        rows += run_pairing(model, scorer, caches[tgt_set], cleans[tgt_set], chosen[tgt_set],
                            sources, {s: sub.acts[s] for s in args.patch_sources},
                            scorer.answers(cleans[src_set].logits), mean_acts,
                            pairing=name, layers=lj, patch_sources=args.patch_sources,
                            within=src_set == tgt_set, seed=args.seed)
        src_ok = np.mean([a == s.label for a, s in zip(
            scorer.answers(cleans[src_set].logits), sources, strict=True)])
        print(f"[05] {name}: sources answered correctly when unpatched: {src_ok:.2f}")
    if not rows:
        raise LLMCTError("no pairing has two emotions in both sets: nothing to patch")
    pairs = pd.DataFrame(rows)
    pairs.insert(0, "model", args.model)
    out.csv("patching_pairs.csv.gz", pairs)
    return write_summaries(out, pairs, args)


PAIR_COLUMNS = ("pairing", "source", "layer", "condition", "source_id", "target_id", "success",
                "mass_shift")


def resummarise(args) -> int:
    """``--from-pairs``: summaries, controls table and figure from a stored pairs file."""
    pairs = stored_table(args.from_pairs, PAIR_COLUMNS, "patching pairs")
    out = resummary_outputs(EXP_DIR, args, RESULTS, "patching_pairs.csv.gz")
    return write_summaries(out, pairs, args)


def write_summaries(out, pairs: pd.DataFrame, args) -> int:
    layers = sorted(int(la) for la in pairs.layer.unique() if la >= 0)
    summary = summarise(pairs, args.n_boot, args.seed)
    vs = versus_controls(pairs, args.n_boot, args.seed)
    out.csv("patching_summary.csv", summary)
    out.csv("patching_vs_controls.csv", vs)
    fig = plot(summary, layers, f"{args.model}: activation patching at the read-out token "
               f"({args.exemplars} exemplar(s)/emotion; success = greedy token names the source's "
               "emotion)")
    out.figure(fig, "patching_success")
    show = summary[summary.condition.isin(["patch", "random", "same_emotion", "mean"])]
    best = show[show.condition == "patch"].sort_values("success").groupby("pairing").tail(1)
    print(best[["pairing", "source", "layer", "n_pairs", "success", "success_lo",
                "success_hi"]].round(3).to_string(index=False))
    print(vs.groupby(["pairing", "control", "verdict"]).size().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
