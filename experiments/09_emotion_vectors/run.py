"""09 - Emotion vectors from stories: what do they say, and how are they organised?

Seed 003 / Anthropic's method: residual stream (block output) averaged over each story's tokens
from the 50th on, averaged per emotion, centred over emotions, and (projected) with the top
principal components of neutral dialogues (50% of their variance) removed. At the default layer
(~2/3 depth): logit lens of every vector (final norm applied), the emotion x emotion cosine matrix
with hierarchical clustering, k-means (k=4) against the design's valence x arousal quadrants
(adjusted Rand index with a permutation p), and PC1/PC2 against valence and arousal directions
built from pole emotions (leave-one-out). At every layer: the affect correlations and the
cross-layer RSA matrix. Everything for raw-centred and projected vectors; the vectors of every
layer are saved as a vector library (safetensors) for steering and the monitor.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.analysis import geometry as geo
from llmct.analysis.stats import permutation_pvalue
from llmct.core.lens import lens_logits, top_tokens
from llmct.emotion.vectors import (
    MEAN_FROM,
    NEUTRAL_VARIANCE,
    default_layer,
    pooling_description,
    save_vector_library,
    story_stimuli,
    story_vectors,
)
from llmct.errors import LLMCTError
from llmct.runs import (
    PALETTE,
    Outputs,
    activation_dir_for,
    experiment_main,
    experiment_parser,
    lazy_model,
    pyplot,
    run_main,
    story_out_dir,
    story_sets,
)
from llmct.style import diverging_cmap, sequential_cmap

EXP_DIR = Path(__file__).resolve().parent
KINDS = ("centred", "projected")
CSVS = ("summary.csv", "neutral_pcs.csv", "logit_lens.csv", "lens_emotion_word_rank.csv",
        "cosine_matrix.csv", "clusters.csv", "cluster_agreement.csv", "affect_axes_by_layer.csv",
        "cross_layer_rsa.csv")
FIGURES = ("cosine_clustered", "kmeans_pca", "affect_pcs", "affect_by_layer", "cross_layer_rsa")


def parse(argv):
    parser = experiment_parser(__doc__.splitlines()[0], sets=("stories", "neutral_dialogues"))
    parser.add_argument("--language", default="en", help="story language (en, ja)")
    parser.add_argument("--emotions", nargs="*", default=None, help="only these emotions")
    parser.add_argument("--layer", type=int, default=None, help="analysis layer (default ~2/3)")
    parser.add_argument("--mean-from", type=int, default=MEAN_FROM,
                        help="average each story's tokens from this index on")
    parser.add_argument("--variance", type=float, default=NEUTRAL_VARIANCE,
                        help="share of neutral variance whose PCs are projected out")
    parser.add_argument("--k", type=int, default=4, help="k-means clusters")
    parser.add_argument("--top-k", type=int, default=10, help="logit-lens tokens per side")
    parser.add_argument("--n-perm", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.stimuli or args.shard:
        raise LLMCTError("this experiment uses the shipped stories; --stimuli/--shard do not apply")
    return args


def affect_poles(stories, labels: list[str]) -> dict:
    """Valence and arousal of each emotion from the stimulus design (+1 / -1), and the poles."""
    rating = {s.label: (float(s.valence), float(s.arousal)) for s in stories}
    val = np.array([rating[e][0] for e in labels])
    aro = np.array([rating[e][1] for e in labels])
    quad = [f"{'+' if v > 0 else '-'}valence/{'high' if a > 0 else 'low'} arousal"
            for v, a in zip(val, aro, strict=True)]
    return {"valence": val, "arousal": aro, "quadrant": quad,
            "poles": {"valence": ([e for e, v in zip(labels, val, strict=True) if v > 0],
                                  [e for e, v in zip(labels, val, strict=True) if v < 0]),
                      "arousal": ([e for e, a in zip(labels, aro, strict=True) if a > 0],
                                  [e for e, a in zip(labels, aro, strict=True) if a < 0])}}


def pole_projection(V: np.ndarray, labels: list[str], ratings: np.ndarray) -> np.ndarray:
    pos = [e for e, v in zip(labels, ratings, strict=True) if v > 0]
    neg = [e for e, v in zip(labels, ratings, strict=True) if v < 0]
    return geo.loo_pole_projection(V, labels, pos, neg)


def affect_rows(V: np.ndarray, labels: list[str], affect: dict, n_perm: int = 0,
                seed: int = 0) -> list[dict]:
    """PC1/PC2 of the vectors against leave-one-out pole projections and the design ratings.

    The parametric p of a PC-vs-projection correlation ignores that both come from the same
    vectors; with ``n_perm`` the |r| is also tested against pole assignments shuffled across
    emotions (``p_perm``)."""
    res = geo.pca(V, 2)
    rows = []
    dirs = {}
    perms = geo.random_permutations(len(labels), n_perm, seed) if n_perm else []
    for axis in ("valence", "arousal"):
        pos, neg = affect["poles"][axis]
        if not pos or not neg:
            continue
        proj = pole_projection(V, labels, affect[axis])
        dirs[axis] = geo.pole_direction(V, labels, pos, neg)
        null_proj = [pole_projection(V, labels, affect[axis][p]) for p in perms]
        for j in range(res.scores.shape[1]):
            r, p = geo.pearson(res.scores[:, j], proj)
            r2, p2 = geo.pearson(res.scores[:, j], affect[axis])
            null = np.abs([geo.pearson(res.scores[:, j], q)[0] for q in null_proj])
            p_perm = permutation_pvalue(abs(r), null) if n_perm and np.isfinite(r) else np.nan
            rows.append({"pc": f"PC{j + 1}", "pc_ratio": float(res.explained_ratio[j]),
                         "axis": axis, "r_pole_projection": r, "p_pole_projection": p,
                         "p_perm": p_perm, "n_perm": n_perm, "r_rating": r2, "p_rating": p2})
    cos = float(dirs["valence"] @ dirs["arousal"]) if len(dirs) == 2 else np.nan
    for row in rows:
        row["cos_valence_arousal_directions"] = cos
    return rows


def lens_rows(model, tok, V: np.ndarray, labels: list[str], k: int) -> tuple[list, list, np.ndarray]:
    """Top/bottom logit-lens tokens of each vector, and the rank of each emotion word's first
    token among all vocabulary logits under every vector (0 = top): the own vector's rank is
    compared with the word's rank under the other emotions' vectors (word-frequency control)."""
    tokens = []
    for side in ("top", "bottom"):
        for e, toks in zip(labels, top_tokens(model, tok, V, k, bottom=side == "bottom",
                                              softmax=False), strict=True):
            tokens += [{"emotion": e, "side": side, "rank": r, "token": t, "logit": v}
                       for r, (t, v) in enumerate(toks)]
    logits = lens_logits(model, V)
    wids = [tok(" " + e, add_special_tokens=False)["input_ids"][0] for e in labels]
    # R[i, j]: rank of emotion j's word under vector i (0 = top of the vocabulary)
    R = np.array([[int(np.sum(logits[i] > logits[i, w])) for w in wids]
                  for i in range(len(labels))])
    ranks = [{"emotion": e, "word_token": tok.decode([wids[i]]), "rank": int(R[i, i]),
              "rank_under_other_vectors_median": float(np.median(np.delete(R[:, i], i))),
              "vocab_size": int(logits.shape[1])} for i, e in enumerate(labels)]
    return tokens, ranks, R


def plot_clustered(mats: dict, title: str):
    from scipy.cluster.hierarchy import dendrogram

    plt = pyplot()
    fig, axes = plt.subplots(2, len(mats), figsize=(6.2 * len(mats), 7.6),
                             gridspec_kw={"height_ratios": [1, 4]}, squeeze=False)
    for j, (kind, (labels, S, Z, order)) in enumerate(mats.items()):
        dendrogram(Z, ax=axes[0][j], no_labels=True, color_threshold=0,
                   above_threshold_color="black")
        axes[0][j].axis("off")
        axes[0][j].set_title(f"{kind} vectors (average linkage, cosine distance)", fontsize=9)
        ax = axes[1][j]
        im = ax.imshow(S[np.ix_(order, order)], cmap=diverging_cmap(), vmin=-1, vmax=1)
        names = [labels[i] for i in order]
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(im, ax=axes[1].tolist(), shrink=0.7, label="cosine")
    fig.suptitle(title, fontsize=9)
    return fig


def plot_scatter(frames: dict, colour: str, title: str, xlab: str = "PC1", ylab: str = "PC2"):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(frames), figsize=(6 * len(frames), 5), squeeze=False)
    markers = ["o", "s", "^", "D", "v", "P"]
    for ax, (kind, f) in zip(axes[0], frames.items(), strict=True):
        groups = list(dict.fromkeys(f[colour]))
        shapes = list(dict.fromkeys(f.quadrant))
        for r in f.itertuples():
            c = PALETTE[groups.index(getattr(r, colour)) % len(PALETTE)]
            ax.scatter(r.pc1, r.pc2, color=c, marker=markers[shapes.index(r.quadrant) % 6], s=40)
            ax.annotate(r.emotion, (r.pc1, r.pc2), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        for k, g in enumerate(groups):
            ax.scatter([], [], color=PALETTE[k % len(PALETTE)], label=f"{colour} {g}")
        for k, q in enumerate(shapes if colour != "quadrant" else []):
            ax.scatter([], [], color="grey", marker=markers[k % 6], label=q)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.set_xlabel(f"{xlab} ({f.pc1_ratio.iloc[0]:.1%})")
        ax.set_ylabel(f"{ylab} ({f.pc2_ratio.iloc[0]:.1%})")
        ax.set_title(f"{kind} vectors", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_affect_by_layer(frame: pd.DataFrame, layer: int, title: str):
    plt = pyplot()
    kinds = list(dict.fromkeys(frame.kind))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.6), sharey=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        sub = frame[frame.kind == kind]
        for k, ((pc, axis), g) in enumerate(sub.groupby(["pc", "axis"], sort=False)):
            ax.plot(g.layer, g.r_pole_projection.abs(), color=PALETTE[k % len(PALETTE)],
                    linestyle="-" if pc == "PC1" else "--", label=f"|r| {pc} x {axis}")
        ax.axvline(layer, color="grey", linewidth=0.6)
        ax.set_title(f"{kind} vectors", fontsize=9)
        ax.set_xlabel("layer")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("|Pearson r| with LOO pole projection")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_rsa_matrices(mats: dict, layers: list[int], title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(mats), figsize=(5.4 * len(mats), 4.6), squeeze=False)
    for ax, (kind, M) in zip(axes[0], mats.items(), strict=True):
        im = ax.imshow(M, cmap=sequential_cmap(), vmin=min(0, np.nanmin(M)), vmax=1, origin="lower")
        ticks = list(range(0, len(layers), max(1, len(layers) // 10)))
        ax.set_xticks(ticks, [layers[t] for t in ticks])
        ax.set_yticks(ticks, [layers[t] for t in ticks])
        ax.set_xlabel("layer")
        ax.set_ylabel("layer")
        ax.set_title(f"{kind} vectors: Spearman RSA between layers", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title, fontsize=9)
    return fig


def neutral_pc_rows(ev, neu, layers: list[int], tag: dict) -> list[dict]:
    """Per layer: the neutral PCs removed (centred PCA) vs the uncentred SVD's top-2 share (the
    trap of METHODS.md: an uncentred SVD finds the mean direction)."""
    rows = []
    for j, lay in enumerate(layers):
        X = neu.acts["hidden_out"][:, j].astype(np.float64)
        s = np.linalg.svd(X, compute_uv=False) ** 2
        rows.append({**tag, "layer": lay, "n_neutral": len(X),
                     "n_components_removed": int(ev.n_components[j]),
                     "variance_explained_removed": float(ev.neutral_variance[j]),
                     "uncentred_top2_share": float(s[:2].sum() / s.sum()),
                     "centred_pc1_share": float(geo.pca(X, 1).explained_ratio[0])})
    return rows


def kind_clusters(V: np.ndarray, order, labels, affect: dict, args, base: dict
                  ) -> tuple[pd.DataFrame, list[dict]]:
    """PC1/PC2, k-means (unit vectors, full space; PC plane) and hierarchical order of one
    kind's vectors ``V`` [E, d] at the analysis layer, and each clustering's agreement (ARI, p)
    with the design's valence x arousal quadrants (``order``: the hierarchical leaf order)."""
    pcs = geo.pca(V, 2)
    scores = np.pad(pcs.scores, ((0, 0), (0, 2 - pcs.scores.shape[1])))
    ratios = np.pad(pcs.explained_ratio, (0, 2 - len(pcs.explained_ratio)))
    km_full = geo.kmeans(geo.unit_rows(V), args.k, seed=args.seed)
    km_2d = geo.kmeans(scores, args.k, seed=args.seed)
    frame = pd.DataFrame({**base, "emotion": labels, "valence": affect["valence"],
                          "arousal": affect["arousal"], "quadrant": affect["quadrant"],
                          "kmeans": km_full, "kmeans_2d": km_2d,
                          "hier_order": np.argsort(order), "pc1": scores[:, 0],
                          "pc2": scores[:, 1], "pc1_ratio": ratios[0], "pc2_ratio": ratios[1]})
    agree = []
    for name, cl in (("kmeans (unit vectors, full space)", km_full),
                     ("kmeans (PC1-PC2 plane)", km_2d)):
        ari, p = geo.cluster_agreement(cl, affect["quadrant"], n_perm=args.n_perm, seed=args.seed)
        agree.append({**base, "clustering": name, "k": len(set(cl)),
                      "reference": "valence x arousal quadrant", "ari": ari, "p": p})
    return frame, agree


def analyse_kinds(ev, layers: list[int], layer: int, affect: dict, args, tag: dict, load
                  ) -> dict:
    """Every analysis of 09 for each kind of vectors (projected, centred): affect axes by layer,
    cross-layer RSA, cosines, clusters and their agreement, logit lens. Returns lists of rows
    (``affect``, ``cos``, ``clusters``, ``agree``, ``lens_tok``, ``lens_rank``) and per-kind
    dicts (``rsa``, ``clustered``, ``scatter``, ``word_test``)."""
    labels = ev.labels
    r: dict = {k: [] for k in ("affect", "cos", "clusters", "agree", "lens_tok", "lens_rank")}
    r.update({k: {} for k in ("rsa", "clustered", "scatter", "word_test")})
    for kind in KINDS:
        arr = getattr(ev, kind)
        for j, lay in enumerate(layers):
            n_perm = min(args.n_perm, 1000) if lay == layer else 0
            r["affect"] += [{**tag, "kind": kind, "layer": lay, **row}
                            for row in affect_rows(arr[:, j], labels, affect, n_perm, args.seed)]
        if len(labels) >= 3:
            r["rsa"][kind] = geo.rsa_matrix([geo.cosine_matrix(arr[:, j])
                                             for j in range(len(layers))])
        V = ev.at(layer, kind)
        S = geo.cosine_matrix(V)
        base = {**tag, "kind": kind, "layer": layer}
        r["cos"] += [{**base, "a": a, "b": b, "cosine": S[i, k]}
                     for i, a in enumerate(labels) for k, b in enumerate(labels)]
        Z, order = geo.hierarchical(V)
        r["clustered"][kind] = (labels, S, Z, order)
        frame, agree = kind_clusters(V, order, labels, affect, args, base)
        r["clusters"].append(frame)
        r["scatter"][kind] = frame
        r["agree"] += agree
        toks, ranks, R = lens_rows(load()[0], load()[1], V, labels, args.top_k)
        r["lens_tok"] += [{**base, **row} for row in toks]
        r["lens_rank"] += [{**base, **row} for row in ranks]
        r["word_test"][kind] = geo.correspondence_test(-R.T.astype(float), n_perm=args.n_perm,
                                                       seed=args.seed)
    return r


def save_libraries(out: Outputs, names: tuple[str, str], ev, ext, args, sets, n_neutral: int
                   ) -> None:
    """The projected and raw-centred vector libraries (safetensors + metadata; 11 and the CT
    scan read them), each with the mean over emotions as its baseline."""
    meta = {"model": args.model, "model_fingerprint": ext.manifest["model_fingerprint"],
            "layers": ev.layers, "language": args.language,
            "pooling": pooling_description(args.mean_from), "mean_from": args.mean_from,
            "source": "hidden_out", "counts": ev.counts,
            "default_layer": default_layer(ext.n_layers), "neutral_variance": args.variance,
            "n_neutral": n_neutral, "n_neutral_components": [int(x) for x in ev.n_components],
            "stimuli": f"sets {sets[0]} + {sets[1]} ({args.language})",
            "experiment": "09_emotion_vectors"}
    baseline = {"baseline": ev.means.mean(axis=0)}  # [L, d]: the mean over emotions
    save_vector_library(out.path(names[0]), ev.projected, ev.labels,
                        {**meta, "method": "story means, centred over emotions, neutral PCs "
                         f"({args.variance:.0%} of variance) projected out"},
                        overwrite=args.overwrite, extras=baseline)
    save_vector_library(out.path(names[1]), ev.centred, ev.labels,
                        {**meta, "method": "story means, centred over emotions (raw-centred)"},
                        overwrite=args.overwrite, extras=baseline)


def summary_table(nrow: dict, affect_df: pd.DataFrame, r: dict, layers: list[int], layer: int,
                  args) -> pd.DataFrame:
    """09's long ``summary.csv`` at the analysis layer (columns language, layer, kind, metric,
    value, p)."""
    agree, rank_df = pd.DataFrame(r["agree"]), pd.DataFrame(r["lens_rank"])
    summary = [{"kind": "neutral", "metric": "neutral PCs removed (centred PCA, "
                f"{args.variance:.0%} of variance)", "value": nrow["n_components_removed"],
                "p": np.nan},
               {"kind": "neutral", "metric": "uncentred neutral SVD: top-2 share (the trap)",
                "value": nrow["uncentred_top2_share"], "p": np.nan}]
    at = affect_df[affect_df.layer == layer]
    summary += [{"kind": x.kind, "metric": f"{x.pc} x {x.axis} (LOO pole projection) r; p: "
                 f"|r| vs {x.n_perm} shuffled pole assignments", "value": x.r_pole_projection,
                 "p": x.p_perm} for x in at.itertuples()]
    summary += [{"kind": x.kind, "metric": f"{x.pc} x {x.axis} (design rating) r",
                 "value": x.r_rating, "p": x.p_rating} for x in at.itertuples()]
    summary += [{"kind": k, "metric": "cos(valence direction, arousal direction)",
                 "value": at[at.kind == k].cos_valence_arousal_directions.iloc[0], "p": np.nan}
                for k in KINDS if len(at[at.kind == k])]
    summary += [{"kind": x.kind, "metric": f"ARI {x.clustering} vs quadrants", "value": x.ari,
                 "p": x.p} for x in agree.itertuples()]
    summary += [{"kind": k, "metric": "median vocab rank of emotion word in lens (0=top)",
                 "value": float(g["rank"].median()), "p": np.nan}
                for k, g in rank_df.groupby("kind", sort=False)]
    summary += [{"kind": k, "metric": "same word under other vectors: median rank",
                 "value": float(g["rank_under_other_vectors_median"].median()), "p": np.nan}
                for k, g in rank_df.groupby("kind", sort=False)]
    summary += [{"kind": k, "metric": "lens: each emotion word ranked highest by its own "
                 "vector (share; p: own vs other vectors' ranks, shuffled)", "value": w["top1"],
                 "p": w["p"]} for k, w in r["word_test"].items()]
    summary += [{"kind": k, "metric": f"mean cross-layer RSA with layer {layer}",
                 "value": float(np.nanmean(np.delete(M[layers.index(layer)],
                                                     layers.index(layer)))), "p": np.nan}
                for k, M in r["rsa"].items()]
    frame = pd.DataFrame(summary)
    frame.insert(0, "layer", layer)
    frame.insert(0, "language", args.language)
    return frame


def write_tables(out: Outputs, r: dict, affect_df: pd.DataFrame, layers: list[int],
                 tag: dict) -> None:
    out.csv("affect_axes_by_layer.csv", affect_df)
    out.csv("cosine_matrix.csv", pd.DataFrame(r["cos"]))
    out.csv("clusters.csv", pd.concat(r["clusters"], ignore_index=True))
    out.csv("cluster_agreement.csv", pd.DataFrame(r["agree"]))
    out.csv("logit_lens.csv", pd.DataFrame(r["lens_tok"]))
    out.csv("lens_emotion_word_rank.csv", pd.DataFrame(r["lens_rank"]))
    out.csv("cross_layer_rsa.csv", pd.DataFrame(
        [{**tag, "kind": kind, "layer_a": a, "layer_b": b, "spearman": M[i, k]}
         for kind, M in r["rsa"].items() for i, a in enumerate(layers)
         for k, b in enumerate(layers)]))


def draw(out: Outputs, r: dict, affect_df: pd.DataFrame, layers: list[int], layer: int,
         args) -> None:
    title = f"{args.model}, {args.language} stories, layer {layer}"
    out.figure(plot_clustered(r["clustered"], title), "cosine_clustered")
    out.figure(plot_scatter(r["scatter"], "kmeans", f"{title}: k-means (k={args.k}) on unit "
                            "vectors; marker = valence x arousal quadrant"), "kmeans_pca")
    out.figure(plot_scatter(r["scatter"], "quadrant", f"{title}: PC1/PC2 of the vectors, "
                            "coloured by the design's valence x arousal quadrant"), "affect_pcs")
    out.figure(plot_affect_by_layer(affect_df, layer,
                                    f"{args.model}, {args.language}: PCs vs affect"),
               "affect_by_layer")
    if r["rsa"]:
        out.figure(plot_rsa_matrices(r["rsa"], layers, f"{args.model}, {args.language}"),
                   "cross_layer_rsa")


@experiment_main
def main(argv=None) -> int:
    args = parse(argv)
    lang = args.language
    library_names = (f"emotion_vectors_{lang}.safetensors",
                     f"emotion_vectors_{lang}_centred.safetensors")
    sets = story_sets(args)
    out = Outputs(story_out_dir(EXP_DIR, args), args.overwrite)
    out.claim([*CSVS, *library_names, *(f"{f}.{e}" for f in FIGURES for e in ("png", "svg"))])
    stories, neutral = story_stimuli(
        lang, emotions=args.emotions, limit=args.limit, stories_set=sets[0], neutral_set=sets[1])
    load = lazy_model(args)
    folder = activation_dir_for(EXP_DIR, args, prompt=f"story-mean{args.mean_from}")
    ev, ext, neu = story_vectors(folder, stories, neutral, load=load, mean_from=args.mean_from,
                                 variance=args.variance, batch_size=args.batch_size,
                                 model_name=args.model, progress=args.progress)
    layers = ev.layers
    layer = args.layer if args.layer is not None else default_layer(ext.n_layers)
    if layer not in layers:
        raise LLMCTError(f"layer {layer} not extracted (layers {layers})")
    affect = affect_poles(stories, ev.labels)
    tag = {"model": args.model, "language": lang}
    neutral_rows = neutral_pc_rows(ev, neu, layers, tag)
    out.csv("neutral_pcs.csv", pd.DataFrame(neutral_rows))
    r = analyse_kinds(ev, layers, layer, affect, args, tag, load)
    affect_df = pd.DataFrame(r["affect"])
    write_tables(out, r, affect_df, layers, tag)
    save_libraries(out, library_names, ev, ext, args, sets, len(neutral))
    summary = summary_table(neutral_rows[layers.index(layer)], affect_df, r, layers, layer, args)
    out.csv("summary.csv", summary)
    draw(out, r, affect_df, layers, layer, args)
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
