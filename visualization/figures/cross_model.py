"""Figures that compare models: one panel per model on the same axes, from the CSVs alone.

- ``figX1_probes_by_depth``: 8-class probe AUROC (``hidden_out``) against **relative depth**
  (layer / (n_layers - 1)), so an 18-layer and a 30-layer model share one x axis; with each
  model's text-only TF-IDF and shuffled-label controls.
- ``figX2_ct_spread``: the CT scan's spread over references (centred cosine, ``hidden_in``) per
  snapshot and relative depth.
- ``figX3_affect_plane``: PC1/PC2 of the story emotion vectors coloured by design valence, sized
  by design arousal; the title gives PC1 x valence r against the design ratings (09's headline).

Written to ``visualization/figures/output/cross_model/``. A model without the input CSV gets an
empty panel that says so; a figure no model can draw is skipped with a note.

    uv run --no-sync python visualization/figures/cross_model.py [--models SLUG ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from visualization.figures import style_config as st  # noqa: E402
from visualization.figures.run_all import EXPERIMENTS, OUTPUT, model_slugs  # noqa: E402

PROBE_PAIRS = (("set_a", "set_a"), ("set_b", "set_b"), ("set_a", "set_b"))
PAIR_DASHES = {("set_a", "set_a"): "-", ("set_b", "set_b"): "--", ("set_a", "set_b"): ":"}


def _read(root: Path, exp: str, slug: str, name: str) -> pd.DataFrame | None:
    path = root / exp / "outputs" / slug / name
    return pd.read_csv(path) if path.exists() else None


def _missing(ax, slug: str, what: str) -> None:
    ax.text(0.5, 0.5, f"{slug}:\nno {what}", ha="center", va="center", transform=ax.transAxes,
            fontsize=8, color=st.CONTROL_COLOUR)
    ax.set_xticks([])
    ax.set_yticks([])


def probes_by_depth(root: Path, slugs: list[str]):
    """02's probe curves against relative depth, one panel per model (shared y axis)."""
    fig, axes = st.panels(len(slugs), width=4.0, height=3.2, sharey=True)
    for ax, slug in zip(axes, slugs, strict=True):
        res = _read(root, "02_probes", slug, "probe_results.csv")
        if res is None:
            _missing(ax, slug, "02_probes/probe_results.csv")
            continue
        h = res[(res.source == "hidden_out") & (res.layer >= 0)]
        h = h.assign(depth=h.layer / max(int(h.layer.max()), 1))
        for pair in PROBE_PAIRS:
            sub = h[(h.train_set == pair[0]) & (h.test_set == pair[1])]
            probe = sub[sub.control == "none"].sort_values("depth")
            if probe.empty:
                continue
            label = f"{pair[0]} CV" if pair[0] == pair[1] else f"{pair[0]} -> {pair[1]}"
            ax.plot(probe.depth, probe.auroc, color=st.source_colour("hidden_out"),
                    linestyle=PAIR_DASHES[pair], label=label)
        text = res[(res.control == "text_tfidf") & (res.train_set == res.test_set)]
        for k, r in enumerate(text.itertuples()):
            ax.axhline(r.auroc, color=st.CONTROL_COLOUR, linestyle="--", linewidth=0.8,
                       label="text-only TF-IDF (within set)" if k == 0 else None)
        shuf = h[(h.control == "shuffled") & (h.train_set == h.test_set)]
        if len(shuf):
            ax.axhspan(shuf.auroc.min(), shuf.auroc.max(), color=st.CONTROL_COLOUR, alpha=0.15,
                       linewidth=0, label="shuffled labels (range)")
        ax.axhline(0.5, color="black", linewidth=0.5)
        ax.set_ylim(0.3, 1.02)
        ax.set_xlim(0, 1)
        ax.set_xlabel("relative depth (layer / last layer)")
        ax.set_title(f"{slug} ({h.layer.max() + 1} layers)")
    axes[0].set_ylabel("macro AUROC (hidden_out)")
    axes[-1].legend(fontsize=6, loc="lower right")
    fig.suptitle("Emotion probes by relative depth (both models: 4-bit GGUF weights "
                 "dequantized to fp32; docs/models.md)")
    return fig


def ct_spread(root: Path, slugs: list[str]):
    """00's centred spread over references per snapshot x relative depth, one panel per model."""
    fig, axes = st.panels(len(slugs), width=4.4, height=3.6)
    vmax = 0.0
    grids = {}
    for slug in slugs:
        spread = _read(root, "00_ct_scan", slug, "message_end/spread.csv")
        if spread is None:
            continue
        src = "hidden_in" if "hidden_in" in set(spread.source) else spread.source.iloc[0]
        grid = spread[spread.source == src].pivot_table(index="snapshot", columns="layer",
                                                        values="spread_centered")
        grids[slug] = (src, grid)
        vmax = max(vmax, float(np.nanmax(grid.to_numpy())))
    for ax, slug in zip(axes, slugs, strict=True):
        if slug not in grids:
            _missing(ax, slug, "00_ct_scan/message_end/spread.csv")
            continue
        src, grid = grids[slug]
        last = max(int(grid.columns.max()), 1)
        im = ax.imshow(grid.to_numpy(), cmap=st.sequential_cmap(), aspect="auto", vmin=0,
                       vmax=vmax, extent=(0, 1, len(grid.index) - 0.5, -0.5))
        ax.set_xlabel(f"relative depth (layer / {last})")
        ax.set_ylabel("snapshot (message)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{slug}: centred spread ({src})")
        ax.grid(False)
        fig.colorbar(im, ax=ax, shrink=0.8, label="max - min over references")
    fig.suptitle("CT scan of the rollercoaster conversation: spread over references")
    return fig


def affect_plane(root: Path, slugs: list[str]):
    """09's emotion vectors on PC1/PC2, coloured by design valence, one panel per model."""
    fig, axes = st.panels(len(slugs), width=4.4, height=4.0)
    for ax, slug in zip(axes, slugs, strict=True):
        clusters = _read(root, "09_emotion_vectors", slug, "clusters.csv")
        if clusters is None:
            _missing(ax, slug, "09_emotion_vectors/clusters.csv")
            continue
        kind = "projected" if "projected" in set(clusters.kind) else clusters.kind.iloc[0]
        cl = clusters[clusters.kind == kind]
        sc = ax.scatter(cl.pc1, cl.pc2, c=cl.valence, cmap=st.diverging_cmap(), vmin=-1, vmax=1,
                        s=30 + 30 * (cl.arousal - cl.arousal.min()), edgecolors="black",
                        linewidths=0.4)
        for r in cl.itertuples():
            ax.annotate(r.emotion, (r.pc1, r.pc2), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        r_valence = np.corrcoef(cl.pc1, cl.valence)[0, 1]
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.set_xlabel(f"PC1 ({cl.pc1_ratio.iloc[0]:.1%})")
        ax.set_ylabel(f"PC2 ({cl.pc2_ratio.iloc[0]:.1%})")
        ax.set_title(f"{slug}, {kind}, layer {int(cl.layer.iloc[0])}\n"
                     f"PC1 x design valence r = {r_valence:.2f}", fontsize=8)
        fig.colorbar(sc, ax=ax, shrink=0.8, label="valence (design); size: arousal")
    fig.suptitle("Emotion vectors from stories: the valence/arousal plane")
    return fig


FIGURES: dict[str, Callable] = {
    "figX1_probes_by_depth": probes_by_depth,
    "figX2_ct_spread": ct_spread,
    "figX3_affect_plane": affect_plane,
}


def run_cross_model(root: Path = EXPERIMENTS, out: Path = OUTPUT / "cross_model",
                    models: list[str] | None = None) -> list[Path]:
    """Write every cross-model figure for ``models`` (default: every slug with outputs).
    Returns the paths written; needs at least two models (else writes nothing)."""
    st.apply_style()
    slugs = models or model_slugs(root)
    if len(slugs) < 2:
        print(f"cross-model figures need two models with outputs; found {slugs}")
        return []
    written = []
    for name, fn in FIGURES.items():
        written += st.save_figure(fn(root, slugs), out / name)
        print(f"wrote {out / name}.png (+ .svg)")
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=Path, default=EXPERIMENTS)
    ap.add_argument("--out", type=Path, default=OUTPUT / "cross_model")
    ap.add_argument("--models", nargs="*", default=None, metavar="SLUG")
    args = ap.parse_args(argv)
    run_cross_model(args.experiments, args.out, args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
