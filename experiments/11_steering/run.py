"""11 - Emotion steering and activity preferences: does adding an emotion vector change what the
model would rather do?

Seed 003's steering test with controls. The emotion vectors of experiment 09 are added to the
residual stream (``hidden_out`` of one layer, every token) at ``alpha`` x the mean residual norm
of that layer. Under each condition the model chooses between pairs of the 48 activities (8
categories x 6; asked in both orders, choice = P(A) vs P(B) at the answer position), and the
choices become Elo and Bradley-Terry ratings per category. Reported: the change vs the unsteered
baseline with paired bootstrap CIs over pairs, next to a random direction of the same norm at the
same alpha (the control the seed lacks), the probability mass left on the answer labels and the
language-model loss on neutral text (fluency), and greedy sample replies at every alpha.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from llmct import model_fingerprint, model_slug
from llmct.capture import model_device
from llmct.errors import LLMCTError
from llmct.extract import load_model_from_args
from llmct.generation import generate_reply
from llmct.preferences import ask_preferences, rating_table, ratings, sample_pairs
from llmct.runs import (
    OKABE_ITO,
    PALETTE,
    OneLineParser,
    Outputs,
    experiment_main,
    out_dir_for,
    pyplot,
    run_main,
)
from llmct.steering import mean_residual_norm, random_direction, steer
from llmct.vectors import default_layer, load_vector_library
from stimuli.loader import load_set

EXP_DIR = Path(__file__).resolve().parent
LIBRARY_NAME = "emotion_vectors_en.safetensors"
SAMPLE_PROMPT = "Tell me about your plans for the weekend."
RESULTS = ("choices.csv", "activity_ratings.csv", "category_ratings.csv", "conditions.csv",
           "samples.csv", "effect_sizes.csv", "run.json", "category_deltas.png", "category_deltas.svg",
           "category_excess.png", "category_excess.svg")


def default_library(model: str) -> Path:
    return EXP_DIR.parent / "09_emotion_vectors" / "outputs" / model_slug(model) / LIBRARY_NAME


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default",
                   help="'default' (embedded SmolLM2-135M-Instruct), a HF id or a local path")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: auto)")
    p.add_argument("--device", default=None, help="cuda | mps | cpu (default: auto)")
    p.add_argument("--device-map", default=None, metavar="MAP",
                   help="e.g. 'auto': spread a model too large for one GPU over all GPUs")
    p.add_argument("--vectors", default=None, metavar="PATH.safetensors",
                   help=f"vector library (default: 09's outputs/<model-slug>/{LIBRARY_NAME})")
    p.add_argument("--emotions", nargs="+", default=["angry", "happy", "calm", "afraid", "sad"])
    p.add_argument("--alphas", nargs="+", type=float, default=[0.1, 0.25],
                   help="steering strengths as fractions of the layer's mean residual norm "
                   "(the unsteered baseline is always run)")
    p.add_argument("--layer", type=int, default=None, help="steered layer (default: ~2/3 depth)")
    p.add_argument("--start", type=int, default=0,
                   help="steer tokens from this position on (0: the whole prompt)")
    p.add_argument("--random-controls", type=int, default=1,
                   help="random directions of the same norm per alpha")
    p.add_argument("--pairs-per-activity", type=int, default=2,
                   help="pairs per activity (balanced random subsample); >= 47 means all 1128")
    p.add_argument("--max-pairs", type=int, default=None,
                   help="quick runs: keep at most this many of the sampled pairs")
    p.add_argument("--norm-texts", type=int, default=8,
                   help="neutral dialogues used for the mean residual norm")
    p.add_argument("--fluency-texts", type=int, default=2,
                   help="neutral dialogues scored for language-model loss under steering")
    p.add_argument("--sample-tokens", type=int, default=40)
    p.add_argument("--sample-prompt", default=SAMPLE_PROMPT)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-boot", type=int, default=500)
    p.add_argument("--elo-k", type=float, default=32.0)
    p.add_argument("--elo-orders", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--out", default=None,
                   help="results folder (default: experiments/11_steering/outputs/<model-slug>/)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def conditions(library, emotions, alphas, n_random, layer, d_model, seed):
    """(name, kind, emotion, alpha, direction) of every condition, baseline first."""
    out = [("baseline", "baseline", "", 0.0, np.ones(d_model, np.float32))]
    for alpha in alphas:
        out += [(f"{e}@{alpha:g}", "emotion", e, alpha, library.vector(e, layer))
                for e in emotions]
        out += [(f"random{k}@{alpha:g}", "random", f"random{k}", alpha,
                 random_direction(d_model, seed + 1000 + k)) for k in range(n_random)]
    return out


def lm_loss(model, tokenizer, texts) -> float:
    """Mean next-token cross-entropy (nats/token) of the model on ``texts``."""
    total, count = 0.0, 0
    device = model_device(model)
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]], device=device)
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
            total += float(nll)
            count += ids.shape[1] - 1
    return total / count


def plot_deltas(table: pd.DataFrame, conds: pd.DataFrame, method: str, title: str,
                column: str = "delta", ylabel: str = "change vs unsteered"):
    """One panel per emotion (and random direction): the category ``column`` ('delta' vs the
    baseline, or 'excess' over the random controls) with its 95% CI, one bar per alpha."""
    plt = pyplot()
    sub = table[(table.method == method) & table[column].notna() & (table.kind != "baseline")]
    sub = sub.drop(columns=["emotion", "alpha"]).merge(conds[["condition", "emotion", "alpha"]],
                                                       on="condition")
    panels = list(dict.fromkeys(sub.emotion))
    cats = list(dict.fromkeys(table.category))
    alphas = sorted(set(sub.alpha))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    width = 0.8 / len(alphas)
    x = np.arange(len(cats))
    for ax, panel in zip(axes[0], panels, strict=True):
        for k, alpha in enumerate(alphas):
            rows = sub[(sub.emotion == panel) & (sub.alpha == alpha)].set_index("category")
            if rows.empty:
                continue
            rows = rows.loc[cats]
            val = rows[column]
            err = np.clip(np.vstack([val - rows[f"{column}_lo"], rows[f"{column}_hi"] - val]),
                          0, None)  # a percentile CI need not contain the point estimate
            ax.bar(x + (k - (len(alphas) - 1) / 2) * width, val, width,
                   yerr=err, color=PALETTE[k % len(PALETTE)], ecolor=OKABE_ITO["grey"],
                   capsize=1.5, label=f"alpha={alpha:g}")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, cats, rotation=60, ha="right", fontsize=7)
        ax.set_title(panel, fontsize=9)
    axes[0][0].set_ylabel(f"{method.upper()} {ylabel} (95% CI)")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


@experiment_main
def main(argv=None) -> int:
    args = parse_args(argv)
    path = Path(args.vectors) if args.vectors else default_library(args.model)
    if not path.exists():
        print(f"error: no emotion-vector library at {path}.\nRun experiment 09 first "
              f"(uv run python experiments/09_emotion_vectors/run.py --model {args.model}), "
              "or pass --vectors PATH.", file=sys.stderr)
        return 2
    library = load_vector_library(path)
    missing = [e for e in args.emotions if e not in library.labels]
    if missing:
        raise LLMCTError(f"emotions {missing} are not in {path} (have {library.labels})")
    out = Outputs(out_dir_for(EXP_DIR, args), args.overwrite)
    out.claim(RESULTS)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args, library, path, out)
    finally:
        torch.set_num_threads(threads)


def run(args, library, path: Path, out: Outputs) -> int:
    """Every condition: steer, ask, sample, score fluency; then ratings, tables and figures."""
    t0 = time.time()

    model, tok = load_model_from_args(args)
    n_layers = model.config.num_hidden_layers
    layer = args.layer if args.layer is not None else default_layer(n_layers)
    if layer not in library.layers:
        raise LLMCTError(f"layer {layer} is not in the vector library (layers {library.layers})")
    acts = load_set("activities")
    items = [a.text for a in acts]
    ids = [a.id for a in acts]
    cats = [a.label for a in acts]
    neutral = [s.text for s in load_set("neutral_dialogues", "en")]
    norm = mean_residual_norm(model, tok, neutral[:args.norm_texts], layer, mean_from=1,
                              batch_size=4)
    pairs = sample_pairs(len(items), args.pairs_per_activity, seed=args.seed)
    if args.max_pairs:
        keep = np.random.default_rng(args.seed).permutation(len(pairs))[:args.max_pairs]
        pairs = pairs[np.sort(keep)]
    conds = conditions(library, args.emotions, args.alphas, args.random_controls, layer,
                       model.config.hidden_size, args.seed)
    print(f"[11] layer {layer}, mean residual norm {norm:.2f}, {len(pairs)} pairs x 2 orders, "
          f"{len(conds)} conditions", flush=True)

    scores, choice_rows, cond_rows, samples = {}, [], [], []
    fluency_texts = neutral[-args.fluency_texts:] if args.fluency_texts else []
    for name, kind, emotion, alpha, direction in conds:
        with steer(model, direction, layer, alpha=alpha, scale=norm, start=args.start):
            ch = ask_preferences(model, tok, items, pairs, batch_size=args.batch_size,
                                 progress=args.progress)
            reply = generate_reply(model, tok, [{"role": "user", "content": args.sample_prompt}],
                                   max_new_tokens=args.sample_tokens)
            loss = lm_loss(model, tok, fluency_texts) if fluency_texts else float("nan")
        scores[name] = ch.scores
        frame = ch.frame(ids)
        frame.insert(0, "condition", name)
        choice_rows.append(frame)
        cond_rows.append(dict(condition=name, kind=kind, emotion=emotion or "baseline",
                              alpha=alpha, added_norm=alpha * norm, layer=layer,
                              label_mass=float(ch.mass.mean()),
                              label_mass_min=float(ch.mass.min()),
                              position_bias=ch.position_bias,
                              lm_loss_neutral=loss))
        samples.append(dict(condition=name, emotion=emotion or "baseline", alpha=alpha,
                            prompt=args.sample_prompt, reply=reply))
        print(f"[11] {name:>14}: label mass {ch.mass.mean():.3f}, A-bias {ch.position_bias:+.3f}, "
              f"LM loss {loss:.3f} ({time.time() - t0:.0f}s) | {reply[:70]!r}", flush=True)

    conds_df = pd.DataFrame(cond_rows)
    randoms = {a: list(conds_df.condition[(conds_df.kind == "random") & (conds_df.alpha == a)])
               for a in args.alphas}
    controls = {r.condition: randoms[r.alpha] for r in conds_df.itertuples()
                if r.kind == "emotion" and randoms[r.alpha]}
    table = rating_table(pairs, scores, cats, baseline="baseline", controls=controls,
                         n_boot=args.n_boot, seed=args.seed, elo_k=args.elo_k,
                         elo_orders=args.elo_orders)
    table = conds_df[["condition", "kind", "emotion", "alpha"]].merge(table, on="condition")
    mat = np.stack([scores[c] for c in scores])
    per_item = []
    for method in ("elo", "bt"):
        r = ratings(method, pairs, mat, len(items), seed=args.seed, elo_k=args.elo_k,
                 elo_orders=args.elo_orders)
        for c, cond in enumerate(scores):
            per_item += [dict(method=method, condition=cond, activity=ids[i], category=cats[i],
                              rating=r[c, i], delta=r[c, i] - r[0, i]) for i in range(len(items))]
    out.csv("choices.csv", pd.concat(choice_rows, ignore_index=True))
    out.csv("activity_ratings.csv", pd.DataFrame(per_item))
    out.csv("category_ratings.csv", table)
    out.csv("conditions.csv", conds_df)
    out.csv("samples.csv", pd.DataFrame(samples))
    steered = table[table.kind != "baseline"].assign(abs_delta=lambda f: f.delta.abs())
    sizes = steered.groupby(["method", "condition", "kind", "emotion", "alpha"], sort=False).agg(
        mean_abs_delta=("abs_delta", "mean"), max_abs_delta=("abs_delta", "max"),
        n_ci_excluding_0=("delta_lo", lambda lo: int(((lo > 0) | (
            steered.loc[lo.index, "delta_hi"] < 0)).sum()))).reset_index()
    out.csv("effect_sizes.csv", sizes)
    info = dict(model=args.model, model_fingerprint=model_fingerprint(model), layer=layer,
                mean_residual_norm=norm, norm_texts=args.norm_texts, start=args.start,
                n_pairs=int(len(pairs)), pairs_per_activity=args.pairs_per_activity,
                max_pairs=args.max_pairs,
                vectors=str(path), vectors_meta=library.meta, n_boot=args.n_boot,
                elo_k=args.elo_k, elo_orders=args.elo_orders, seed=args.seed,
                seconds=round(time.time() - t0, 1), torch_threads=torch.get_num_threads())
    out.path("run.json").write_text(json.dumps(info, indent=2, default=str))
    title = (f"{args.model}: steering at layer {layer} (alpha x mean norm {norm:.1f}), "
             f"{len(pairs)} pairs x 2 orders; BT ratings, paired bootstrap over pairs")
    out.figure(plot_deltas(table, conds_df, "bt", title), "category_deltas")
    out.figure(plot_deltas(table, conds_df, "bt", title, "excess",
                           "emotion minus mean of random directions"), "category_excess")
    show = table[(table.method == "bt") & (table.kind != "baseline")]
    print(show.pivot_table(index="condition", columns="category", values="delta",
                           sort=False).round(1).to_string())
    print(f"[11] done in {time.time() - t0:.0f}s -> {out.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
