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

The null (issue #16): >= 20 random directions drawn in the span of 09's per-story activations at
the steered layer (Gaussian combinations of the centred story means, the neutral PCs that the
emotion vectors lose projected out) plus shuffled-label story vectors (09's construction with the
story labels permuted), each scored with the preference read-out alone (no generation) at the
same alpha as the emotions. Every emotion's category change is placed in that null's
distribution, Elo on hard (win/loss) outcomes beside Bradley-Terry on soft outcomes, with the
read-out's label mass and first-option bias beside the ratings. Intervals resample activities
(the independent unit: pairs share activities) and every CSV with an interval names its unit in
``ci_unit``.

Speed (issue #17): ``--copies`` conditions share each read-out forward (the blocks up to the
steered layer do not depend on the steering and run once for all of them;
``llmct.core.steering.steer_copies``) and every sample reply comes from one ``generate`` with one
condition per row; ``--no-batch-conditions`` runs one condition at a time (the same numbers to
float rounding; ``benchmarks/bench_steering.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from llmct import model_fingerprint, model_slug
from llmct.analysis.stats import permutation_pvalue, two_way_bootstrap_mean
from llmct.core.generation import generate_replies, generate_reply
from llmct.core.steering import (
    lm_loss,
    lm_losses,
    mean_residual_norm,
    random_direction,
    steer,
    steer_copies,
    steer_rows,
)
from llmct.emotion.extract import load_model_from_args, positive_int
from llmct.emotion.null_directions import shuffled_label_vectors, span_directions
from llmct.emotion.preferences import (
    METHODS,
    UNITS,
    Choices,
    ask_preferences,
    ask_preferences_copies,
    group_means,
    rating_table,
    ratings,
    sample_pairs,
)
from llmct.emotion.vectors import (
    default_layer,
    load_vector_library,
    neutral_components,
    story_stimuli,
    story_vectors,
)
from llmct.errors import LLMCTError
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
from stimuli.loader import load_set

EXP_DIR = Path(__file__).resolve().parent
LIBRARY_NAME = "emotion_vectors_en.safetensors"
SAMPLE_PROMPT = "Tell me about your plans for the weekend."
STORE_PROMPT = "story-mean50"  # 09's story store under 01_extract's activations folder
RESULTS = ("choices.csv", "activity_ratings.csv", "category_ratings.csv", "conditions.csv",
           "samples.csv", "effect_sizes.csv", "run.json", "category_deltas.png", "category_deltas.svg",
           "category_excess.png", "category_excess.svg")
NULL_RESULTS = ("null_directions.csv", "null_summary.csv", "null_shift.png", "null_shift.svg")
MEAN_ABS = "mean |delta|"  # the category name of the mean over categories of |delta|
PAIR_MEAN_UNIT = "activities, two-way (option A x option B)"


def default_library(model: str) -> Path:
    """09's projected English vector library of ``model``."""
    return EXP_DIR.parent / "09_emotion_vectors" / "outputs" / model_slug(model) / LIBRARY_NAME


def default_story_store(model: str) -> Path:
    """09's store of per-story mean activations (tokens 50 on) of ``model``."""
    return (EXP_DIR.parent / "01_extract" / "outputs" / model_slug(model) / "activations"
            / STORE_PROMPT)


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
    p.add_argument("--null-directions", type=int, default=20,
                   help="null: random directions in the span of 09's story activations "
                   "(preference read-out only; 0: none)")
    p.add_argument("--null-shuffles", type=int, default=10,
                   help="null: story vectors with shuffled labels (read-out only; 0: none)")
    p.add_argument("--null-alphas", nargs="+", type=float, default=None,
                   help="alphas at which the null is scored (default: the largest --alphas)")
    p.add_argument("--stories", default=None, metavar="FOLDER",
                   help="09's story activation store (default: 01_extract/outputs/<model-slug>/"
                   f"activations/{STORE_PROMPT})")
    p.add_argument("--bootstrap-unit", choices=UNITS, default="activities",
                   help="what the rating intervals resample (activities: the independent unit)")
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
    p.add_argument("--copies", type=positive_int, default=16, metavar="C",
                   help="steering conditions per forward: the blocks up to the steered layer run "
                   "once for all C (they do not depend on the steering), the later ones on C "
                   "copies of the batch (llmct.core.steering.steer_copies)")
    p.add_argument("--no-batch-conditions", dest="batch_conditions", action="store_false",
                   help="one forward per condition instead of --copies conditions per forward "
                   "(same numbers to float rounding, about 2-3x slower)")
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
    stories = Path(args.stories) if args.stories else default_story_store(args.model)
    if (args.null_directions or args.null_shuffles) and not stories.is_dir():
        print(f"error: no story activations at {stories} for the null directions.\nRun "
              f"experiment 09 first (uv run python experiments/09_emotion_vectors/run.py "
              f"--model {args.model}), pass --stories FOLDER, or --null-directions 0 "
              "--null-shuffles 0.", file=sys.stderr)
        return 2
    out = Outputs(out_dir_for(EXP_DIR, args), args.overwrite)
    out.claim(RESULTS + (NULL_RESULTS if args.null_directions or args.null_shuffles else ()))
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args, library, path, stories, out)
    finally:
        torch.set_num_threads(threads)


class Setup(NamedTuple):
    """What every condition shares: model, layer, activities, pairs and the steering scale."""

    model: torch.nn.Module
    tok: object
    layer: int
    norm: float
    items: list[str]
    ids: list[str]
    cats: list[str]
    pairs: np.ndarray
    fluency: list[str]


def prepare(args: argparse.Namespace, library) -> Setup:
    """Load the model; pick the layer, the pairs and the mean residual norm (``N``).

    Raises LLMCTError if the steered layer is not in the vector library."""
    model, tok = load_model_from_args(args)
    n_layers = model.config.num_hidden_layers
    layer = args.layer if args.layer is not None else default_layer(n_layers)
    if layer not in library.layers:
        raise LLMCTError(f"layer {layer} is not in the vector library (layers {library.layers})")
    acts = load_set("activities")
    neutral = [s.text for s in load_set("neutral_dialogues", "en")]
    norm = mean_residual_norm(model, tok, neutral[:args.norm_texts], layer, mean_from=1,
                              batch_size=4)
    pairs = sample_pairs(len(acts), args.pairs_per_activity, seed=args.seed)
    if args.max_pairs:
        keep = np.random.default_rng(args.seed).permutation(len(pairs))[:args.max_pairs]
        pairs = pairs[np.sort(keep)]
    fluency = neutral[-args.fluency_texts:] if args.fluency_texts else []
    return Setup(model, tok, layer, float(norm), [a.text for a in acts], [a.id for a in acts],
                 [a.label for a in acts], pairs, fluency)


def readout_intervals(ch) -> dict:
    """Label mass and first-option bias (mean P(A) - 0.5) of a read-out ``ch``
    (:class:`llmct.emotion.preferences.Choices`), each with a 95% interval that resamples activities
    two-way (option A x option B; :func:`llmct.analysis.stats.two_way_bootstrap_mean`), since prompts
    that share an activity are not independent."""
    a = np.concatenate([ch.pairs[:, 0], ch.pairs[:, 1]])  # option A of each prompt
    b = np.concatenate([ch.pairs[:, 1], ch.pairs[:, 0]])
    mass = two_way_bootstrap_mean(np.concatenate([ch.mass[:, 0], ch.mass[:, 1]]), a, b,
                                  unit=PAIR_MEAN_UNIT)
    bias = two_way_bootstrap_mean(np.concatenate([ch.p_a[:, 0], ch.p_a[:, 1]]) - 0.5, a, b,
                                  unit=PAIR_MEAN_UNIT)
    return dict(label_mass_lo=mass.lo, label_mass_hi=mass.hi, position_bias_lo=bias.lo,
                position_bias_hi=bias.hi, ci_unit=f"{mass.unit} (n={mass.n_units})")


class Readout(NamedTuple):
    """One condition's preference read-out, LM loss on the fluency texts and its share of the
    time (seconds)."""

    choices: Choices
    loss: float
    seconds: float


def readouts(args: argparse.Namespace, su: Setup, conds: list[tuple[float, np.ndarray]],
             progress: bool = False) -> list[Readout]:
    """Preference read-out and LM loss of every ``(alpha, direction)`` of ``conds``, in order:
    ``--copies`` conditions per forward (:func:`llmct.core.steering.steer_copies`: the blocks
    up to the steered layer run once for all of them), or one :func:`steer` at a time with
    ``--no-batch-conditions``; the same numbers to float rounding."""
    nan = float("nan")
    size = args.copies if args.batch_conditions else 1
    out = []
    for k in range(0, len(conds), size):
        chunk, t = conds[k:k + size], time.time()
        if not args.batch_conditions:
            ((alpha, direction),) = chunk
            with steer(su.model, direction, su.layer, alpha=alpha, scale=su.norm,
                       start=args.start):
                chs = [ask_preferences(su.model, su.tok, su.items, su.pairs,
                                       batch_size=args.batch_size, progress=progress)]
                losses = [lm_loss(su.model, su.tok, su.fluency) if su.fluency else nan]
        else:
            with steer_copies(su.model, [d for _, d in chunk], su.layer, [a for a, _ in chunk],
                              scale=su.norm, start=args.start):
                chs = ask_preferences_copies(su.model, su.tok, su.items, su.pairs,
                                             copies=len(chunk), batch_size=args.batch_size,
                                             progress=progress)
                losses = (list(lm_losses(su.model, su.tok, su.fluency, copies=len(chunk)))
                          if su.fluency else [nan] * len(chunk))
        seconds = (time.time() - t) / len(chunk)
        out += [Readout(ch, float(loss), seconds) for ch, loss in zip(chs, losses, strict=True)]
    return out


def sample_replies(args: argparse.Namespace, su: Setup, conds: list[tuple[float, np.ndarray]]
                   ) -> list[str]:
    """The greedy reply to ``--sample-prompt`` under every ``(alpha, direction)`` of ``conds``:
    one ``generate`` with one condition per row (:func:`llmct.core.steering.steer_rows`), or
    one :func:`steer` at a time with ``--no-batch-conditions`` (the same replies up to argmax
    ties that batched float rounding can flip)."""
    messages = [{"role": "user", "content": args.sample_prompt}]
    if not args.batch_conditions:
        out = []
        for alpha, direction in conds:
            with steer(su.model, direction, su.layer, alpha=alpha, scale=su.norm,
                       start=args.start):
                out.append(generate_reply(su.model, su.tok, messages,
                                          max_new_tokens=args.sample_tokens))
        return out
    with steer_rows(su.model, [d for _, d in conds], su.layer, [a for a, _ in conds],
                    scale=su.norm, start=args.start):
        return generate_replies(su.model, su.tok, messages, copies=len(conds),
                                max_new_tokens=args.sample_tokens)


def score_conditions(args: argparse.Namespace, su: Setup, conds: list, t0: float
                     ) -> tuple[dict, list, list, list]:
    """Steer with every condition; ask, sample a reply, score fluency.

    Returns ``(scores: condition -> [P] soft outcomes, choices frames, condition rows, sample
    rows)``."""
    scores, choice_rows, cond_rows, samples = {}, [], [], []
    reads = readouts(args, su, [(c[3], c[4]) for c in conds], progress=args.progress)
    replies = sample_replies(args, su, [(c[3], c[4]) for c in conds])
    for (name, kind, emotion, alpha, _), (ch, loss, _), reply in zip(conds, reads, replies,
                                                                     strict=True):
        scores[name] = ch.scores
        frame = ch.frame(su.ids)
        frame.insert(0, "condition", name)
        choice_rows.append(frame)
        cond_rows.append(dict(condition=name, kind=kind, emotion=emotion or "baseline",
                              alpha=alpha, added_norm=alpha * su.norm, layer=su.layer,
                              label_mass=float(ch.mass.mean()),
                              label_mass_min=float(ch.mass.min()),
                              position_bias=ch.position_bias, lm_loss_neutral=loss,
                              **readout_intervals(ch)))
        samples.append(dict(condition=name, emotion=emotion or "baseline", alpha=alpha,
                            prompt=args.sample_prompt, reply=reply))
        print(f"[11] {name:>14}: label mass {ch.mass.mean():.3f}, A-bias {ch.position_bias:+.3f}, "
              f"LM loss {loss:.3f} ({time.time() - t0:.0f}s) | {reply[:70]!r}", flush=True)
    return scores, choice_rows, cond_rows, samples


def null_directions(args: argparse.Namespace, library, layer: int, folder: Path
                    ) -> tuple[list[dict], dict]:
    """The null's directions at ``layer``, from 09's story store in ``folder``.

    In-span (``--null-directions``): :func:`llmct.emotion.null_directions.span_directions` of the per-story mean
    activations (tokens 50 on, 160 English stories) with the neutral PCs that 09 projects out of
    the emotion vectors removed, scaled to the emotion vectors' mean norm at ``layer`` (seeds
    ``seed + 3000``). Shuffled-label (``--null-shuffles``): shuffle ``k`` (seed ``seed + 4000 +
    k``) rebuilds all vectors with the story labels permuted and keeps the one of label
    ``emotions[k % len(emotions)]``. Steering uses unit directions, so norms only document.

    Returns ``(rows: null, null_kind, label, seed, direction, vector_norm, max_abs_cos_emotions;
    provenance)``. Raises LLMCTError if the store does not rebuild the library's vectors (another
    model, pooling or stimulus set)."""
    stories, neutral = story_stimuli(library.meta.get("language", "en"))
    variance = float(library.meta.get("neutral_variance", 0.5))
    ev, ext, neu = story_vectors(folder, stories, neutral, load=None, model_name=args.model,
                                 mean_from=int(library.meta.get("mean_from", 50)),
                                 variance=variance, order=library.labels, progress=False)
    j = ev.layers.index(layer)
    real = library.layer(layer).astype(np.float64)
    diff = float(np.abs(ev.projected[:, j] - real).max() / np.abs(real).max())
    if diff > 1e-3:
        raise LLMCTError(f"{folder} does not rebuild {library.meta.get('method')} at layer "
                         f"{layer} (max relative difference {diff:.2g}); pass --stories or "
                         "--null-directions 0 --null-shuffles 0")
    acts = ext.acts["hidden_out"][:, j]
    neu_j = neu.acts["hidden_out"][:, j]
    comps, _ = neutral_components(neu_j.astype(np.float64), variance)
    scale = float(np.linalg.norm(real, axis=1).mean())
    rows = [dict(null=f"span{k}", null_kind="in-span", label="", seed=args.seed + 3000,
                 direction=v) for k, v in enumerate(span_directions(
                     acts, args.null_directions, seed=args.seed + 3000, norm=scale,
                     remove=comps))] if args.null_directions else []
    labels = [s.label for s in stories]
    for k in range(args.null_shuffles):
        emo = args.emotions[k % len(args.emotions)]
        vecs = shuffled_label_vectors(acts, labels, neu_j, seed=args.seed + 4000 + k,
                                      order=library.labels, variance=variance)
        rows.append(dict(null=f"shuffled{k}", null_kind="shuffled-label", label=emo,
                         seed=args.seed + 4000 + k, direction=vecs[library.labels.index(emo)]))
    unit_real = real / np.linalg.norm(real, axis=1, keepdims=True)
    for r in rows:
        r["vector_norm"] = float(np.linalg.norm(r["direction"]))
        r["max_abs_cos_emotions"] = float(np.abs(unit_real @ r["direction"]).max()
                                          / r["vector_norm"])
    info = dict(stories=str(folder), n_stories=len(stories), rebuild_max_rel_diff=diff,
                span_norm=scale, neutral_pcs_removed=len(comps))
    return rows, info


def score_nulls(args: argparse.Namespace, su: Setup, nulls: list[dict], alphas: list[float]
                ) -> tuple[dict, list[dict]]:
    """Preference read-out (no generation) under every null direction at every alpha, and the
    LM loss on the fluency texts. Returns ``(scores: name -> [P], one info row per name)``."""
    scores, rows = {}, []
    t0 = time.time()
    for alpha in alphas:
        reads = readouts(args, su, [(alpha, nd["direction"]) for nd in nulls])
        for nd, (ch, loss, seconds) in zip(nulls, reads, strict=True):
            name = f"{nd['null']}@{alpha:g}"
            scores[name] = ch.scores
            rows.append(dict(condition=name, **{k: v for k, v in nd.items() if k != "direction"},
                             alpha=alpha, added_norm=alpha * su.norm,
                             label_mass=float(ch.mass.mean()),
                             label_mass_min=float(ch.mass.min()),
                             position_bias=ch.position_bias, lm_loss_neutral=loss,
                             seconds=round(seconds, 2)))
        print(f"[11] null at alpha {alpha:g}: {len(nulls)} directions "
              f"({time.time() - t0:.0f}s so far)", flush=True)
    return scores, rows


def category_deltas(args: argparse.Namespace, su: Setup, scores: dict,
                    baseline: str = "baseline") -> pd.DataFrame:
    """Point estimates only: every method's category rating and change vs ``baseline`` for each
    condition of ``scores``, plus a row ``MEAN_ABS`` (the mean over categories of |delta|).
    Elo orders depend on the seed only, so the values equal :func:`rating_table`'s."""
    names = list(scores)
    mat = np.stack([scores[c] for c in names])
    rows = []
    for method in METHODS:
        r = ratings(method, su.pairs, mat, len(su.items), seed=args.seed, elo_k=args.elo_k,
                    elo_orders=args.elo_orders)
        cats, rc = group_means(r, su.cats)
        d = rc - rc[names.index(baseline)]
        for c, cond in enumerate(names):
            rows += [dict(method=method, condition=cond, category=cat, rating=rc[c, g],
                          delta=d[c, g]) for g, cat in enumerate(cats)]
            rows.append(dict(method=method, condition=cond, category=MEAN_ABS, rating=np.nan,
                             delta=float(np.abs(d[c]).mean())))
    return pd.DataFrame(rows)


NULL_SETS = (("in-span", ("in-span",)), ("shuffled-label", ("shuffled-label",)),
             ("all", ("in-span", "shuffled-label")))


def null_row(obs: float, null: np.ndarray, absolute: bool) -> dict:
    """One comparison of an observed change ``obs`` with the null directions' ``null`` [n]:
    the null's mean and 2.5/97.5 percentiles, the share of null |delta| below |obs|, and the
    permutation p of |obs| against the null's |delta| (+1 correction;
    :func:`llmct.analysis.stats.permutation_pvalue`). ``absolute``: values are already |delta|."""
    lo, hi = np.quantile(null, [0.025, 0.975])
    a, n = (obs, null) if absolute else (abs(obs), np.abs(null))
    return dict(null_mean=float(null.mean()), null_lo=float(lo), null_hi=float(hi),
                null_abs_q95=float(np.quantile(n, 0.95)), abs_percentile=float(np.mean(n < a)),
                p_abs=permutation_pvalue(a, n, "greater"))


def null_summary(deltas: pd.DataFrame, conds: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Every emotion and isotropic-random condition at a null alpha against the null directions
    of the same alpha: in-span, shuffled-label and both, per method and category (and
    ``MEAN_ABS``), with the read-out's label mass, first-option bias and LM loss beside them."""
    rows = []
    meta = conds.set_index("condition")
    by = {k: g for k, g in deltas.groupby(["method", "category"], sort=False)}
    for cond in conds[conds.kind.isin(["emotion", "random"]) &
                      conds.alpha.isin(set(info.alpha))].itertuples():
        for (method, cat), g in by.items():
            obs = float(g.delta[g.condition == cond.condition].iloc[0])
            for name, kinds in NULL_SETS:
                ref = info[(info.alpha == cond.alpha) & info.null_kind.isin(kinds)]
                if ref.empty:
                    continue
                null = g.set_index("condition").delta.loc[ref.condition].to_numpy(float)
                rows.append(dict(
                    method=method, condition=cond.condition, kind=cond.kind,
                    emotion=cond.emotion, alpha=cond.alpha, category=cat, delta=obs,
                    null=name, n_null=len(ref), **null_row(obs, null, cat == MEAN_ABS),
                    label_mass=meta.label_mass[cond.condition],
                    position_bias=meta.position_bias[cond.condition],
                    lm_loss_neutral=meta.lm_loss_neutral[cond.condition],
                    null_label_mass_median=float(ref.label_mass.median()),
                    null_position_bias_median=float(ref.position_bias.median()),
                    null_lm_loss_median=float(ref.lm_loss_neutral.median()),
                    ci_unit=f"null directions ({name}, n={len(ref)}): null_lo/null_hi are "
                    "their 2.5/97.5 percentiles, not a resampling interval"))
    return pd.DataFrame(rows)


def plot_null(summary: pd.DataFrame, title: str):
    """Mean |category change| of every null direction (grey: in-span circles, shuffled-label
    triangles) beside each emotion (vermillion) and isotropic random direction (blue), one panel
    per method (BT on soft outcomes, Elo on hard outcomes) and null alpha."""
    plt = pyplot()
    sub = summary[(summary.category == MEAN_ABS) & (summary.null == "all")]
    methods = [m for m in ("bt", "elo-hard") if m in set(sub.method)]
    alphas = sorted(set(sub.alpha))
    fig, axes = plt.subplots(len(alphas), len(methods), figsize=(4.6 * len(methods),
                             3.2 * len(alphas)), squeeze=False)
    for r, alpha in enumerate(alphas):
        for c, method in enumerate(methods):
            ax = axes[r][c]
            rows = sub[(sub.method == method) & (sub.alpha == alpha)]
            nulls = rows.attrs.get("null_values", {}).get((method, alpha), {})
            for k, (kind, marker) in enumerate((("in-span", "o"), ("shuffled-label", "^"))):
                vals = np.asarray(nulls.get(kind, []))
                jitter = np.random.default_rng(k).uniform(-0.15, 0.15, len(vals))
                ax.scatter(k + jitter, vals, marker=marker, s=14, color=OKABE_ITO["grey"])
            for x, row in enumerate(rows.itertuples(), start=2):
                colour = OKABE_ITO["vermillion"] if row.kind == "emotion" else OKABE_ITO["blue"]
                ax.scatter([x], [row.delta], s=30, color=colour)
            ax.set_xticks(range(2 + len(rows)), ["in-span", "shuffled", *rows.emotion],
                          rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{method}, alpha={alpha:g}", fontsize=9)
            ax.set_ylabel("mean |change| over categories")
    fig.suptitle(title, fontsize=9)
    return fig


def write_main_tables(args: argparse.Namespace, su: Setup, scores: dict, conds_df: pd.DataFrame,
                      choice_rows: list, samples: list, out: Outputs) -> pd.DataFrame:
    """choices, activity and category ratings (activity-bootstrap CIs, ``ci_unit``, the
    read-out's label mass and first-option bias beside them), conditions, samples and effect
    sizes; returns the category table."""
    randoms = {a: list(conds_df.condition[(conds_df.kind == "random") & (conds_df.alpha == a)])
               for a in args.alphas}
    controls = {r.condition: randoms[r.alpha] for r in conds_df.itertuples()
                if r.kind == "emotion" and randoms[r.alpha]}
    table = rating_table(su.pairs, scores, su.cats, baseline="baseline", controls=controls,
                         n_boot=args.n_boot, seed=args.seed, elo_k=args.elo_k,
                         elo_orders=args.elo_orders, unit=args.bootstrap_unit)
    table = conds_df[["condition", "kind", "emotion", "alpha"]].merge(table, on="condition")
    table = table.merge(conds_df[["condition", "label_mass", "position_bias"]], on="condition")
    mat = np.stack([scores[c] for c in scores])
    per_item = []
    for method in ("elo", "bt"):
        r = ratings(method, su.pairs, mat, len(su.items), seed=args.seed, elo_k=args.elo_k,
                    elo_orders=args.elo_orders)
        for c, cond in enumerate(scores):
            per_item += [dict(method=method, condition=cond, activity=su.ids[i],
                              category=su.cats[i], rating=r[c, i], delta=r[c, i] - r[0, i])
                         for i in range(len(su.items))]
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
    sizes["ci_unit"] = table.ci_unit.iloc[0]
    out.csv("effect_sizes.csv", sizes)
    return table


def run_null(args: argparse.Namespace, su: Setup, library, stories: Path, scores: dict,
             conds_df: pd.DataFrame, out: Outputs) -> dict:
    """Score the null directions at the null alphas; write null_directions.csv,
    null_summary.csv and the null_shift figure; returns provenance and timing for run.json."""
    alphas = args.null_alphas or [max(args.alphas)]
    nulls, info = null_directions(args, library, su.layer, stories)
    t0 = time.time()
    null_scores, null_rows = score_nulls(args, su, nulls, alphas)
    seconds = time.time() - t0
    null_info = pd.DataFrame(null_rows)
    deltas = category_deltas(args, su, {**scores, **null_scores})
    per_dir = null_info.merge(deltas, on="condition")
    out.csv("null_directions.csv", per_dir)
    summary = null_summary(deltas, conds_df, null_info)
    out.csv("null_summary.csv", summary)
    mean_abs = per_dir[per_dir.category == MEAN_ABS]
    summary.attrs["null_values"] = {
        (m, a): {k: g.delta.to_numpy() for k, g in mean_abs[(mean_abs.method == m) &
                                                            (mean_abs.alpha == a)]
                 .groupby("null_kind")} for m in METHODS for a in alphas}
    out.figure(plot_null(summary, f"{args.model}: steering at layer {su.layer} vs "
                         f"{len(nulls)} null directions (read-out only), {len(su.pairs)} pairs"),
               "null_shift")
    return dict(**info, null_alphas=alphas, null_directions=args.null_directions,
                null_shuffles=args.null_shuffles, null_seconds=round(seconds, 1),
                null_seconds_per_readout=round(seconds / max(1, len(null_rows)), 2))


def run(args: argparse.Namespace, library, path: Path, stories: Path, out: Outputs) -> int:
    """Every condition: steer, ask, sample, score fluency; then ratings, the null, tables and
    figures."""
    t0 = time.time()
    su = prepare(args, library)
    conds = conditions(library, args.emotions, args.alphas, args.random_controls, su.layer,
                       su.model.config.hidden_size, args.seed)
    print(f"[11] layer {su.layer}, mean residual norm {su.norm:.2f}, {len(su.pairs)} pairs x 2 "
          f"orders, {len(conds)} conditions", flush=True)
    scores, choice_rows, cond_rows, samples = score_conditions(args, su, conds, t0)
    conds_df = pd.DataFrame(cond_rows)
    table = write_main_tables(args, su, scores, conds_df, choice_rows, samples, out)
    null = (run_null(args, su, library, stories, scores, conds_df, out)
            if args.null_directions or args.null_shuffles else {})
    info = dict(model=args.model, model_fingerprint=model_fingerprint(su.model), layer=su.layer,
                mean_residual_norm=su.norm, norm_texts=args.norm_texts, start=args.start,
                n_pairs=int(len(su.pairs)), pairs_per_activity=args.pairs_per_activity,
                max_pairs=args.max_pairs, vectors=str(path), vectors_meta=library.meta,
                n_boot=args.n_boot, bootstrap_unit=args.bootstrap_unit, elo_k=args.elo_k,
                elo_orders=args.elo_orders, seed=args.seed, null=null,
                batch_conditions=args.batch_conditions, copies=args.copies,
                seconds=round(time.time() - t0, 1), torch_threads=torch.get_num_threads())
    out.path("run.json").write_text(json.dumps(info, indent=2, default=str))
    title = (f"{args.model}: steering at layer {su.layer} (alpha x mean norm {su.norm:.1f}), "
             f"{len(su.pairs)} pairs x 2 orders; BT ratings, paired bootstrap over "
             f"{args.bootstrap_unit}")
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
