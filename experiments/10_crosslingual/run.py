"""10 - Do English and Japanese emotion vectors share one geometry?

Seed 003's cross-lingual analyses with nulls. Emotion vectors are built separately from the
English and the Japanese stories (written independently, not translated; each language's own
neutral dialogues projected out). At every layer: the cosine of each emotion's English and
Japanese vector, against mismatched pairs (permutation p, top-1 matching); RSA -- Spearman
correlation of the two languages' emotion x emotion cosine upper triangles -- with a 10,000-shuffle
permutation test; orthogonal Procrustes against its fit under shuffled correspondence and by
leave-one-out identification (few vectors in many dimensions: the in-sample fit means little);
and geodesic (k-NN graph) vs Euclidean distances as the carrier of the shared structure
(jackknife over emotions for the difference).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from llmct.analysis import geometry as geo
from llmct.emotion.vectors import (
    MEAN_FROM,
    NEUTRAL_VARIANCE,
    default_layer,
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

EXP_DIR = Path(__file__).resolve().parent
KINDS = ("centred", "projected")
CSVS = ("summary.csv", "crosslingual_cosine_by_layer.csv", "per_emotion_cosine.csv",
        "rsa_by_layer.csv", "procrustes_by_layer.csv", "geodesic_by_layer.csv",
        "rsa_null_at_layer.csv")
FIGURES = ("crosslingual_cosine", "rsa_by_layer", "rsa_at_layer", "procrustes_by_layer",
           "geodesic_by_layer")


def parse(argv):
    parser = experiment_parser(__doc__.splitlines()[0], sets=("stories", "neutral_dialogues"))
    parser.add_argument("--languages", nargs=2, default=["en", "ja"], metavar=("A", "B"))
    parser.add_argument("--emotions", nargs="*", default=None, help="only these emotions")
    parser.add_argument("--layer", type=int, default=None, help="detail layer (default ~2/3)")
    parser.add_argument("--mean-from", type=int, default=MEAN_FROM)
    parser.add_argument("--variance", type=float, default=NEUTRAL_VARIANCE)
    parser.add_argument("--n-perm", type=int, default=10_000, help="RSA / matching shuffles")
    parser.add_argument("--procrustes-perm", type=int, default=1000)
    parser.add_argument("--knn", type=int, default=5, help="k of the geodesic k-NN graph")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.stimuli or args.shard:
        raise LLMCTError("this experiment uses the shipped stories; --stimuli/--shard do not apply")
    return args


def geodesic_row(Va: np.ndarray, Vb: np.ndarray, k: int, n_perm: int, seed: int) -> dict:
    """Cross-language RSA of Euclidean and of geodesic distances, with a jackknife (leave one
    emotion out, graph rebuilt) standard error of their difference."""
    def both(a, b):
        Ga, ka = geo.knn_geodesic(a, k)
        Gb, kb = geo.knn_geodesic(b, k)
        return geo.euclidean_distances(a), geo.euclidean_distances(b), Ga, Gb, max(ka, kb)

    Ea, Eb, Ga, Gb, k_used = both(Va, Vb)
    euc, geod = geo.rsa(Ea, Eb, n_perm=n_perm, seed=seed), geo.rsa(Ga, Gb, n_perm=n_perm,
                                                                    seed=seed)
    n = len(Va)
    jack = []
    for i in range(n):
        keep = np.arange(n) != i
        ea, eb, ga, gb, _ = both(Va[keep], Vb[keep])
        jack.append(spearmanr(geo.upper(ga), geo.upper(gb))[0]
                    - spearmanr(geo.upper(ea), geo.upper(eb))[0])
    jack = np.array(jack)
    se = float(np.sqrt((n - 1) / n * np.sum((jack - jack.mean()) ** 2)))
    diff = geod.r - euc.r
    return {"k_used": k_used, "rsa_euclidean": euc.r, "p_euclidean": euc.p,
            "rsa_geodesic": geod.r, "p_geodesic": geod.p, "geodesic_minus_euclidean": diff,
            "jackknife_se": se, "ci_low": diff - 1.96 * se, "ci_high": diff + 1.96 * se,
            "ci_unit": "emotions (leave-one-out jackknife)",
            "within_a_geodesic_vs_euclidean": spearmanr(geo.upper(Ga), geo.upper(Ea))[0],
            "within_b_geodesic_vs_euclidean": spearmanr(geo.upper(Gb), geo.upper(Eb))[0]}


def plot_cosine(frame: pd.DataFrame, per_emotion: pd.DataFrame, layer: int, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(KINDS), figsize=(5.6 * len(KINDS), 3.8), sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), KINDS, strict=True):
        pe = per_emotion[per_emotion.kind == kind]
        for _, g in pe.groupby("emotion", sort=False):
            ax.plot(g.layer, g.cosine, color="grey", linewidth=0.5, alpha=0.6)
        f = frame[frame.kind == kind]
        ax.plot(f.layer, f.matched, color=PALETTE[0], linewidth=2, label="same emotion (mean)")
        ax.plot(f.layer, f.mismatched, color=PALETTE[1], linewidth=2, linestyle="--",
                label="different emotions (mean)")
        ax.axvline(layer, color="grey", linewidth=0.6)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(f"{kind} vectors (grey: each emotion)", fontsize=9)
        ax.set_xlabel("layer")
        ax.legend(fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("cosine(EN vector, JA vector)")
    fig.suptitle(title, fontsize=9)
    return fig


def plot_stat_by_layer(frame: pd.DataFrame, y: str, null: str | None, ylabel: str, title: str,
                       layer: int, extra: tuple[str, str] | None = None):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for k, (kind, g) in enumerate(frame.groupby("kind", sort=False)):
        ax.plot(g.layer, g[y], color=PALETTE[k], label=f"{kind}")
        if null:
            ax.plot(g.layer, g[null], color=PALETTE[k], linestyle=":",
                    label=f"{kind}: null 95th pct" if null.endswith("q95") else f"{kind}: {null}")
        if extra:
            ax.plot(g.layer, g[extra[0]], color=PALETTE[k], linestyle="--",
                    label=f"{kind}: {extra[1]}")
    ax.axvline(layer, color="grey", linewidth=0.6)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6)
    ax.set_title(title, fontsize=9)
    return fig


def plot_rsa_detail(mats: dict, nulls: dict, results: dict, labels, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 * len(mats), figsize=(5 * 2 * len(mats), 4.2))
    for j, kind in enumerate(mats):
        Sa, Sb = mats[kind]
        ax = axes[2 * j]
        ax.scatter(geo.upper(Sa), geo.upper(Sb), s=8, color=PALETTE[j])
        ax.set_xlabel("cosine between emotions (EN)")
        ax.set_ylabel("same pair (JA)")
        ax.set_title(f"{kind}: RSA rho = {results[kind].r:.3f} "
                     f"({results[kind].n_pairs} pairs)", fontsize=9)
        ax = axes[2 * j + 1]
        ax.hist(nulls[kind], bins=60, color="grey")
        ax.axvline(results[kind].r, color=PALETTE[j], linewidth=2)
        ax.set_title(f"{kind}: null of {len(nulls[kind])} label shuffles, p = "
                     f"{results[kind].p:.1e}", fontsize=9)
        ax.set_xlabel("Spearman rho")
    fig.suptitle(title, fontsize=9)
    return fig


def compare_at_layer(Va: np.ndarray, Vb: np.ndarray, labels: list[str], args, base: dict
                     ) -> tuple[dict, list[dict], dict, dict, dict, tuple]:
    """One layer's comparison of two languages' vectors ``Va``, ``Vb`` [E, d] (rows aligned by
    emotion): same-emotion cosine vs mismatched, RSA of the cosine matrices with its shuffle
    null, Procrustes vs shuffled pairs, geodesic vs Euclidean RSA. Returns the rows (cosine,
    per-emotion, RSA, Procrustes, geodesic) and ``(Sa, Sb, rsa result)`` for the detail plot."""
    cross = geo.cosine_matrix(Va, Vb)
    test = geo.correspondence_test(cross, n_perm=args.n_perm, seed=args.seed)
    per_emotion = [{**base, "emotion": e, "cosine": cross[i, i]} for i, e in enumerate(labels)]
    Sa, Sb = geo.cosine_matrix(Va), geo.cosine_matrix(Vb)
    res = geo.rsa(Sa, Sb, n_perm=args.n_perm, seed=args.seed)
    q95, q999 = res.null_quantiles
    rsa_row = {**base, "rsa_spearman": res.r, "p": res.p, "n_pairs": res.n_pairs,
               "n_perm": args.n_perm, "null_mean": float(res.null.mean()), "null_q95": q95,
               "null_q999": q999, "null_max": float(res.null.max())}
    pr = geo.procrustes_test(Va, Vb, n_perm=args.procrustes_perm, seed=args.seed)
    proc_row = {**base, **{k: v for k, v in pr.items() if k != "null"}}
    geo_row = {**base, **geodesic_row(Va, Vb, args.knn, min(args.n_perm, 2000), args.seed)}
    return {**base, **test}, per_emotion, rsa_row, proc_row, geo_row, (Sa, Sb, res)


def summary_rows(kind: str, f: dict, layers: list[int], layer: int) -> list[dict]:
    """10's summary lines of one kind of vectors at the analysis layer (``f``: the by-layer
    tables ``cos``, ``rsa``, ``proc``, ``geo``)."""
    def at(name):
        df = f[name]
        return df[(df.kind == kind) & (df.layer == layer)].iloc[0]

    c, r, p, g = at("cos"), at("rsa"), at("proc"), at("geo")
    rsa_k = f["rsa"][f["rsa"].kind == kind]
    best = rsa_k.sort_values("rsa_spearman").iloc[-1]
    return [
        {"kind": kind, "metric": "same-emotion cosine EN-JA (mean)", "value": c.matched,
         "null": c.mismatched, "p": c.p},
        {"kind": kind, "metric": "top-1 matching EN->JA", "value": c.top1,
         "null": c.chance_top1, "p": np.nan},
        {"kind": kind, "metric": "RSA Spearman (upper triangles)", "value": r.rsa_spearman,
         "null": r.null_q95, "p": r.p},
        {"kind": kind, "metric": f"RSA max over layers (layer {int(best.layer)})",
         "value": best.rsa_spearman, "null": best.null_q95, "p": best.p},
        {"kind": kind, "metric": "RSA layer 0 (lexical/positional baseline)",
         "value": rsa_k[rsa_k.layer == layers[0]].rsa_spearman.iloc[0], "null": np.nan,
         "p": np.nan},
        {"kind": kind, "metric": "Procrustes fit (mean cosine, in-sample)", "value": p.fit,
         "null": p.null_q95, "p": p.p},
        {"kind": kind, "metric": "Procrustes leave-one-out top-1", "value": p.loo_top1,
         "null": p.chance_top1, "p": np.nan},
        {"kind": kind, "metric": "RSA Euclidean distances", "value": g.rsa_euclidean,
         "null": np.nan, "p": g.p_euclidean},
        {"kind": kind, "metric": f"RSA geodesic distances (k={int(g.k_used)})",
         "value": g.rsa_geodesic, "null": np.nan, "p": g.p_geodesic},
        {"kind": kind, "metric": "geodesic - Euclidean RSA (jackknife 95% CI)",
         "value": g.geodesic_minus_euclidean, "null": np.nan, "p": np.nan,
         "ci_low": g.ci_low, "ci_high": g.ci_high, "ci_unit": g.ci_unit}]


def load_vectors(args, folder: Path, load) -> tuple[dict, int]:
    """Both languages' emotion vectors (09's method; activations read from or added to the
    shared story store) and the model's number of layers."""
    sets, vecs, n_layers = story_sets(args), {}, 0
    for lang in args.languages:
        stories, neutral = story_stimuli(lang, emotions=args.emotions, limit=args.limit,
                                         stories_set=sets[0], neutral_set=sets[1])
        vecs[lang], ext, _ = story_vectors(folder, stories, neutral, load=load,
                                           mean_from=args.mean_from, variance=args.variance,
                                           batch_size=args.batch_size, model_name=args.model,
                                           progress=args.progress)
        n_layers = ext.n_layers
    return vecs, n_layers


def draw(out: Outputs, f: dict, detail: dict, labels: list[str], layer: int, args) -> None:
    la, lb = args.languages
    title = f"{args.model}: {la} vs {lb} emotion vectors ({len(labels)} emotions)"
    out.figure(plot_cosine(f["cos"], f["per_emotion"], layer, title), "crosslingual_cosine")
    out.figure(plot_stat_by_layer(f["rsa"], "rsa_spearman", "null_q95", "Spearman rho",
                                  f"{title}\nRSA of cosine matrices", layer), "rsa_by_layer")
    mats = {k: (Sa, Sb) for k, (Sa, Sb, _) in detail.items()}
    out.figure(plot_rsa_detail(mats, {k: d[2].null for k, d in detail.items()},
                               {k: d[2] for k, d in detail.items()}, labels,
                               f"{title}, layer {layer}"), "rsa_at_layer")
    out.figure(plot_stat_by_layer(f["proc"], "fit", "null_q95", "mean cosine after alignment",
                                  f"{title}\nProcrustes: in-sample fit vs shuffled pairs; "
                                  "dashed: leave-one-out top-1 (chance 1/n)", layer,
                                  extra=("loo_top1", "LOO top-1")), "procrustes_by_layer")
    out.figure(plot_stat_by_layer(f["geo"], "rsa_geodesic", None, "Spearman rho (EN vs JA)",
                                  f"{title}\ngeodesic (solid) vs Euclidean (dashed) distances",
                                  layer, extra=("rsa_euclidean", "Euclidean")),
               "geodesic_by_layer")


@experiment_main
def main(argv=None) -> int:
    args = parse(argv)
    out = Outputs(story_out_dir(EXP_DIR, args), args.overwrite)
    out.claim([*CSVS, *(f"{f}.{e}" for f in FIGURES for e in ("png", "svg"))])
    load = lazy_model(args)
    folder = activation_dir_for(EXP_DIR, args, prompt=f"story-mean{args.mean_from}")
    la, lb = args.languages
    vecs, n_layers = load_vectors(args, folder, load)
    labels = [e for e in vecs[la].labels if e in vecs[lb].labels]
    if len(labels) < 3:
        raise LLMCTError(f"need >= 3 emotions present in both languages, got {labels}")
    ia = [vecs[la].labels.index(e) for e in labels]
    ib = [vecs[lb].labels.index(e) for e in labels]
    layers = vecs[la].layers
    layer = args.layer if args.layer is not None else default_layer(n_layers)
    if layer not in layers:
        raise LLMCTError(f"layer {layer} not extracted (layers {layers})")
    tag = {"model": args.model, "languages": f"{la}-{lb}", "n_emotions": len(labels)}
    rows: dict = {k: [] for k in ("cos", "per_emotion", "rsa", "proc", "geo")}
    detail: dict = {}
    for kind in KINDS:
        A, B = getattr(vecs[la], kind)[ia], getattr(vecs[lb], kind)[ib]
        for j, lay in enumerate(layers):
            c, pe, r, p, g, d = compare_at_layer(A[:, j], B[:, j], labels, args,
                                                 {**tag, "kind": kind, "layer": lay})
            rows["cos"].append(c)
            rows["per_emotion"] += pe
            rows["rsa"].append(r)
            rows["proc"].append(p)
            rows["geo"].append(g)
            if lay == layer:
                detail[kind] = d
    f = {k: pd.DataFrame(v) for k, v in rows.items()}
    for name, key in (("crosslingual_cosine_by_layer", "cos"), ("per_emotion_cosine",
                      "per_emotion"), ("rsa_by_layer", "rsa"), ("procrustes_by_layer", "proc"),
                      ("geodesic_by_layer", "geo")):
        out.csv(f"{name}.csv", f[key])
    out.csv("rsa_null_at_layer.csv", pd.DataFrame(
        [{"kind": k, "layer": layer, "shuffle": i, "null_spearman": v}
         for k, d in detail.items() for i, v in enumerate(d[2].null)]))
    summary = pd.DataFrame([s for kind in KINDS for s in summary_rows(kind, f, layers, layer)])
    summary.insert(0, "layer", layer)
    summary.insert(0, "languages", f"{la}-{lb}")
    out.csv("summary.csv", summary)
    draw(out, f, detail, labels, layer, args)
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
