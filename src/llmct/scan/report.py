"""Render a finished scan folder as one self-contained, offline HTML report (+ static figures).

Reads only the scan's output files (``run.json``, ``metrics.csv``, ``spread.csv``,
``layer_map.csv``, ``findings.json``, ``logit_lens.csv``); any may be missing.  The HTML
inlines its CSS, JS (hand-written, no library) and data (JSON, ``<`` escaped); every piece
of user text reaches the page through ``textContent``.

    from llmct.scan.report import write_report
    write_report(Path("outputs/scan_x"))          # -> outputs/scan_x/report.html
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from llmct.style import style

METRICS = ("cosine", "cosine_centered", "mae", "jaccard")
FILES = (
    "run.json",
    "metrics.csv",
    "spread.csv",
    "layer_map.csv",
    "findings.json",
    "logit_lens.csv",
)
ASSETS = Path(__file__).with_name("report_assets")
LAYER_MAP_COLS = ("spread", "spread_centered", "mean_cosine", "nearest_acc", "nearest_acc_centered")
LABELS = {
    "cosine": "cosine",
    "cosine_centered": "centred cosine",
    "mae": "MAE",
    "jaccard": "Jaccard (top 1%)",
    "spread": "raw spread",
    "spread_centered": "centred spread",
    "nearest_acc": "raw nearest-reference accuracy",
    "nearest_acc_centered": "centred nearest-reference accuracy",
}


# --------------------------------------------------------------------------------------
# Loading


def _ordered(preferred, present) -> list:
    """Items of ``present`` in ``preferred`` order first, then the rest sorted."""
    present = list(dict.fromkeys(present))
    first = [p for p in dict.fromkeys(preferred) if p in present]
    return first + sorted((p for p in present if p not in first), key=str)


def _read_csv(path: Path, text_cols: tuple[str, ...]) -> pd.DataFrame:
    """CSV with text columns kept verbatim ('' not NaN, 'NA' stays 'NA') and the rest numeric."""
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    for col in df.columns:
        if col not in text_cols:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def match_reference(tag: str | None, labels: list[str]) -> str | None:
    """The reference a turn's emotion tag refers to: same label (any case), or the one
    label that appears as a word in the tag ("Ecstatic Joy" -> "joy"); else None."""
    if not tag:
        return None
    lower = {label.lower(): label for label in labels}
    key = tag.strip().lower()
    if key in lower:
        return lower[key]
    words = set(re.findall(r"[a-z]+", key))
    hits = [label for low, label in lower.items() if low in words]
    return hits[0] if len(hits) == 1 else None


@dataclass
class Scan:
    """A scan folder's contents plus the arrays every view is drawn from."""

    out_dir: Path
    run: dict = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    spread: pd.DataFrame | None = None
    layer_map: pd.DataFrame | None = None
    findings: list | None = None
    logit_lens: pd.DataFrame | None = None
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    layers: list[int] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    # snapshot, role, emotion, match (ref index or -1); always set by load_scan
    snapshots: pd.DataFrame | None = None
    grid: dict[str, np.ndarray] | None = None  # metric -> (snapshot, source, layer, reference)

    def role_rows(self, role: str) -> np.ndarray:
        """Row indices (into ``grid``) of snapshots with this role."""
        return np.flatnonzero(cast(pd.DataFrame, self.snapshots).role.to_numpy() == role)


def load_scan(out_dir: Path) -> Scan:
    """Read whatever contract files exist in ``out_dir`` and derive the shared arrays."""
    out_dir = Path(out_dir)
    scan = Scan(out_dir=out_dir)
    readers = {
        "run.json": lambda p: json.loads(p.read_text(encoding="utf-8")),
        "findings.json": lambda p: json.loads(p.read_text(encoding="utf-8")),
        "metrics.csv": lambda p: _read_csv(p, ("role", "emotion", "source", "reference")),
        "spread.csv": lambda p: _read_csv(p, ("role", "source")),
        "layer_map.csv": lambda p: _read_csv(p, ("source",)),
        "logit_lens.csv": lambda p: _read_csv(p, ("token",)),
    }
    for name in FILES:
        path = out_dir / name
        if not path.exists():
            scan.missing.append(name)
            continue
        try:
            value = readers[name](path)
        except Exception as exc:  # a broken file is reported, not fatal
            scan.missing.append(name)
            scan.problems.append(f"{name} could not be read: {type(exc).__name__}: {exc}")
            continue
        setattr(scan, name.split(".")[0], value)
    scan.run = scan.run or {}
    _derive(scan)
    return scan


def _derive(scan: Scan) -> None:
    run = scan.run
    messages = run.get("messages") or []
    for name in ("metrics", "spread", "layer_map"):  # clean integer keys
        df = getattr(scan, name)
        if df is not None:
            keys = [k for k in ("snapshot", "layer") if k in df]
            setattr(scan, name, df.dropna(subset=keys).astype(dict.fromkeys(keys, int)))
    m = scan.metrics
    tables = [t for t in (m, scan.spread, scan.layer_map) if t is not None]
    run_sources = run.get("sources") or []
    scan.sources = _ordered(run_sources, [*run_sources, *(x for t in tables for x in t.source)])
    run_layers = [int(x) for x in run.get("layers") or []]
    scan.layers = sorted({*run_layers, *(x for t in tables for x in t.layer)})
    run_refs = [r.get("label") for r in run.get("references") or [] if r.get("label")]
    scan.refs = _ordered(run_refs, m.reference if m is not None else run_refs)
    per_snapshot = m if m is not None else scan.spread
    if per_snapshot is not None:
        cols = [c for c in ("role", "emotion") if c in per_snapshot]
        snaps = per_snapshot.groupby("snapshot", sort=True)[cols].first().reset_index()
        if "emotion" not in snaps:
            snaps["emotion"] = ""
    else:
        snaps = pd.DataFrame(
            [(x["index"], x.get("role", ""), x.get("emotion") or "") for x in messages],
            columns=["snapshot", "role", "emotion"],
        )
    by_index = {x.get("index"): x for x in messages}
    snaps["emotion"] = [
        e or (by_index.get(i, {}).get("emotion") or "")
        for i, e in zip(snaps.snapshot, snaps.emotion, strict=True)
    ]
    labels = [match_reference(e, scan.refs) for e in snaps.emotion]
    snaps["match"] = [scan.refs.index(lab) if lab else -1 for lab in labels]
    scan.snapshots = snaps
    if m is not None and len(m):
        index = pd.MultiIndex.from_product([snaps.snapshot, scan.sources, scan.layers, scan.refs])
        keyed = m.groupby(["snapshot", "source", "layer", "reference"])
        shape = (len(snaps), len(scan.sources), len(scan.layers), len(scan.refs))
        scan.grid = {
            metric: keyed[metric].mean().reindex(index).to_numpy(float).reshape(shape)
            for metric in METRICS
            if metric in m.columns
        }
    if scan.spread is None and m is not None:
        g = m.groupby(["snapshot", "role", "source", "layer"])
        scan.spread = pd.DataFrame(
            {
                "spread": g.cosine.max() - g.cosine.min(),
                "spread_centered": g.cosine_centered.max() - g.cosine_centered.min()
                if "cosine_centered" in m
                else np.nan,
                "mean_cosine": g.cosine.mean(),
            }
        ).reset_index()
    if scan.layer_map is None and scan.spread is not None:
        user = scan.spread[scan.spread.role == "user"]
        cols = [c for c in ("spread", "spread_centered", "mean_cosine") if c in user]
        scan.layer_map = user.groupby(["source", "layer"])[cols].mean().reset_index()


# --------------------------------------------------------------------------------------
# Derived views (shared by the HTML and the static figures)


def focus(scan: Scan) -> dict:
    """Default (source, layer) for single-layer views: best centred nearest-reference
    accuracy, then centred spread, from the layer map; else the last layer."""
    lm = scan.layer_map
    if lm is not None and len(lm):
        keys = [c for c in ("nearest_acc_centered", "spread_centered", "spread") if c in lm]
        keys = [c for c in keys if lm[c].notna().any()]
        if keys:
            best = lm.sort_values(keys, ascending=False, na_position="last").iloc[0]
            return {
                "source": str(best.source),
                "layer": int(best.layer),
                "reason": f"highest {LABELS[keys[0]]} in the layer map",
            }
    return {
        "source": scan.sources[0] if scan.sources else None,
        "layer": scan.layers[-1] if scan.layers else None,
        "reason": "last layer (no layer map)",
    }


def role_means(scan: Scan) -> dict:
    """metric -> source -> role -> per-layer mean over references and that role's snapshots."""
    out: dict = {}
    if scan.grid is not None:
        for metric in ("cosine", "cosine_centered"):
            if metric not in scan.grid:
                continue
            per_snap = np.nanmean(scan.grid[metric], axis=3)  # (S, Src, L)
            out[metric] = {
                src: {
                    role: np.nanmean(per_snap[scan.role_rows(role), si], axis=0)
                    for role in ("user", "assistant")
                    if len(scan.role_rows(role))
                }
                for si, src in enumerate(scan.sources)
            }
    elif scan.spread is not None and "mean_cosine" in scan.spread:
        piv = scan.spread.groupby(["source", "role", "layer"]).mean_cosine.mean()
        out["cosine"] = {
            src: {
                role: piv.loc[(src, role)].reindex(scan.layers).to_numpy(float)
                for role in ("user", "assistant")
                if (src, role) in piv.index.droplevel(2)
            }
            for src in scan.sources
        }
    return out


def fading_memory(scan: Scan, metric: str) -> tuple[list[int], dict[str, np.ndarray]]:
    """User turns with a matched reference, and per source a (layer, turn) array of the
    matched reference's ``metric``."""
    if scan.grid is None or metric not in scan.grid:
        return [], {}
    snaps = cast(pd.DataFrame, scan.snapshots)
    rows = np.flatnonzero((snaps.role.to_numpy() == "user") & (snaps.match.to_numpy() >= 0))
    refs = snaps.match.to_numpy()[rows]
    grid = scan.grid[metric]
    return (
        [int(s) for s in snaps.snapshot.to_numpy()[rows]],
        {src: grid[rows, si, :, refs].T for si, src in enumerate(scan.sources)},  # (L, U)
    )


def _layer_map_arrays(scan: Scan) -> dict | None:
    lm = scan.layer_map
    if lm is None or not len(lm):
        return None
    lm = lm.dropna(subset=["layer"]).astype({"layer": int}).set_index(["source", "layer"])
    out = {}
    for src in scan.sources:
        if src not in lm.index.get_level_values(0):
            continue
        part = lm.loc[src].reindex(scan.layers)
        out[src] = {c: part[c].to_numpy(float) for c in LAYER_MAP_COLS if c in part}
    return out


# --------------------------------------------------------------------------------------
# JSON payload for the page


def _clean(obj):
    """JSON-safe copy: numpy -> python, NaN/inf -> None, floats to 5 significant digits."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float):
        return float(f"{obj:.5g}") if math.isfinite(obj) else None
    return obj


def _logit_lens(scan: Scan) -> dict | None:
    ll = scan.logit_lens
    if ll is None:
        return None
    ll = ll.dropna(subset=["snapshot", "layer"]).sort_values(["snapshot", "layer", "rank"])
    return {
        str(int(snap)): [
            {"layer": int(layer), "top": list(zip(g.token, g.prob, strict=True))}
            for layer, g in part.groupby("layer")
        ]
        for snap, part in ll.groupby("snapshot")
    }


def build_payload(scan: Scan, figure_names: list[str] | None = None) -> dict:
    """Everything the page's JS needs, JSON-serialisable."""
    run = dict(scan.run)
    turns: list[int] = []
    fading: dict[str, dict[str, np.ndarray]] = {}
    for metric in ("cosine", "cosine_centered"):
        turns, fading[metric] = fading_memory(scan, metric)
    snaps = cast(pd.DataFrame, scan.snapshots)
    return _clean(
        {
            "theme": style().web_theme(),
            "labels": LABELS,
            "run": {k: v for k, v in run.items() if k not in ("messages", "references")},
            "messages": run.get("messages") or [],
            "references": run.get("references") or [],
            "missing": scan.missing,
            "problems": scan.problems,
            "sources": scan.sources,
            "layers": scan.layers,
            "refs": scan.refs,
            "snapshots": [
                {"i": int(s), "role": r, "emotion": e, "match": int(mt)}
                for s, r, e, mt in zip(
                    snaps.snapshot, snaps.role, snaps.emotion, snaps.match, strict=True
                )
            ],
            "grid": None
            if scan.grid is None
            else {
                metric: {src: arr[:, si] for si, src in enumerate(scan.sources)}
                for metric, arr in scan.grid.items()
            },
            "layer_map": _layer_map_arrays(scan),
            "role_means": role_means(scan),
            "fading": {"turns": turns, "values": fading} if turns else None,
            "focus": focus(scan),
            "findings": scan.findings,
            "logit_lens": _logit_lens(scan),
            "figures": figure_names or [],
        }
    )


def _script_json(payload: dict) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' survives (so no '</script>')."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _asset(name: str, closing: str) -> str:
    text = (ASSETS / name).read_text(encoding="utf-8")
    if closing in text.lower():
        raise ValueError(f"{name} must not contain {closing!r}")
    return text


def render_html(scan: Scan, figure_names: list[str] | None = None) -> str:
    """The report page as one string."""
    payload = build_payload(scan, figure_names)
    scenario = scan.run.get("scenario") or {}
    name = scenario.get("name") if isinstance(scenario, dict) else None
    title = f"CT scan: {name or scan.out_dir.name}"
    parts = {
        "TITLE": html.escape(title),
        "CSS": _asset("report.css", "</style"),
        "JS": _asset("report.js", "</script"),
        "DATA": _script_json(payload),
    }
    template = (ASSETS / "report.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{(TITLE|CSS|JS|DATA)\}\}", lambda mt: parts[mt.group(1)], template)


# --------------------------------------------------------------------------------------
# Static figures (matplotlib, Agg)


def _fig_spread_map(scan: Scan, sc, plt):
    lm = _layer_map_arrays(scan)
    if not lm:
        return None
    srcs = list(lm)
    fig, axes = plt.subplots(2, 1, figsize=(10, 1.2 + 0.9 * len(srcs)), squeeze=False)
    for ax, col in zip(axes[:, 0], ("spread", "spread_centered"), strict=True):
        data = np.array([lm[s].get(col, np.full(len(scan.layers), np.nan)) for s in srcs])
        im = ax.imshow(data, aspect="auto", cmap=sc.sequential_cmap(), interpolation="nearest")
        _label_axes(ax, scan.layers, srcs)
        ax.set_title(
            f"{LABELS[col].capitalize()} (max \u2212 min over references), mean over user turns"
        )
        fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    axes[-1, 0].set_xlabel("layer")
    return fig


def _fig_user_vs_assistant(scan: Scan, sc, plt):
    means = role_means(scan)
    if not means:
        return None
    n_src = len(scan.sources)
    fig, axes = plt.subplots(
        len(means), n_src, figsize=(3.2 * n_src, 2.6 * len(means)), squeeze=False, sharex=True
    )
    for row, metric in enumerate(means):
        for col, src in enumerate(scan.sources):
            ax = axes[row, col]
            for role, curve in means[metric].get(src, {}).items():
                color = sc.NAMED["blue" if role == "user" else "orange"]
                ax.plot(scan.layers, curve, linestyle=sc.ROLE_STYLE[role], color=color, label=role)
            ax.set_title(src)
            ax.set_ylabel(f"mean {LABELS[metric]}" if col == 0 else "")
            ax.set_xlabel("layer" if row == len(means) - 1 else "")
    axes[0, 0].legend()
    fig.suptitle(
        "User vs assistant turns: similarity to the references per layer", fontweight="bold"
    )
    return fig


def _fig_final_heatmap(scan: Scan, sc, plt):
    if scan.grid is None:
        return None
    snapshots = cast(pd.DataFrame, scan.snapshots)
    last = len(snapshots) - 1
    snap = snapshots.iloc[last]
    metrics = [m for m in ("cosine", "cosine_centered") if m in scan.grid]
    n_src = len(scan.sources)
    fig, axes = plt.subplots(
        len(metrics),
        n_src,
        squeeze=False,
        figsize=(3.4 * n_src, 1.2 + 0.28 * len(scan.refs) * len(metrics)),
    )
    for row, metric in enumerate(metrics):
        for col, src in enumerate(scan.sources):
            data = scan.grid[metric][last, col].T  # (reference, layer)
            if metric == "cosine_centered":
                lim = np.nanmax(np.abs(data)) if np.isfinite(data).any() else 1.0
                kw = {"cmap": sc.diverging_cmap(), "vmin": -lim, "vmax": lim}
            else:
                kw = {"cmap": sc.sequential_cmap()}
            ax = axes[row, col]
            im = ax.imshow(data, aspect="auto", interpolation="nearest", **kw)
            _label_axes(ax, scan.layers, scan.refs if col == 0 else None)
            ax.set_title(f"{src}: {LABELS[metric]}", fontsize=9)
            ax.set_xlabel("layer" if row == len(metrics) - 1 else "")
            fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    tag = f", {snap.emotion}" if snap.emotion else ""
    fig.suptitle(f"Final snapshot (message {snap.snapshot}, {snap.role}{tag})", fontweight="bold")
    return fig


def _fig_fading_memory(scan: Scan, sc, plt):
    fx = focus(scan)
    metrics = [m for m in ("cosine", "cosine_centered") if fading_memory(scan, m)[0]]
    if not metrics or fx["layer"] not in scan.layers:
        return None
    li = scan.layers.index(fx["layer"])
    snaps = cast(pd.DataFrame, scan.snapshots)
    tags = dict(zip(snaps.snapshot, snaps.emotion, strict=True))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        turns, values = fading_memory(scan, metric)
        for i, (src, arr) in enumerate(values.items()):
            ax.plot(turns, arr[li], marker="o", ms=3.5, label=src, **sc.series_style(i))
        ax.set_xticks(turns, [f"{t}\n{tags[t]}" for t in turns], fontsize=7)
        ax.set_title(f"{LABELS[metric].capitalize()} with the matched reference")
        ax.set_xlabel("message index (user turns)")
    axes[0, 0].legend()
    fig.suptitle(f"Fading memory at layer {fx['layer']} ({fx['reason']})", fontweight="bold")
    return fig


FIGURES = {
    "spread_map": _fig_spread_map,
    "user_vs_assistant": _fig_user_vs_assistant,
    "final_snapshot_heatmap": _fig_final_heatmap,
    "fading_memory": _fig_fading_memory,
}


def write_figures(scan: Scan, fig_dir: Path) -> list[Path]:
    """PNG+SVG of each figure in ``FIGURES`` the scan has data for; rcParams are restored."""
    import matplotlib

    sc = style()
    written: list[Path] = []
    with matplotlib.rc_context():
        sc.apply_style()
        import matplotlib.pyplot as plt

        for name, draw in FIGURES.items():
            fig = draw(scan, sc, plt)
            if fig is not None:
                written += sc.save_figure(fig, fig_dir / name, layout_once=True)
    return written


def _label_axes(ax, layers: list[int], rows: list[str] | None) -> None:
    step = max(1, len(layers) // 12)
    ax.set_xticks(range(0, len(layers), step), [str(x) for x in layers[::step]])
    if rows is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(range(len(rows)), rows)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


# --------------------------------------------------------------------------------------


def write_report(out_dir: Path, *, figures: bool = True) -> Path:
    """Write ``out_dir/report.html`` (and PNG+SVG figures under ``out_dir/figures``)."""
    out_dir = Path(out_dir)
    scan = load_scan(out_dir)
    names: list[str] = []
    if figures:
        names = sorted({p.name for p in write_figures(scan, out_dir / "figures")})
    path = out_dir / "report.html"
    path.write_text(render_html(scan, names), encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(write_report(Path(sys.argv[1]), figures="--no-figures" not in sys.argv))
