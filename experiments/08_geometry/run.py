"""08 - Representational geometry of Set A and Set B: are activations organised by emotion or by set?

Seed 002's geometry with its traps removed. At every layer (and in detail at the probe layer,
default ~2/3 depth) the read-out activations of the emotional Set A and Set B items are scored by
silhouette -- by emotion, by set, by emotion within each set, by clinical domain within Set B --
each against 1,000 label permutations; PCA runs on centred data; and the cosine of emotion
centroids is computed uncentred (the seed's all-~0.95 trap), centred on the grand mean, and
centred per set, with a permutation test of same-emotion-across-sets vs different-emotion and,
at the probe layer, an interval of that difference over items (leave-one-item-out jackknife).
Reads 01's activations (extracting whatever is missing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.analysis import geometry as geo
from llmct.core.models import model_slug
from llmct.emotion.vectors import default_layer
from llmct.errors import LLMCTError
from llmct.runs import (
    PALETTE,
    experiment_main,
    experiment_parser,
    get_activations,
    pyplot,
    run_main,
    start_run,
)
from llmct.style import diverging_cmap

EXP_DIR = Path(__file__).resolve().parent
TREATMENTS = ("uncentred", "centred", "centred_per_set")
RESULTS = ("silhouette_by_layer.csv", "centroid_cosine_by_layer.csv", "pca_probe_layer.csv",
           "centroid_cosine_probe_layer.csv", "summary.csv",
           *(f"{stem}.{ext}" for stem in ("silhouette_by_layer", "centroid_cosine_by_layer",
                                          "pca_probe_layer", "centroid_cosine_probe_layer")
             for ext in ("png", "svg")))


def probe_layer(args, ext) -> tuple[int, str]:
    """``--layer``; else where 02's within-Set-A probe first reaches its plateau (read from
    02's probe_summary.csv for this model and source); else ~2/3 depth."""
    if args.layer is not None:
        return args.layer, "--layer"
    summary = EXP_DIR.parent / "02_probes" / "outputs" / model_slug(args.model) / \
        "probe_summary.csv"
    if summary.exists():
        df = pd.read_csv(summary)
        rows = df[(df.train_set == df.test_set) & (df.source == args.source)]
        if len(rows):
            row = rows.iloc[0]
            return int(row.first_within_layer), (
                f"02 probe plateau ({row.train_set}, {args.source}, first layer within "
                f"{row.tol} of max AUROC {row.max_auroc:.3f})")
    return default_layer(ext.n_layers), "default ~2/3 depth (no 02 probe summary)"


def groupings(sets: np.ndarray, labels: np.ndarray, domains: np.ndarray) -> list[tuple]:
    """(grouping name, row mask, labels) of every silhouette to score."""
    every = np.ones(len(sets), bool)
    out = [("emotion (all sets)", every, labels)]
    if len(set(sets)) > 1:
        out.append(("set", every, sets))
        out += [(f"emotion within {s}", sets == s, labels) for s in dict.fromkeys(sets)]
    for s in dict.fromkeys(sets):
        m = sets == s
        doms = domains[m]
        if 1 < len(set(doms)) <= 8 and all(d for d in doms):
            out.append((f"domain within {s}", m, domains))
    return out


def silhouettes(X: np.ndarray, groups: list[tuple], n_perm: int, seed: int) -> list[dict]:
    """Euclidean silhouettes (invariant to centring) and cosine silhouettes of centred rows."""
    rows = []
    for name, mask, labels in groups:
        sub = X[mask]
        for metric, data in (("euclidean", sub), ("cosine", sub - sub.mean(0))):
            obs, p, null = geo.silhouette_test(data, labels[mask], metric=metric, n_perm=n_perm,
                                               seed=seed)
            rows.append({"grouping": name, "metric": metric, "n_items": int(mask.sum()),
                         "n_groups": len(set(labels[mask])), "silhouette": obs,
                         "null_mean": float(null.mean()),
                         "null_q95": float(np.quantile(null, 0.95)), "p": p})
    return rows


def treated(X: np.ndarray, sets: np.ndarray, treatment: str) -> np.ndarray:
    if treatment == "uncentred":
        return X
    if treatment == "centred":
        return X - X.mean(0)
    out = X.copy()
    for s in set(sets):
        out[sets == s] -= X[sets == s].mean(0)
    return out


def centroid_rows(X, sets, labels, emotions, n_perm, seed) -> tuple[list[dict], dict]:
    """Centroid cosines per treatment: mean over all centroid pairs, and for two sets the
    cross-set matched (same emotion) vs mismatched test."""
    rows, mats = [], {}
    set_names = list(dict.fromkeys(sets))
    keys = [(s, e) for s in set_names for e in emotions if np.any((sets == s) & (labels == e))]
    for t in TREATMENTS:
        Xt = treated(X, sets, t)
        C = np.stack([Xt[(sets == s) & (labels == e)].mean(0) for s, e in keys])
        S = geo.cosine_matrix(C)
        mats[t] = (keys, S)
        row = {"treatment": t, "mean_cosine_all_pairs": float(geo.upper(S).mean())}
        if len(set_names) == 2:
            a, b = set_names
            shared = [e for e in emotions if (a, e) in keys and (b, e) in keys]
            cross = S[np.ix_([keys.index((a, e)) for e in shared],
                             [keys.index((b, e)) for e in shared])]
            test = geo.correspondence_test(cross, n_perm=n_perm, seed=seed)
            row.update({"cross_set_matched": test["matched"],
                        "cross_set_mismatched": test["mismatched"],
                        "difference": test["difference"], "p": test["p"], "top1": test["top1"],
                        "chance_top1": test["chance_top1"]})
        rows.append(row)
    return rows, mats


def _cross_set_difference(X, sets, labels, shared, pair, treatment: str) -> float:
    """Same-emotion minus different-emotion cosine between the two sets' centroids (treated)."""
    Xt = treated(X, sets, treatment)
    a, b = pair
    Ca = np.stack([Xt[(sets == a) & (labels == e)].mean(0) for e in shared])
    Cb = np.stack([Xt[(sets == b) & (labels == e)].mean(0) for e in shared])
    test = geo.correspondence_test(geo.cosine_matrix(Ca, Cb), n_perm=1)
    return float(test["difference"])


def centroid_difference_ci(X, sets, labels, emotions, treatment: str) -> tuple[float, float]:
    """95% interval of the cross-set same - different emotion centroid cosine over **items**: the
    leave-one-item-out jackknife (every item dropped once, centring recomputed), normal interval
    estimate +- 1.96 SE (Efron & Tibshirani 1993, ch. 11). A bootstrap that duplicates items makes
    centroids noisier and pulls cosines towards 0, so its percentile interval sits below the
    estimate; the jackknife does not duplicate. ``X [n, d]``; two sets. Returns ``(low, high)``."""
    pair = tuple(list(dict.fromkeys(sets))[:2])
    shared = [e for e in emotions if all(np.sum((sets == s) & (labels == e)) >= 2 for s in pair)]
    keep = np.isin(sets, pair) & np.isin(labels, shared)
    X, sets, labels = X[keep], sets[keep], labels[keep]
    estimate = _cross_set_difference(X, sets, labels, shared, pair, treatment)
    n = len(X)
    drops = ~np.eye(n, dtype=bool)  # row i: every item but i
    jack = np.array([_cross_set_difference(X[m], sets[m], labels[m], shared, pair, treatment)
                     for m in drops])
    se = float(np.sqrt((n - 1) / n * np.sum((jack - jack.mean()) ** 2)))
    return estimate - 1.96 * se, estimate + 1.96 * se


def plot_silhouettes(frame: pd.DataFrame, probe_layer: int, title: str):
    plt = pyplot()
    metrics = list(dict.fromkeys(frame.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), sharey=True,
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = frame[frame.metric == metric]
        for k, (name, grp) in enumerate(sub.groupby("grouping", sort=False)):
            c = PALETTE[k % len(PALETTE)]
            ax.plot(grp.layer, grp.silhouette, color=c, label=name)
            ax.plot(grp.layer, grp.null_q95, color=c, linestyle=":", linewidth=0.8)
        ax.axvline(probe_layer, color="grey", linewidth=0.6)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(f"{metric} silhouette (dotted: 95th pct of label-permutation null)",
                     fontsize=8)
        ax.set_xlabel("layer")
    axes[0][0].set_ylabel("mean silhouette")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_centroid_curves(frame: pd.DataFrame, probe_layer: int, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (t, grp) in enumerate(frame.groupby("treatment", sort=False)):
        c = PALETTE[k]
        axes[0].plot(grp.layer, grp.mean_cosine_all_pairs, color=c, label=t)
        if "cross_set_matched" in grp:
            axes[1].plot(grp.layer, grp.cross_set_matched, color=c, label=f"{t}: same emotion")
            axes[1].plot(grp.layer, grp.cross_set_mismatched, color=c, linestyle="--",
                         label=f"{t}: different emotion")
    axes[0].set_title("mean cosine over all centroid pairs", fontsize=9)
    axes[1].set_title("cross-set centroid cosine", fontsize=9)
    for ax in axes:
        ax.axvline(probe_layer, color="grey", linewidth=0.6)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("layer")
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_pca(frame: pd.DataFrame, ratios: dict, title: str):
    plt = pyplot()
    markers = ["o", "^", "s", "D"]
    emotions = list(dict.fromkeys(frame.label))
    set_names = list(dict.fromkeys(frame.set))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [("joint", "label", "centred jointly: colour = emotion"),
              ("joint", "set", "centred jointly: colour = set"),
              ("per_set", "label", "centred per set: colour = emotion")]
    for ax, (view, colour_by, name) in zip(axes, panels, strict=True):
        sub = frame[frame.view == view]
        groups = emotions if colour_by == "label" else set_names
        for k, g in enumerate(groups):
            labelled = False
            for j, s in enumerate(set_names):
                m = (sub[colour_by] == g) & (sub.set == s)
                if not m.any():
                    continue
                ax.scatter(sub.pc1[m], sub.pc2[m], s=18, color=PALETTE[k % len(PALETTE)],
                           marker=markers[j % 4], alpha=0.8, label=None if labelled else g)
                labelled = True
        r = ratios[view]
        ax.set_xlabel(f"PC1 ({r[0]:.1%})")
        ax.set_ylabel(f"PC2 ({r[1]:.1%})")
        ax.set_title(name + "; marker = set", fontsize=8)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_centroid_heatmaps(mats: dict, title: str):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    for ax, t in zip(axes, ("uncentred", "centred_per_set"), strict=True):
        keys, S = mats[t]
        im = ax.imshow(S, cmap=diverging_cmap(), vmin=-1, vmax=1)
        names = [f"{e} ({s})" for s, e in keys]
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_title(f"{t}: mean off-diagonal {geo.upper(S).mean():.3f}", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="cosine")
    fig.suptitle(title, fontsize=9)
    return fig


def parse(argv):
    parser = experiment_parser(__doc__.splitlines()[0], sets=("set_a", "set_b"))
    parser.add_argument("--layer", type=int, default=None,
                        help="probe layer for the PCA/heatmaps (default: 02's Set A probe "
                        "plateau layer if 02 has run, else ~2/3 depth)")
    parser.add_argument("--source", default="hidden_out", help="activation source to analyse")
    parser.add_argument("--n-perm", type=int, default=1000, help="label permutations per test")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def pca_views(X: np.ndarray, items, sets: np.ndarray, labels: np.ndarray
              ) -> tuple[pd.DataFrame, dict]:
    """PC1/PC2 of the probe-layer activations ``X`` [n, d], joint and centred per set."""
    views, ratios = [], {}
    for view, data in (("joint", X), ("per_set", treated(X, sets, "centred_per_set"))):
        res = geo.pca(data, 2)
        ratios[view] = res.explained_ratio
        views.append(pd.DataFrame({"view": view, "id": [s.id for s in items], "set": sets,
                                   "label": labels, "pc1": res.scores[:, 0],
                                   "pc2": res.scores[:, 1],
                                   "pc1_ratio": res.explained_ratio[0],
                                   "pc2_ratio": res.explained_ratio[1]}))
    return pd.concat(views, ignore_index=True), ratios


def summary_table(sil: pd.DataFrame, cen: pd.DataFrame, X: np.ndarray, sets, labels, emotions,
                  probe: int, rule: str) -> pd.DataFrame:
    """08's long ``summary.csv`` at the probe layer: silhouettes with their permutation nulls,
    centroid cosines per treatment, and (two sets) the jackknife interval over items of each
    cross-set difference."""
    at = (sil.layer == probe) & (sil.metric == "euclidean")
    summary = [{"metric": f"silhouette euclidean: {r.grouping}", "layer": probe,
                "value": r.silhouette, "null_q95": r.null_q95, "p": r.p}
               for r in sil[at].itertuples()]
    summary += [{"metric": f"centroid cosine {r.treatment}: {k}", "layer": probe,
                 "value": getattr(r, k), "null_q95": np.nan,
                 "p": r.p if k == "difference" else np.nan}
                for r in cen[cen.layer == probe].itertuples()
                for k in ("mean_cosine_all_pairs", "cross_set_matched", "cross_set_mismatched",
                          "difference", "top1") if hasattr(r, k)]
    frame = pd.DataFrame(summary)
    frame["ci_low"], frame["ci_high"], frame["ci_unit"] = np.nan, np.nan, ""
    if len(set(sets)) == 2:
        for t in TREATMENTS:
            lo, hi = centroid_difference_ci(X, sets, labels, emotions, t)
            at_row = frame.metric == f"centroid cosine {t}: difference"
            frame.loc[at_row, ["ci_low", "ci_high", "ci_unit"]] = [
                lo, hi, "items (leave-one-out jackknife, normal interval)"]
    frame["layer_rule"] = rule
    return frame


@experiment_main
def main(argv=None) -> int:
    args = parse(argv)
    stimuli, out = start_run(EXP_DIR, args, RESULTS)
    ext = get_activations(EXP_DIR, args, stimuli)
    if ext is None:
        return 0
    if args.source not in ext.acts:
        raise LLMCTError(f"source {args.source!r} not extracted; have {sorted(ext.acts)}")
    keep = np.array([s.label != "neutral" for s in stimuli])
    items = [s for s, k in zip(stimuli, keep, strict=True) if k]
    sets = np.array([s.set for s in items])
    labels = np.array([s.label for s in items])
    emotions = list(dict.fromkeys(labels))
    acts = ext.acts[args.source][keep].astype(np.float64)
    probe, rule = probe_layer(args, ext)
    print(f"probe layer {probe}: {rule}")
    if probe not in ext.layers:
        raise LLMCTError(f"layer {probe} was not extracted (layers {ext.layers})")
    groups = groupings(sets, labels, np.array([s.domain or "" for s in items]))
    tag = {"model": args.model, "prompt": ext.manifest["prompt"], "source": args.source}
    sil, cen = [], []
    for j, layer in enumerate(ext.layers):
        sil += [{**tag, "layer": layer, **r} for r in silhouettes(acts[:, j], groups, args.n_perm,
                                                                   args.seed)]
        rows, mats = centroid_rows(acts[:, j], sets, labels, emotions, 10_000, args.seed)
        cen += [{**tag, "layer": layer, **r} for r in rows]
        if layer == probe:
            probe_mats = mats
    sil, cen = pd.DataFrame(sil), pd.DataFrame(cen)
    out.csv("silhouette_by_layer.csv", sil)
    out.csv("centroid_cosine_by_layer.csv", cen)
    X = acts[:, ext.layers.index(probe)]
    pcs, ratios = pca_views(X, items, sets, labels)
    out.csv("pca_probe_layer.csv", pcs)
    out.csv("centroid_cosine_probe_layer.csv", pd.DataFrame(
        [{"treatment": t, "a": f"{ka[1]} ({ka[0]})", "b": f"{kb[1]} ({kb[0]})",
          "cosine": float(S[i, k])} for t, (keys, S) in probe_mats.items()
         for i, ka in enumerate(keys) for k, kb in enumerate(keys)]))
    summary = summary_table(sil, cen, X, sets, labels, emotions, probe, rule)
    out.csv("summary.csv", summary)
    title = f"{args.model} {args.source}, {ext.manifest['prompt']} prompt"
    out.figure(plot_silhouettes(sil, probe, title), "silhouette_by_layer")
    out.figure(plot_centroid_curves(cen, probe, title), "centroid_cosine_by_layer")
    out.figure(plot_pca(pcs, ratios, f"{title}, layer {probe}"), "pca_probe_layer")
    out.figure(plot_centroid_heatmaps(probe_mats, f"{title}, layer {probe}"),
               "centroid_cosine_probe_layer")
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
