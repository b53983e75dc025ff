"""Plumbing shared by the numbered experiments: standard arguments, output folders that are never
silently overwritten, activations shared with ``01_extract``, and figures in one colour scheme.

Experiments stay thin scripts of research logic; everything they would otherwise copy between
each other lives here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .errors import LLMCTError
from .extract import (
    Extraction,
    activation_folder,
    add_extract_args,
    ensure_extraction,
    extract,
    load_model_from_args,
    select_stimuli,
)
from .models import model_slug
from .style import style

_STYLE = style()  # visualization/figures/style_config.py: the one place for colours
#: Okabe-Ito colours by name (aliases kept for the experiments' figures).
OKABE_ITO = {**_STYLE.NAMED, "bluish_green": _STYLE.NAMED["green"],
             "reddish_purple": _STYLE.NAMED["purple"], "sky_blue": _STYLE.NAMED["sky"]}
PALETTE = list(_STYLE.OKABE_ITO)
SOURCE_COLOURS = dict(_STYLE.SOURCE_COLOURS)


def experiment_parser(description: str, *, sets: Sequence[str], prompt: str = "fewshot"
                      ) -> argparse.ArgumentParser:
    """The arguments every experiment takes: the extraction options plus ``--out``/``--overwrite``."""
    parser = argparse.ArgumentParser(description=description)
    add_extract_args(parser, sets=sets, prompt=prompt)
    parser.add_argument("--out", default=None,
                        help="results folder (default: experiments/NN_name/outputs/<model-slug>/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing result files (activations always resume instead)")
    return parser


def out_dir_for(exp_dir: Path, args) -> Path:
    return Path(args.out) if args.out else Path(exp_dir) / "outputs" / model_slug(args.model)


def activation_dir_for(exp_dir: Path, args, prompt: str | None = None) -> Path:
    """The store of ``prompt`` under ``--activations ROOT``, by default under 01_extract's
    ``outputs/<model-slug>/activations/`` (shared by all experiments; see
    :func:`llmct.extract.activation_folder`)."""
    root = Path(args.activations) if args.activations else (
        Path(exp_dir).parent / "01_extract" / "outputs" / model_slug(args.model) / "activations")
    return activation_folder(root, prompt or args.prompt, args.stimuli)


class Outputs:
    """A results folder whose files are written once: existing results are refused, not replaced,
    unless ``overwrite``. Call :meth:`claim` with every file name *before* computing, so a run
    fails in its first second instead of after an hour."""

    def __init__(self, folder: str | Path, overwrite: bool = False) -> None:
        self.folder = Path(folder)
        self.overwrite = overwrite
        self.written: list[Path] = []

    def claim(self, names: Sequence[str]) -> None:
        clash = [n for n in names if (self.folder / n).exists()]
        if clash and not self.overwrite:
            raise LLMCTError(
                f"{self.folder} already holds {', '.join(clash)}; refusing to overwrite results. "
                "Pass --overwrite, or --out NEW_FOLDER to keep both."
            )
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        p = self.folder / name
        if p.exists() and not self.overwrite and p not in self.written:
            raise LLMCTError(f"{p} exists; refusing to overwrite (pass --overwrite)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.written.append(p)
        return p

    def csv(self, name: str, frame) -> Path:
        p = self.path(name)
        frame.to_csv(p, index=False, float_format="%.6g")
        return p

    def figure(self, fig, stem: str) -> list[Path]:
        """Save ``fig`` as ``stem.png`` and ``stem.svg`` and close it."""
        import matplotlib.pyplot as plt

        paths = [self.path(f"{stem}.png"), self.path(f"{stem}.svg")]
        fig.savefig(paths[0], dpi=150, bbox_inches="tight")
        fig.savefig(paths[1], bbox_inches="tight")
        plt.close(fig)
        return paths


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_layer_panels(frame, *, panel: str, style: str = "control", y: str = "auroc",
                      ylabel: str = "macro AUROC", title: str = "", ylim=None, hline=None,
                      markers=None):
    """One panel per value of ``panel``; per-layer curves coloured by ``source`` and dashed by
    ``style`` (first value solid). Rows with ``layer < 0`` (layer-free baselines, e.g. text-only)
    become horizontal grey lines. ``markers``: {(panel, source): layer} points to highlight."""
    plt = pyplot()
    panels = list(dict.fromkeys(frame[panel]))
    styles = list(dict.fromkeys(frame.loc[frame.layer >= 0, style]))
    dashes = ["-", ":", "--", "-."]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), sharey=True,
                             squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        sub = frame[frame[panel] == name]
        for (source, st), grp in sub[sub.layer >= 0].groupby(["source", style], sort=False):
            grp = grp.sort_values("layer")
            k = styles.index(st)
            ax.plot(grp.layer, grp[y], color=SOURCE_COLOURS.get(source, OKABE_ITO["black"]),
                    linestyle=dashes[k % 4], linewidth=1.6 if k == 0 else 1.0,
                    label=f"{source}" + ("" if k == 0 else f" ({st})"))
            if markers and (name, source) in markers and k == 0:
                layer = markers[(name, source)]
                ax.plot([layer], grp.set_index("layer")[y].loc[[layer]], marker="o",
                        color=SOURCE_COLOURS.get(source, OKABE_ITO["black"]))
        for k, (_, row) in enumerate(sub[sub.layer < 0].iterrows()):
            ax.axhline(row[y], color=OKABE_ITO["grey"], linestyle=dashes[(k + 2) % 4],
                       linewidth=1.2, label=f"{row[style]}")
        if hline is not None:
            ax.axhline(hline, color=OKABE_ITO["black"], linewidth=0.6)
        ax.set_title(str(name), fontsize=10)
        ax.set_xlabel("layer")
        if ylim:
            ax.set_ylim(*ylim)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def add_probe_args(parser):
    """Options of the emotion-probe battery (experiments 02 and 04)."""
    parser.add_argument("--exclude-labels", nargs="*", default=["neutral"],
                        help="labels left out of the emotion probes (default: neutral)")
    parser.add_argument("--transfer", nargs="*", default=["set_a:set_b", "set_b:set_a"],
                        metavar="TRAIN:TEST", help="transfer pairs (pairs of absent sets skipped)")
    return parser


def run_probe_suite(ext: Extraction, stimuli, args):
    """:func:`llmct.probes.probe_suite` on one extraction, tagged with model and prompt."""
    from . import probes

    transfers = [tuple(t.split(":", 1)) for t in args.transfer]
    results = probes.probe_suite(
        ext.acts, [s.label for s in stimuli], [s.set for s in stimuli], [s.text for s in stimuli],
        layers=ext.layers, n_layers=ext.n_layers, transfers=transfers,
        exclude_labels=args.exclude_labels)
    if results.empty:
        raise LLMCTError("no set has two labels with >= 5 items each: nothing to probe")
    results.insert(0, "prompt", ext.manifest["prompt"])
    results.insert(0, "model", args.model)
    return results


def panel_name(frame):
    """'set_a (5-fold CV)' for within-set rows, 'set_a -> set_b' for transfer rows."""
    import numpy as np

    return np.where(frame.train_set == frame.test_set, frame.train_set + " (5-fold CV)",
                    frame.train_set + " -> " + frame.test_set)


def get_stimuli(args) -> list:
    return select_stimuli(args.stimuli, args.sets, args.limit)


def start_run(exp_dir: Path, args, results: Sequence[str]) -> tuple[list, Outputs]:
    """The stimuli and results folder of an experiment, with its result files claimed before any
    work (a ``--shard`` run only extracts, so it claims nothing)."""
    stimuli = get_stimuli(args)
    out = Outputs(out_dir_for(exp_dir, args), args.overwrite)
    if not getattr(args, "shard", None):
        out.claim(results)
    return stimuli, out


def get_activations(exp_dir: Path, args, stimuli, prompt: str | None = None
                    ) -> Extraction | None:
    """Activations of ``stimuli`` under ``prompt``: loaded from the shared folder, extracting what
    is missing first. With ``--shard i/n`` only that shard is extracted and None is returned
    (analyses run once every shard has finished)."""
    prompt = prompt or args.prompt
    folder = activation_dir_for(exp_dir, args, prompt)

    def load():
        return load_model_from_args(args)

    if args.shard:
        model, tokenizer = load()
        summary = extract(model, tokenizer, stimuli, folder, prompt=prompt, sources=args.sources,
                          layers=args.layers or "all",
                          batch_size=args.batch_size, shard=args.shard,
                          chunk_size=args.chunk_size, progress=args.progress,
                          model_name=args.model)
        print(f"shard {args.shard}: {summary.n_extracted} extracted, {summary.n_skipped} already "
              f"stored in {summary.store_dir}; run again without --shard when all shards are done")
        return None
    return ensure_extraction(folder, stimuli, load=load, prompt=prompt, sources=args.sources,
                             layers=args.layers or "all",
                             batch_size=args.batch_size, chunk_size=args.chunk_size,
                             progress=args.progress, model_name=args.model)


__all__ = [
    "OKABE_ITO",
    "PALETTE",
    "SOURCE_COLOURS",
    "Outputs",
    "activation_dir_for",
    "add_probe_args",
    "experiment_parser",
    "get_activations",
    "get_stimuli",
    "out_dir_for",
    "plot_layer_panels",
    "panel_name",
    "pyplot",
    "run_probe_suite",
]
