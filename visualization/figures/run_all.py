"""Regenerate every publication figure (PNG + SVG) from the experiments' CSVs alone.

No model and no activations are needed: each figure reads ``experiments/NN_name/outputs/<slug>/``
and is written to ``visualization/figures/output/<slug>/figNN_name.{png,svg}`` in the one house
style (``style_config.py``). A figure whose CSV is missing is skipped with a printed note. With
two or more models, ``cross_model.py``'s figures (one panel per model, same axes) go to
``output/cross_model/``.

    uv run --no-sync python visualization/figures/run_all.py [--models SLUG ...] [--only 02 05]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from visualization.figures import style_config as st  # noqa: E402

EXPERIMENTS = ROOT / "experiments"
OUTPUT = Path(__file__).resolve().parent / "output"
SOURCES = ("hidden_out", "attn_out", "mlp_out")


class Skip(Exception):
    """The figure's input is not there (printed as a note, not an error)."""


def read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.exists():
        raise Skip(f"no {path.relative_to(folder.parents[2]) if len(folder.parents) > 2 else path}")
    return pd.read_csv(path)


def newest(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise Skip(f"no {pattern} under {folder}")
    return found[-1]


def panel_name(train: str, test: str) -> str:
    return f"{train} (5-fold CV)" if train == test else f"{train} -> {test}"


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _heatmap(ax, grid, rows, cols, *, cmap, vmin, vmax, fmt="{:.2f}", label=None):
    im = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v) and grid.shape[1] <= 12 and grid.size <= 200:
            red, green, blue, _ = im.cmap(im.norm(v))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=6,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], fontsize=7)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=7)
    ax.grid(False)
    if label:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    return im


# -- one function per figure: (experiment folder for this model, model slug) -> figure -----------

def fig00_ct_scan(folder: Path, slug: str):
    """Spread over references per conversation snapshot and layer; user vs assistant cosines."""
    spread_csv = (sorted(folder.glob("message_end*/spread.csv")) or [newest(folder, "*/spread.csv")])
    spread = pd.read_csv(sorted(spread_csv, key=lambda p: p.stat().st_mtime)[-1])
    src = "hidden_in" if "hidden_in" in set(spread.source) else spread.source.iloc[0]
    fig, axes = st.panels(3, width=4.4, height=3.6)
    for ax, col, name in ((axes[0], "spread", "raw cosine"),
                          (axes[1], "spread_centered", "centred cosine")):
        grid = spread[spread.source == src].pivot_table(index="snapshot", columns="layer",
                                                        values=col)
        im = ax.imshow(grid.to_numpy(), cmap=st.sequential_cmap(), aspect="auto",
                       vmin=0, vmax=float(np.nanmax(grid.to_numpy())))
        ax.set_xlabel("layer")
        ax.set_ylabel("snapshot (message)")
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index], fontsize=6)
        ax.set_title(f"spread over references, {name} ({src})")
        ax.grid(False)
        fig.colorbar(im, ax=ax, shrink=0.8, label="max - min")
    ax = axes[2]
    per = spread.groupby(["snapshot", "role", "source"], sort=False).mean_cosine.mean().reset_index()
    for source, grp in per.groupby("source", sort=False):
        ax.plot(grp.snapshot, grp.mean_cosine, color=st.source_colour(source), linewidth=1,
                label=source)
        for role, marker, face in (("user", "o", None), ("assistant", "s", "white")):
            g = grp[grp.role == role]
            ax.scatter(g.snapshot, g.mean_cosine, marker=marker, s=18,
                       edgecolors=st.source_colour(source),
                       facecolors=face or st.source_colour(source))
    ax.scatter([], [], marker="o", color="grey", label="user turn")
    ax.scatter([], [], marker="s", facecolors="white", edgecolors="grey", label="assistant turn")
    ax.set_xlabel("snapshot (message)")
    ax.set_ylabel("mean cosine to references (mean over layers)")
    ax.set_title("user vs assistant turns")
    ax.legend(fontsize=6)
    fig.suptitle(f"{slug}: CT scan of the rollercoaster conversation")
    return fig


def fig02_probes(folder: Path, slug: str):
    """Per-layer 8-class AUROC per source with shuffled-label and text-only controls."""
    res = read(folder, "probe_results.csv")
    pairs = list(dict.fromkeys(zip(res.train_set, res.test_set, strict=True)))
    fig, axes = st.panels(len(pairs), width=3.6, height=3.2, sharey=True)
    for ax, (train, test) in zip(axes, pairs, strict=True):
        sub = res[(res.train_set == train) & (res.test_set == test)]
        for source in SOURCES:
            g = sub[(sub.source == source) & (sub.control == "none")].sort_values("layer")
            if len(g):
                ax.plot(g.layer, g.auroc, color=st.source_colour(source), label=source)
                ax.fill_between(g.layer, g.auroc - g.auroc_std, g.auroc + g.auroc_std,
                                color=st.source_colour(source), alpha=0.12, linewidth=0)
        shuf = sub[(sub.source == "hidden_out") & (sub.control == "shuffled")].sort_values("layer")
        if len(shuf):
            ax.plot(shuf.layer, shuf.auroc, color=st.CONTROL_COLOUR,
                    linestyle=st.CONTROL_DASHES["shuffled"], label="shuffled labels (h)")
        for r in sub[sub.control == "text_tfidf"].itertuples():
            ax.axhline(r.auroc, color=st.CONTROL_COLOUR, linestyle=st.CONTROL_DASHES["text_tfidf"],
                       label="text-only TF-IDF")
        ax.axhline(0.5, color="black", linewidth=0.5)
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("layer")
        ax.set_title(panel_name(train, test))
    axes[0].set_ylabel("macro AUROC (mean ± sd over folds)")
    axes[-1].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{slug}: emotion probes per layer")
    return fig


def fig03_binary(folder: Path, slug: str):
    """Emotional vs neutral AUROC per layer (saturation) and P(emotional) of other sets."""
    res = read(folder, "binary_results.csv")
    summary = folder / "binary_summary.csv"
    sat = pd.read_csv(summary) if summary.exists() else None
    scored = folder / "scored_sets.csv"
    scored = pd.read_csv(scored) if scored.exists() else pd.DataFrame()
    fig, axes = st.panels(2 if len(scored) else 1, width=4.6, height=3.4)
    ax = axes[0]
    for source in SOURCES:
        for control, dash in (("none", "-"), ("length_matched", "--")):
            g = res[(res.source == source) & (res.control == control)].sort_values("layer")
            if len(g):
                ax.plot(g.layer, g.auroc, color=st.source_colour(source), linestyle=dash,
                        linewidth=1.5 if control == "none" else 0.9,
                        label=source if control == "none" else f"{source} (length-matched)")
        if sat is not None:
            row = sat[(sat.source == source) & (sat.control == "none")]
            if len(row):
                layer = int(row.first_within_layer.iloc[0])
                y = res[(res.source == source) & (res.control == "none") & (res.layer == layer)]
                ax.plot([layer], y.auroc.iloc[:1], marker="o", color=st.source_colour(source))
    for r in res[res.layer < 0].itertuples():
        ax.axhline(r.auroc, color=st.CONTROL_COLOUR,
                   linestyle=st.CONTROL_DASHES.get(r.control, "--"), label=r.control)
    ax.axhline(0.5, color="black", linewidth=0.5)
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("layer")
    ax.set_ylabel("AUROC (grouped 5-fold CV)")
    ax.set_title(f"{res.train_set.iloc[0]} (dot = saturation)")
    ax.legend(fontsize=6, loc="lower right")
    if len(scored):
        ax = axes[1]
        sub = scored[scored.source == "hidden_out"]
        for k, (name, g) in enumerate(sub.groupby("scored", sort=False)):
            c = st.series_style(k + 3)["color"]
            ax.plot(g.layer, g.mean_p_emotional, color=c, label=name)
            ax.fill_between(g.layer, g.ci_lo, g.ci_hi, color=c, alpha=0.15, linewidth=0)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("layer")
        ax.set_ylabel("mean P(emotional), 95% CI (h)")
        ax.set_title("other sets under the binary probe")
        ax.legend(fontsize=6)
    fig.suptitle(f"{slug}: emotional vs neutral")
    return fig


def fig04_zeroshot(folder: Path, slug: str):
    """Few-shot (solid) vs zero-shot (dashed) probe curves, per train/test pair."""
    wide = read(folder, "zeroshot_vs_fewshot.csv")
    cols = [c for c in wide.columns if c.startswith("auroc_")]
    if len(cols) < 2:
        raise Skip("zeroshot_vs_fewshot.csv has fewer than two auroc_<prompt> columns")
    wide = wide[wide.control == "none"]
    pairs = list(dict.fromkeys(zip(wide.train_set, wide.test_set, strict=True)))
    fig, axes = st.panels(len(pairs), width=3.6, height=3.2, sharey=True)
    for ax, (train, test) in zip(axes, pairs, strict=True):
        sub = wide[(wide.train_set == train) & (wide.test_set == test)]
        for source in SOURCES:
            g = sub[sub.source == source].sort_values("layer")
            for col, dash in zip(sorted(cols, key=lambda c: c != "auroc_fewshot"), ("-", "--"),
                                 strict=False):
                if len(g):
                    ax.plot(g.layer, g[col], color=st.source_colour(source), linestyle=dash,
                            label=f"{source}, {col.removeprefix('auroc_')}")
        ax.axhline(0.5, color="black", linewidth=0.5)
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("layer")
        ax.set_title(panel_name(train, test))
    axes[0].set_ylabel("macro AUROC")
    axes[-1].legend(fontsize=5, loc="lower right")
    fig.suptitle(f"{slug}: few-shot (solid) vs zero-shot (dashed) prompt")
    return fig


def fig05_patching(folder: Path, slug: str):
    """Patch success and its paired difference from each control (unpatched target, mean
    activation, random vector of the same norm) per source x layer; boxed: CI excludes 0."""
    vs = read(folder, "patching_vs_controls.csv")
    pairings = list(dict.fromkeys(vs.pairing))
    controls = [c for c in ("unpatched", "mean", "random") if c in set(vs.control)]
    ncols = 1 + len(controls)
    fig, axes = st.panels(ncols * len(pairings), width=3.2, height=2.2, ncols=ncols)
    for i, pairing in enumerate(pairings):
        sub = vs[vs.pairing == pairing]
        layers = sorted(sub.layer.unique())
        sources = [s for s in SOURCES if s in set(sub.source)]
        rows = [st.SOURCE_SHORT.get(s, s) for s in sources]

        def grid(frame, col, sources=sources, layers=layers):
            table = frame.pivot_table(index="source", columns="layer", values=col, aggfunc="max")
            return table.reindex(index=sources, columns=layers).to_numpy(float)

        ax = axes[ncols * i]
        _heatmap(ax, grid(sub, "success_patch"), rows, layers, cmap=st.sequential_cmap(),
                 vmin=0.0, vmax=1.0, label="success")
        ax.set_title(f"{pairing}: patch", fontsize=8)
        ax.set_xlabel("layer patched")
        for j, control in enumerate(controls, start=1):
            part = sub[sub.control == control].assign(
                beats=lambda d: d.verdict.astype(str).str.startswith("beats").astype(float))
            ax = axes[ncols * i + j]
            _heatmap(ax, grid(part, "success_diff"), rows, layers, cmap=st.diverging_cmap(),
                     vmin=-1.0, vmax=1.0, label="difference")
            for (r, c), v in np.ndenumerate(grid(part, "beats")):
                if v == 1:
                    ax.add_patch(_plt().Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                                  edgecolor="black", linewidth=1.2))
            ax.set_title(f"{pairing}: patch - {control}", fontsize=8)
            ax.set_xlabel("layer patched")
    fig.suptitle(f"{slug}: activation patching (boxed: paired 95% CI of the difference > 0)")
    return fig


def fig06_knockout(folder: Path, slug: str):
    """Answer accuracy, probe accuracy and changed-top-token rate after read-out knockouts."""
    summary = read(folder, "knockout_summary.csv")
    summary = summary[summary.positions == "readout"]
    sets = list(dict.fromkeys(summary.set))
    metrics = [("accuracy", "accuracy_clean", "answer accuracy vs labels"),
               ("probe_accuracy", "probe_accuracy_clean", "probe accuracy vs labels"),
               ("changed_rate", None, "changed top token")]
    dashes = {"zero": "-", "mean": "--", "noise": ":"}
    fig, axes = st.panels(len(sets) * 3, width=3.6, height=2.8, ncols=3, sharey=True)
    for r, name in enumerate(sets):
        sub = summary[summary.set == name]
        for c, (y, clean, title) in enumerate(metrics):
            ax = axes[3 * r + c]
            for (source, mode), g in sub.groupby(["source", "mode"], sort=False):
                g = g.sort_values("layer")
                ax.plot(g.layer, g[y], color=st.source_colour(source),
                        linestyle=dashes.get(mode, "-."), linewidth=1.1, label=f"{source} {mode}")
            if clean and sub[clean].notna().any():
                ax.axhline(sub[clean].iloc[0], color=st.CONTROL_COLOUR, label="no knockout")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{name}: {title}", fontsize=8)
            ax.set_xlabel("layer ablated (read-out token)")
    axes[0].set_ylabel("fraction of items")
    axes[2].legend(fontsize=5.5, ncol=2)
    fig.suptitle(f"{slug}: knockout of attention / MLP output at one layer")
    return fig


def fig07_attention(folder: Path, slug: str):
    """Attention from the read-out token by token type and layer; Set B minus its controls."""
    by_head = read(folder, "attention_by_head.csv")
    types = list(dict.fromkeys(by_head.type))
    per = by_head.groupby(["set", "type", "layer"]).mass.mean()
    sets = list(dict.fromkeys(by_head.set))
    tests_path = folder / "attention_tests.csv"
    n = 1 + (len(sets) > 1) + tests_path.exists()
    fig, axes = st.panels(n, width=5.0, height=3.2)
    first = per[sets[0]].unstack("layer").reindex(types)
    _heatmap(axes[0], first.to_numpy(float), types, list(first.columns),
             cmap=st.sequential_cmap(), vmin=0.0, vmax=float(np.nanmax(first.to_numpy())),
             label="mass (mean over heads, items)")
    axes[0].set_title(f"{sets[0]}: attention mass by token type")
    k = 1
    if len(sets) > 1:
        diff = (per[sets[0]] - per[sets[1]]).unstack("layer").reindex(types).to_numpy(float)
        lim = float(np.nanmax(np.abs(diff))) or 1.0
        _heatmap(axes[1], diff, types, list(first.columns), cmap=st.diverging_cmap(),
                 vmin=-lim, vmax=lim, label="difference")
        axes[1].set_title(f"{sets[0]} - {sets[1]}")
        k = 2
    for ax in axes[:k]:
        ax.set_xlabel("layer")
        ax.tick_params(axis="x", labelsize=5)
    if tests_path.exists():
        tests = pd.read_csv(tests_path)
        sub = tests[(tests.measure == "per_token") & (tests.type == "emotion")]
        grid = sub.pivot_table(index="head", columns="layer", values="mean_diff")
        sig = sub.pivot_table(index="head", columns="layer", values="significant", aggfunc="max")
        lim = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
        ax = axes[k]
        im = ax.imshow(grid.to_numpy(float), cmap=st.diverging_cmap(), vmin=-lim, vmax=lim,
                       aspect="auto", origin="lower")
        ys, xs = np.nonzero(sig.reindex_like(grid).fillna(0).to_numpy(float) > 0)
        ax.scatter(xs, ys, marker="*", s=14, color="black", label="FDR q < 0.05")
        fig.colorbar(im, ax=ax, shrink=0.8, label="B - control, per token")
        ax.set_xlabel("layer")
        ax.set_ylabel("head")
        ax.set_title("emotion-word attention per token")
        ax.grid(False)
        ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{slug}: where the read-out token attends")
    return fig


def fig08_geometry(folder: Path, slug: str):
    """PCA of Set A + B at the probe layer (centred jointly / per set) and silhouettes per layer."""
    pcs = read(folder, "pca_probe_layer.csv")
    sil_path = folder / "silhouette_by_layer.csv"
    views = list(dict.fromkeys(pcs.view))
    fig, axes = st.panels(len(views) + sil_path.exists(), width=4.2, height=3.8)
    emotions = list(dict.fromkeys(pcs.label))
    markers = ["o", "^", "s", "D"]
    for ax, view in zip(axes, views, strict=False):
        sub = pcs[pcs.view == view]
        for k, emo in enumerate(emotions):
            for j, s in enumerate(dict.fromkeys(pcs.set)):
                m = (sub.label == emo) & (sub.set == s)
                ax.scatter(sub.pc1[m], sub.pc2[m], s=14, marker=markers[j % 4],
                           color=st.series_style(k)["color"], alpha=0.8,
                           label=emo if j == 0 else None)
        ax.set_xlabel(f"PC1 ({sub.pc1_ratio.iloc[0]:.1%})")
        ax.set_ylabel(f"PC2 ({sub.pc2_ratio.iloc[0]:.1%})")
        ax.set_title(f"centred {'jointly' if view == 'joint' else 'per set'} "
                     "(marker = set)")
    axes[0].legend(fontsize=6, ncol=2)
    if sil_path.exists():
        sil = pd.read_csv(sil_path)
        sil = sil[sil.metric == "euclidean"]
        ax = axes[-1]
        for k, (name, g) in enumerate(sil.groupby("grouping", sort=False)):
            c = st.series_style(k)["color"]
            ax.plot(g.layer, g.silhouette, color=c, label=name)
            ax.plot(g.layer, g.null_q95, color=c, linestyle=":", linewidth=0.8)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel("silhouette (dotted: permutation 95th pct)")
        ax.set_title("Euclidean silhouette per layer")
        ax.legend(fontsize=6)
    fig.suptitle(f"{slug}: representational geometry")
    return fig


def fig09_emotion_vectors(folder: Path, slug: str):
    """Clustered cosine matrix of the emotion vectors and their PC1/PC2 coloured by valence."""
    cos = read(folder, "cosine_matrix.csv")
    clusters = read(folder, "clusters.csv")
    kind = "projected" if "projected" in set(cos.kind) else cos.kind.iloc[0]
    cl = clusters[clusters.kind == kind].sort_values("hier_order")
    order = list(cl.emotion)
    mat = cos[cos.kind == kind].pivot_table(index="a", columns="b", values="cosine")
    mat = mat.reindex(index=order, columns=order).to_numpy(float)
    fig, axes = st.panels(2, width=5.2, height=4.6)
    _heatmap(axes[0], mat, order, order, cmap=st.diverging_cmap(), vmin=-1, vmax=1,
             label="cosine")
    axes[0].tick_params(axis="x", rotation=90)
    axes[0].set_title(f"{kind} vectors, hierarchical order (layer {int(cl.layer.iloc[0])})")
    ax = axes[1]
    sc = ax.scatter(cl.pc1, cl.pc2, c=cl.valence, cmap=st.diverging_cmap(), vmin=-1, vmax=1,
                    s=40, edgecolors="black", linewidths=0.4)
    for r in cl.itertuples():
        ax.annotate(r.emotion, (r.pc1, r.pc2), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    fig.colorbar(sc, ax=ax, shrink=0.8, label="valence (design)")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel(f"PC1 ({cl.pc1_ratio.iloc[0]:.1%})")
    ax.set_ylabel(f"PC2 ({cl.pc2_ratio.iloc[0]:.1%})")
    title = "PC1/PC2 of the vectors"
    summary = folder / "summary.csv"
    if summary.exists():
        s = pd.read_csv(summary)
        hit = s[(s.kind == kind)
                & s.metric.str.startswith("PC1 x valence (LOO pole projection) r")]
        if len(hit):
            title += f": PC1 ~ valence r = {hit.value.iloc[0]:.2f}"
    ax.set_title(title)
    fig.suptitle(f"{slug}: emotion vectors from stories")
    return fig


def fig10_crosslingual(folder: Path, slug: str):
    """EN-JA RSA against its label-shuffle null at the analysis layer, and RSA per layer."""
    null = read(folder, "rsa_null_at_layer.csv")
    by_layer_path = folder / "rsa_by_layer.csv"
    by_layer = pd.read_csv(by_layer_path) if by_layer_path.exists() else None
    kinds = list(dict.fromkeys(null.kind))
    fig, axes = st.panels(len(kinds) + (by_layer is not None), width=4.0, height=3.2)
    for k, (ax, kind) in enumerate(zip(axes, kinds, strict=False)):
        sub = null[null.kind == kind]
        layer = int(sub.layer.iloc[0])
        ax.hist(sub.null_spearman, bins=50, color=st.CONTROL_COLOUR)
        if by_layer is not None:
            obs = by_layer[(by_layer.kind == kind) & (by_layer.layer == layer)]
            if len(obs):
                r, p = obs.rsa_spearman.iloc[0], obs.p.iloc[0]
                ax.axvline(r, color=st.series_style(k)["color"], linewidth=2)
                ax.set_title(f"{kind}, layer {layer}: rho = {r:.3f}, p = {p:.1e}")
        ax.set_xlabel(f"Spearman rho under {len(sub)} label shuffles")
        ax.set_ylabel("count")
    if by_layer is not None:
        ax = axes[-1]
        for k, (kind, g) in enumerate(by_layer.groupby("kind", sort=False)):
            c = st.series_style(k)["color"]
            ax.plot(g.layer, g.rsa_spearman, color=c, label=kind)
            ax.plot(g.layer, g.null_q95, color=c, linestyle=":", linewidth=0.8,
                    label=f"{kind}: null 95th pct")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("layer")
        ax.set_ylabel("RSA Spearman rho")
        ax.set_title("RSA per layer")
        ax.legend(fontsize=6)
    fig.suptitle(f"{slug}: English vs Japanese emotion geometry")
    return fig


def fig11_steering(folder: Path, slug: str, method: str = "bt"):
    """Category rating change vs unsteered at the largest alpha, per emotion and random control."""
    table = read(folder, "category_ratings.csv")
    table = table[(table.method == method) & (table.kind != "baseline")]
    if table.empty:
        raise Skip(f"no {method} rows in category_ratings.csv")
    alpha = table.alpha.max()
    table = table[np.isclose(table.alpha, alpha)]
    conds = list(dict.fromkeys(table.emotion))
    cats = list(dict.fromkeys(table.category))
    fig, axes = st.panels(len(conds), width=2.6, height=3.2, sharey=True)
    x = np.arange(len(cats))
    for ax, cond in zip(axes, conds, strict=True):
        rows = table[table.emotion == cond].set_index("category").reindex(cats)
        is_random = (rows.kind == "random").any()
        colour = st.CONTROL_COLOUR if is_random else st.NAMED["vermillion"]
        # a point estimate may fall outside its percentile bootstrap CI: clip, never negative
        err = np.clip(np.vstack([rows.delta - rows.delta_lo, rows.delta_hi - rows.delta]), 0,
                      None)
        ax.bar(x, rows.delta, color=colour, yerr=err, ecolor="black", capsize=1.5,
               error_kw={"linewidth": 0.6})
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, cats, rotation=60, ha="right", fontsize=7)
        ax.set_title(cond + (" (control)" if is_random else ""))
    axes[0].set_ylabel(f"{method.upper()} rating change vs unsteered (Elo scale, 95% CI)")
    fig.suptitle(f"{slug}: steering at alpha = {alpha:g} x mean residual norm")
    return fig


FIGURES: dict[str, tuple[str, Callable]] = {
    "fig00_ct_scan": ("00_ct_scan", fig00_ct_scan),
    "fig02_probes": ("02_probes", fig02_probes),
    "fig03_binary": ("03_binary", fig03_binary),
    "fig04_zeroshot": ("04_zeroshot", fig04_zeroshot),
    "fig05_patching": ("05_patching", fig05_patching),
    "fig06_knockout": ("06_knockout", fig06_knockout),
    "fig07_attention": ("07_attention", fig07_attention),
    "fig08_geometry": ("08_geometry", fig08_geometry),
    "fig09_emotion_vectors": ("09_emotion_vectors", fig09_emotion_vectors),
    "fig10_crosslingual": ("10_crosslingual", fig10_crosslingual),
    "fig11_steering": ("11_steering", fig11_steering),
}


def model_slugs(root: Path) -> list[str]:
    """Every non-empty ``<slug>`` folder under ``<root>/*/outputs/``."""
    return sorted({p.name for p in root.glob("*/outputs/*") if p.is_dir() and any(p.iterdir())
                   and p.parents[1].name != "12_summary"})


def run_all(root: Path = EXPERIMENTS, out: Path = OUTPUT, models=None, only=None
            ) -> tuple[list[Path], list[str]]:
    """Write every figure it can; returns (paths written, skip notes)."""
    st.apply_style()
    written, notes = [], []
    for slug in models or model_slugs(root):
        for name, (exp, fn) in FIGURES.items():
            if only and not any(name.startswith(f"fig{o}") or name == o for o in only):
                continue
            folder = root / exp / "outputs" / slug
            try:
                if not folder.is_dir():
                    raise Skip(f"{exp} has no outputs for {slug}")
                fig = fn(folder, slug)
            except (Skip, FileNotFoundError) as exc:
                notes.append(f"skip {name} [{slug}]: {exc}")
                print(notes[-1])
                continue
            paths = st.save_figure(fig, out / slug / name)
            written += paths
            print(f"wrote {paths[0].relative_to(out)} (+ .svg)")
    return written, notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=Path, default=EXPERIMENTS)
    ap.add_argument("--out", type=Path, default=OUTPUT)
    ap.add_argument("--models", nargs="*", default=None, metavar="SLUG")
    ap.add_argument("--only", nargs="*", default=None, metavar="NN",
                    help="only these figures (by number, e.g. 02 05, or full name)")
    args = ap.parse_args(argv)
    written, notes = run_all(args.experiments, args.out, args.models, args.only)
    if not args.only:  # and the figures that put the models side by side
        from visualization.figures.cross_model import run_cross_model

        written += run_cross_model(args.experiments, args.out / "cross_model", args.models)
    print(f"{len(written) // 2} figures written to {args.out}; {len(notes)} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
