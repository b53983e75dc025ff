"""The one place for figure style: Okabe-Ito colours, fonts, colour ramps and saving.

Part of the library so that the library's own figures and the HTML report (through
:func:`web_theme`) never need the repository checkout; ``visualization/figures/style_config.py``
re-exports this module for the publication figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Okabe & Ito (2008), colour-blind safe; ordered so the first colours read well as lines.
OKABE_ITO = [
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow (weak on white: last)
]
NAMED = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
    "grey": "#6B7280",
}
# Ramps built from Okabe-Ito anchors: sequential (low -> high) and diverging (neg -> 0 -> pos).
SEQUENTIAL = ["#FFFFFF", "#56B4E9", "#0072B2", "#003A5C"]
DIVERGING = ["#D55E00", "#FFFFFF", "#0072B2"]
# Line styles cycled once the palette runs out (more series than colours).
DASHES = ["-", "--", ":", "-."]
ROLE_STYLE = {"user": "-", "assistant": "--", "system": ":"}
# The project's verdict vocabulary (docs/reproducing.md) and its colours.
VERDICT_COLOURS = {
    "reproduced": NAMED["green"],
    "reproduced, but a control explains it": NAMED["sky"],
    "partly": NAMED["orange"],
    "not reproduced": NAMED["vermillion"],
    "not testable here": NAMED["grey"],
    "n/a": NAMED["grey"],
}
# Activation sources: block output (h), attention output (a), MLP output (m), block input.
SOURCE_COLOURS = {
    "hidden_out": NAMED["blue"],
    "attn_out": NAMED["orange"],
    "mlp_out": NAMED["green"],
    "hidden_in": NAMED["purple"],
}
SOURCE_SHORT = {"hidden_out": "h", "attn_out": "a", "mlp_out": "m", "hidden_in": "h_in"}
# Controls are drawn grey next to the measurement they control for.
CONTROL_COLOUR = NAMED["grey"]
CONTROL_DASHES = {"shuffled": ":", "random": ":", "text_tfidf": "--", "length_only": "-.",
                  "length_matched": "--", "null": ":"}
FONT_STACK = ["DejaVu Sans", "Helvetica", "Arial", "sans-serif"]
CSS_FONT = '-apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif'
CSS_MONO = 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace'


def series_style(i: int) -> dict:
    """Colour and line style of the i-th series (colours first, then dashes)."""
    return {
        "color": OKABE_ITO[i % len(OKABE_ITO)],
        "linestyle": DASHES[(i // len(OKABE_ITO)) % len(DASHES)],
    }


def sequential_cmap():
    """Matplotlib colormap for non-negative maps (cosine, MAE, Jaccard, spread)."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("okabe_seq", SEQUENTIAL)


def diverging_cmap():
    """Matplotlib colormap for signed maps centred on zero (centred cosine)."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("okabe_div", DIVERGING)


def source_colour(source: str) -> str:
    """Colour of an activation source (black for anything else)."""
    return SOURCE_COLOURS.get(source, NAMED["black"])


def panels(n: int, *, width: float = 4.0, height: float = 3.2, ncols: int | None = None,
           **kwargs):
    """A figure of ``n`` equally sized panels in one row (or ``ncols`` per row); returns
    ``(fig, flat list of n axes)`` with any unused axes hidden."""
    import matplotlib.pyplot as plt

    ncols = min(n, ncols or n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False, **kwargs)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def apply_style() -> None:
    """Set matplotlib rcParams for all project figures (Agg backend, fonts, palette)."""
    import matplotlib

    matplotlib.use("Agg")
    from cycler import cycler

    matplotlib.rcParams.update(
        {
            "font.family": "sans-serif",
            "font.sans-serif": FONT_STACK,
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.titleweight": "bold",
            "axes.labelsize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": "#E5E7EB",
            "grid.linewidth": 0.6,
            "axes.prop_cycle": cycler(color=OKABE_ITO),
            "legend.frameon": False,
            "legend.fontsize": 8,
            "figure.dpi": 110,
            "figure.constrained_layout.use": True,
            "savefig.dpi": 160,
            "savefig.bbox": "tight",
            "svg.fonttype": "none",
            "svg.hashsalt": "llmct",
        }
    )


def save_figure(fig, path_without_suffix: str | Path, *, layout_once: bool = False) -> list[Path]:
    """Save ``fig`` as PNG and SVG next to each other, close it, return both paths.

    ``layout_once``: lay the figure out and find its tight bounding box once, then write both
    files from that layout (the PNG is the Agg rendering itself, cropped to the box) instead
    of ``savefig`` laying out, measuring and drawing it again for each format: the same
    picture in about half the time (the CT scan's report figures use it)."""
    import matplotlib.pyplot as plt

    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    if layout_once:
        paths = _save_laid_out_once(fig, base)
    else:
        paths = []
        for suffix in (".png", ".svg"):
            path = base.with_suffix(suffix)
            fig.savefig(path, metadata={"Date": None} if suffix == ".svg" else None)
            paths.append(path)
    plt.close(fig)
    return paths


def _save_laid_out_once(fig, base: Path) -> list[Path]:
    """PNG + SVG of ``fig`` from one layout pass (see :func:`save_figure`), honouring the
    ``savefig.dpi``, ``savefig.bbox`` and ``savefig.pad_inches`` rcParams."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba
    from PIL import Image

    rc = matplotlib.rcParams
    dpi = fig.dpi if rc["savefig.dpi"] == "figure" else float(rc["savefig.dpi"])
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # the layout engine (constrained layout) runs here, once
    width, height = canvas.get_width_height()
    box = None
    if rc["savefig.bbox"] == "tight":
        box = fig.get_tightbbox(canvas.get_renderer()).padded(rc["savefig.pad_inches"])
    fig.set_layout_engine("none")  # keep the positions just computed for the SVG
    pixels = np.asarray(canvas.buffer_rgba())
    if box is not None:  # crop (or pad with the face colour) to the box, in whole pixels
        x0, x1 = (round(v * dpi) for v in (box.x0, box.x1))
        top, bottom = (height - round(v * dpi) for v in (box.y1, box.y0))
        face = to_rgba(fig.get_facecolor() if rc["savefig.facecolor"] == "auto"
                       else rc["savefig.facecolor"])
        out = np.empty((bottom - top, x1 - x0, 4), dtype=np.uint8)
        out[:] = np.round(np.array(face) * 255).astype(np.uint8)
        sy, sx = slice(max(top, 0), min(bottom, height)), slice(max(x0, 0), min(x1, width))
        out[sy.start - top: sy.stop - top, sx.start - x0: sx.stop - x0] = pixels[sy, sx]
        pixels = out
    png, svg = base.with_suffix(".png"), base.with_suffix(".svg")
    Image.fromarray(pixels, "RGBA").save(png, format="png", dpi=(dpi, dpi))
    fig.savefig(svg, bbox_inches=box, metadata={"Date": None})
    return [png, svg]


def web_theme() -> dict:
    """The same palette for the HTML report (JSON-serialisable)."""
    return {
        "palette": OKABE_ITO,
        "named": NAMED,
        "sequential": SEQUENTIAL,
        "diverging": DIVERGING,
        "verdict": VERDICT_COLOURS,
        "font": CSS_FONT,
        "mono": CSS_MONO,
    }


def style():
    """This module (kept for callers written against the old ``style()`` accessor)."""
    return sys.modules[__name__]
