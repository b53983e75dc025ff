"""07 - Attention at the read-out: which token types does each head read, and does it differ for
emotional vignettes?

For every head of every layer (eager attention; query heads, with their key/value group under
GQA), the attention weights from the read-out token (the ':' of the few-shot prompt's final
"Emotion:") are summed over six token types: the first token; prompt/template tokens (the
few-shot prompt outside the stimulus, located by character offsets); and, inside the stimulus,
emotion-bearing words (explicit emotion terms of validation/emotion_terms.json or words the NRC
Emotion Lexicon links to an emotion, via validation/lexical_screening.py), other content words,
function words (a small stop-word list) and other tokens (numbers, punctuation). Set B vignettes
are compared with their matched neutral controls (pair_id) by paired sign-flip permutation tests:
per head on the whole 6-type pattern (Bonferroni over heads) and per head and type (Benjamini-
Hochberg FDR), both on attention mass and on mass per token of the type (counts differ by design).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from llmct import head_dim
from llmct.emotion.extract import extract, load_extraction, load_model_from_args
from llmct.emotion.prompts import fewshot_prompt, zeroshot_prompt
from llmct.errors import LLMCTError
from llmct.runs import (
    OKABE_ITO,
    PALETTE,
    activation_dir_for,
    experiment_main,
    experiment_parser,
    pyplot,
    run_main,
    start_run,
)
from llmct.style import diverging_cmap
from validation.lexical_screening import load_terms, nrc_emotions

EXP_DIR = Path(__file__).resolve().parent
RESULTS = ("attention_by_head.csv", "attention_tests.csv", "attention_heads_differing.csv",
           "attention_token_types.csv", "attention_readout.png", "attention_readout.svg")
TYPES = ("first", "template", "emotion", "content", "function", "other")
PROMPTS = {"fewshot": fewshot_prompt, "zeroshot": zeroshot_prompt}
WORD_RE = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)*")
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves s t don isn wasn weren hasn haven
hadn doesn didn won wouldn shouldn couldn can't cannot one also upon around across toward towards
""".split())


def word_type(word: str, terms) -> str:
    w = word.lower()
    if w in STOP_WORDS:
        return "function"
    if terms.matches(w) or nrc_emotions(w):
        return "emotion"
    return "content"


def token_types(tokenizer, prompt: str, text: str, terms) -> np.ndarray:
    """The type of every token of ``prompt`` (see the module doc); the stimulus span is found by
    character offsets."""
    enc = tokenizer(prompt, return_offsets_mapping=True)
    start = prompt.rfind(text.strip())
    if start < 0:
        raise LLMCTError("stimulus text not found in its prompt")
    end = start + len(text.strip())
    words = [(m.start() + start, m.end() + start, word_type(m.group(), terms))
             for m in WORD_RE.finditer(prompt[start:end])]
    out = []
    for k, (a, b) in enumerate(enc["offset_mapping"]):
        if k == 0:
            out.append("first")
        elif b <= start or a >= end or a == b:
            out.append("template")
        else:
            hit = next((t for wa, wb, t in words if wa < b and wb > a), None)
            out.append(hit or "other")
    return np.array(out)


def type_masses(attn: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``attn [L, H, T]`` -> mass and mass per token of each type, both ``[L, H, len(TYPES)]``."""
    onehot = (types[:, None] == np.array(TYPES)[None, :]).astype(np.float64)  # [T, K]
    mass = attn[..., : len(types)].astype(np.float64) @ onehot
    counts = onehot.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_token = np.where(counts > 0, mass / counts, np.nan)
    return mass, per_token


def sign_flip(d: np.ndarray, n_perm: int, seed: int, chunk: int = 2000):
    """Paired sign-flip test of mean(d) = 0 for every column of ``d [n, m]`` (two-sided) and of
    the per-head pattern ``d.reshape(n, heads, K)``'s squared mean norm; NaN pairs are dropped
    column-wise (set to 0, the mean is rescaled by the valid count). Returns (p_cols, p_heads)."""
    n, m = d.shape
    valid = np.isfinite(d)
    d0 = np.where(valid, d, 0.0)
    cnt = np.maximum(valid.sum(0), 1)
    obs = d0.sum(0) / cnt
    K = len(TYPES)
    obs_head = np.nansum((obs.reshape(-1, K)) ** 2, axis=1)
    hits, hits_head = np.zeros(m), np.zeros(m // K)
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_perm:
        p = min(chunk, n_perm - done)
        signs = rng.choice([-1.0, 1.0], size=(p, n))
        null = signs @ d0 / cnt  # [p, m]
        hits += (np.abs(null) >= np.abs(obs) - 1e-12).sum(0)
        hits_head += ((null.reshape(p, -1, K) ** 2).sum(2) >= obs_head - 1e-12).sum(0)
        done += p
    return (hits + 1) / (n_perm + 1), (hits_head + 1) / (n_perm + 1)


def plot(by_head: pd.DataFrame, tests: pd.DataFrame, n_layers: int, n_heads: int, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.0))
    ax = axes[0]
    per_layer = by_head.groupby(["set", "layer", "type"]).mass.mean().reset_index()
    for k, t in enumerate(TYPES):
        for s, style in zip(dict.fromkeys(per_layer.set), ["-", "--"], strict=False):
            g = per_layer[(per_layer.type == t) & (per_layer.set == s)]
            ax.plot(g.layer, g.mass, color=PALETTE[k], linestyle=style,
                    label=f"{t} ({s})" if style == "-" or k == 0 else None)
    ax.set_xlabel("layer")
    ax.set_ylabel("attention mass from read-out (mean over heads, items)")
    ax.legend(fontsize=6, ncol=2)
    for ax, measure in zip(axes[1:], ["mass", "per_token"], strict=True):
        sub = tests[(tests.measure == measure) & (tests.type == "emotion")]
        grid = np.full((n_layers, n_heads), np.nan)
        sig = np.zeros((n_layers, n_heads), dtype=bool)
        for r in sub.itertuples():
            grid[r.layer, r.head] = r.mean_diff
            sig[r.layer, r.head] = r.significant
        lim = np.nanmax(np.abs(grid)) or 1.0
        im = ax.imshow(grid.T, cmap=diverging_cmap(), vmin=-lim, vmax=lim, aspect="auto", origin="lower")
        ys, xs = np.nonzero(sig.T)
        ax.scatter(xs, ys, marker="*", s=14, color=OKABE_ITO["black"], label="FDR q < 0.05")
        ax.set_xlabel("layer")
        ax.set_ylabel("head")
        ax.set_title(f"emotion-word attention {measure.replace('_', ' ')}: B - control", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(title, fontsize=9)
    return fig


def parse(argv):
    parser = experiment_parser(__doc__.splitlines()[0], sets=("set_b", "set_b_control"))
    parser.add_argument("--n-perm", type=int, default=20000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--emotional-set", default="set_b")
    parser.add_argument("--control-set", default="set_b_control",
                        help="matched controls (pair_id); v2: set_b_control_v2")
    args = parser.parse_args(argv)
    missing = [n for n in (args.emotional_set, args.control_set) if n not in args.sets]
    if missing and not args.stimuli:
        raise LLMCTError(f"--sets must include {missing} (the emotional and the control set)")
    if args.shard:
        raise LLMCTError("07 extracts attention in one process; --shard does not apply")
    if args.prompt not in PROMPTS:
        raise LLMCTError(f"07 needs a prompt that contains the stimulus: {sorted(PROMPTS)}")
    return args


def typed_attention(stimuli, ext, tok, prompt: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Per item, the read-out token's attention mass and per-token mass on each token type:
    ``[n, L, H, K]`` each (K = len(TYPES)), and the per-item token-type counts."""
    terms = load_terms()
    masses, per_tok, count_rows = [], [], []
    for k, s in enumerate(stimuli):
        types = token_types(tok, PROMPTS[prompt](s.text), s.text, terms)
        if len(types) != int(ext.n_tokens[k]):
            raise LLMCTError(f"{s.id}: {len(types)} tokens typed but {ext.n_tokens[k]} extracted")
        m, pt = type_masses(ext.attention[k], types)
        masses.append(m)
        per_tok.append(pt)
        count_rows.append({"id": s.id, "set": s.set, "label": s.label, "pair_id": s.pair_id,
                           **{f"n_{t}": int((types == t).sum()) for t in TYPES}})
    return np.stack(masses), np.stack(per_tok), count_rows


def by_head_table(stimuli, masses, per_tok, layers, n_heads: int, n_kv: int) -> pd.DataFrame:
    """Mean mass and per-token mass per (set, layer, head, token type)."""
    sets = np.array([s.set for s in stimuli])
    rows = []
    for name in dict.fromkeys(sets):
        sel = sets == name
        mm, pp = masses[sel].mean(0), np.nanmean(per_tok[sel], axis=0)
        for la, layer in enumerate(layers):
            for h in range(n_heads):
                rows += [{"set": name, "layer": layer, "head": h,
                          "kv_head": h // (n_heads // n_kv), "type": t,
                          "mass": mm[la, h, j], "per_token": pp[la, h, j]}
                         for j, t in enumerate(TYPES)]
    return pd.DataFrame(rows)


def matched_pairs(stimuli, emotional: str, control: str) -> tuple[list[int], list[int]]:
    """Item indices of the emotional items and their matched controls (by ``pair_id``)."""
    index = {s.id: k for k, s in enumerate(stimuli)}
    emo = {s.pair_id: index[s.id] for s in stimuli if s.set == emotional and s.pair_id}
    ctl = {s.pair_id: index[s.id] for s in stimuli if s.set == control and s.pair_id}
    pairs = sorted(set(emo) & set(ctl))
    if len(pairs) < 2:
        raise LLMCTError(f"need >= 2 items of {emotional} with their matched controls "
                         f"in {control} (pair_id)")
    return [emo[p] for p in pairs], [ctl[p] for p in pairs]


def pair_tests(arrays: dict, e_idx, c_idx, layers, n_heads: int, n_kv: int, args
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per measure: a sign-flip test over matched pairs (the unit) of every (layer, head, type)
    cell (FDR) and of each head's whole type pattern (Bonferroni)."""
    test_rows, head_rows = [], []
    shape = (len(layers), n_heads, len(TYPES))
    for measure, arr in arrays.items():
        d = (arr[e_idx] - arr[c_idx]).reshape(len(e_idx), -1)  # [pairs, L*H*K]
        p_cols, p_heads = sign_flip(d, args.n_perm, args.seed)
        qc = false_discovery_control(p_cols).reshape(shape)
        p_bonf = np.minimum(p_heads * len(p_heads), 1.0)
        mean_d, pc = np.nanmean(d, axis=0).reshape(shape), p_cols.reshape(shape)
        for la, layer in enumerate(layers):
            for h in range(n_heads):
                k = la * n_heads + h
                head_rows.append({"measure": measure, "layer": layer, "head": h,
                                  "kv_head": h // (n_heads // n_kv), "p_pattern": p_heads[k],
                                  "p_bonferroni": p_bonf[k],
                                  "differs": bool(p_bonf[k] < args.alpha),
                                  **{f"diff_{t}": mean_d[la, h, j] for j, t in enumerate(TYPES)}})
                test_rows += [{"measure": measure, "layer": layer, "head": h, "type": t,
                               "mean_diff": mean_d[la, h, j], "p": pc[la, h, j],
                               "q_fdr": qc[la, h, j],
                               "significant": bool(qc[la, h, j] < args.alpha)}
                              for j, t in enumerate(TYPES)]
    return pd.DataFrame(test_rows), pd.DataFrame(head_rows)


@experiment_main
def main(argv=None) -> int:
    args = parse(argv)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    model, tok = load_model_from_args(args, attn_implementation="eager")
    cfg = model.config
    n_heads = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_heads)
    folder = activation_dir_for(EXP_DIR, args)
    folder = folder.with_name(folder.name + "-attention")  # its own store: attention=True
    extract(model, tok, stimuli, folder, prompt=args.prompt, sources=("attn_out",),
            batch_size=args.batch_size, chunk_size=args.chunk_size, attention=True,
            progress=args.progress, model_name=args.model)
    ext = load_extraction(folder, stimuli)
    masses, per_tok, count_rows = typed_attention(stimuli, ext, tok, args.prompt)
    by_head = by_head_table(stimuli, masses, per_tok, ext.layers, n_heads, n_kv)
    e_idx, c_idx = matched_pairs(stimuli, args.emotional_set, args.control_set)
    tests, heads = pair_tests({"mass": masses, "per_token": per_tok}, e_idx, c_idx, ext.layers,
                              n_heads, n_kv, args)
    meta = {"model": args.model, "n_pairs": len(e_idx), "n_perm": args.n_perm,
            "head_dim": head_dim(cfg), "n_heads": n_heads, "n_kv_heads": n_kv}
    out.csv("attention_by_head.csv", by_head.assign(model=args.model))
    out.csv("attention_tests.csv", tests.assign(**meta))
    out.csv("attention_heads_differing.csv", heads.assign(**meta))
    out.csv("attention_token_types.csv", pd.DataFrame(count_rows))
    out.figure(plot(by_head, tests, ext.n_layers, n_heads,
                    f"{args.model}: attention from the read-out token; {args.emotional_set} vs "
                    f"{args.control_set} "
                    f"({len(e_idx)} pairs, sign-flip, {args.n_perm} permutations)"),
               "attention_readout")
    counts = pd.DataFrame(count_rows).groupby("set")[[f"n_{t}" for t in TYPES]].mean()
    print(counts.round(1).to_string())
    print(heads.groupby("measure").differs.sum().to_string())
    print(tests.groupby(["measure", "type"]).significant.sum().unstack().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
