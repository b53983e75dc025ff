"""Plumbing shared by the numbered experiments: standard arguments, output folders that are never
silently overwritten, activations shared with ``01_extract``, and figures in one colour scheme.

Experiments stay thin scripts of research logic; everything they would otherwise copy between
each other lives here.
"""

from __future__ import annotations

import argparse
import contextvars
import functools
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmct.core.models import model_slug
from llmct.emotion.extract import (
    Extraction,
    activation_folder,
    add_extract_args,
    check_layer_values,
    check_store,
    ensure_extraction,
    expected_identity,
    extract,
    load_model_from_args,
    parse_shard,
    positive_int,
    select_stimuli,
)
from llmct.errors import RUN_NAME, LLMCTError, OneLineParser, UsageError, report_errors
from llmct.io import headline as hl
from llmct.io.distributed import World, barrier, world
from llmct.style import style

if TYPE_CHECKING:
    import pandas as pd

_STYLE = style()  # visualization/figures/style_config.py: the one place for colours
#: Okabe-Ito colours by name (aliases kept for the experiments' figures).
OKABE_ITO = {**_STYLE.NAMED, "bluish_green": _STYLE.NAMED["green"],
             "reddish_purple": _STYLE.NAMED["purple"], "sky_blue": _STYLE.NAMED["sky"]}
PALETTE = list(_STYLE.OKABE_ITO)
SOURCE_COLOURS = dict(_STYLE.SOURCE_COLOURS)


# -- one-line errors ---------------------------------------------------------------------------

_RUN_NAME = RUN_NAME
#: Outputs opened during the current experiment run (committed when it returns).
_OPEN_OUTPUTS: contextvars.ContextVar[list | None] = contextvars.ContextVar("llmct_outputs",
                                                                          default=None)


def experiment_main(fn: Callable) -> Callable:
    """Decorator for an experiment's ``main(argv)``: errors are reported under the experiment's
    name, and every :class:`Outputs` it opens is written atomically -- its files go to a staging
    folder that is moved into place when ``main`` returns and deleted if it raises, so an error
    never leaves a half-written results folder."""
    file = fn.__globals__.get("__file__")
    name = Path(file).resolve().parent.name if file else None
    exp_dir = Path(file).resolve().parent if file else None

    @functools.wraps(fn)
    def wrapper(argv=None):
        run_token = _RUN_NAME.set(name or _RUN_NAME.get())
        out_token = _OPEN_OUTPUTS.set([])
        try:
            try:
                result = fn(argv)
            except BaseException:
                for out in _OPEN_OUTPUTS.get() or []:
                    out.discard()
                raise
            for out in _OPEN_OUTPUTS.get() or []:
                out.commit()
                if exp_dir is not None and any(p.suffix == ".csv" for p in out.written):
                    write_headline_for(exp_dir, out.folder)
            return result
        finally:
            _OPEN_OUTPUTS.reset(out_token)
            _RUN_NAME.reset(run_token)

    return wrapper


# -- the experiment contract: headline.csv --------------------------------------------------------

def experiment_headline(exp_dir: Path):
    """The module ``exp_dir/headline.py`` (``INPUTS`` and ``claims(folder)``), or None when the
    experiment declares no headline. Loaded by path: experiment folders are not packages."""
    path = Path(exp_dir) / "headline.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"llmct_headline_{Path(exp_dir).name}", path)
    if spec is None or spec.loader is None:
        raise LLMCTError(f"{path}: cannot be loaded as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for attr in ("INPUTS", "claims"):
        if not hasattr(module, attr):
            raise LLMCTError(f"{path}: an experiment's headline.py must define {attr}")
    return module


def write_headline_for(exp_dir: Path, folder: Path) -> Path | None:
    """Write ``folder/headline.csv`` from the results in ``folder`` with the experiment's
    ``headline.claims`` (contract: :mod:`llmct.io.headline`). A result file the headline needs
    but the folder lacks (e.g. a run on other stimulus sets) is reported on stderr and nothing is
    written; returns the path written, or None."""
    module = experiment_headline(exp_dir)
    if module is None:
        return None
    try:
        claims, notes = module.claims(Path(folder))
    except (hl.Missing, KeyError, ValueError, IndexError) as exc:
        print(f"{Path(exp_dir).name}: no headline.csv in {folder}: {exc}", file=sys.stderr)
        return None
    for note in notes:
        print(f"{Path(exp_dir).name}: headline: {note}", file=sys.stderr)
    return hl.write_headline(folder, Path(exp_dir).name, hl.model_of(Path(folder)), claims)


def run_main(main: Callable, file: str | Path | None = None, argv: Sequence[str] | None = None
             ) -> int:
    """Run an experiment's ``main(argv)`` as a command: llmct's own errors, file-system errors and
    encoding errors print one line ``NN_name: error: PROBLEM`` on stderr and give exit status 2
    (set ``LLMCT_TRACEBACK=1`` to see the traceback instead). ``file`` is the experiment's
    ``__file__`` (its folder names it). Returns the exit status for :func:`sys.exit`.
    """
    name = Path(file).resolve().parent.name if file else (_RUN_NAME.get() or "llmct")
    return report_errors(name, lambda: main(None if argv is None else list(argv)))


def experiment_parser(description: str, *, sets: Sequence[str], prompt: str = "fewshot"
                      ) -> argparse.ArgumentParser:
    """The arguments every experiment takes: the extraction options plus ``--out``/``--overwrite``."""
    parser = OneLineParser(description=description)
    add_extract_args(parser, sets=sets, prompt=prompt)
    parser.add_argument("--out", default=None,
                        help="results folder (default: experiments/NN_name/outputs/<model-slug>/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing result files (activations always resume instead)")
    return parser


def out_dir_for(exp_dir: Path, args) -> Path:
    return Path(args.out) if args.out else Path(exp_dir) / "outputs" / model_slug(args.model)


V1_STORY_SETS = ("stories", "neutral_dialogues")


def story_sets(args) -> tuple[str, str]:
    """``(stories set, neutral set)`` named by ``--sets`` in the story experiments (09, 10): v1
    ``stories neutral_dialogues`` (default) or v2 ``stories_v2 neutral_stories``.

    Raises :class:`LLMCTError` unless exactly two sets are named."""
    if len(args.sets) != 2:
        raise LLMCTError(f"--sets takes two names, the stories and the neutral texts (e.g. "
                         f"'stories_v2 neutral_stories'); got {args.sets}")
    return args.sets[0], args.sets[1]


def story_out_dir(exp_dir: Path, args) -> Path:
    """Results folder of a story experiment: v1 sets in ``outputs/<model-slug>/``, any other
    pair in ``outputs/<model-slug>/<stories set>/`` (``--out`` wins), so v1 and v2 sit side by
    side."""
    base = out_dir_for(exp_dir, args)
    sets = story_sets(args)
    return base if args.out or sets == V1_STORY_SETS else base / sets[0]


def lazy_model(args) -> Callable[[], tuple]:
    """A loader that loads ``--model`` (with :func:`load_model_from_args`) on its first call and
    returns the same ``(model, tokenizer)`` afterwards: experiments that may find every
    activation stored never load the model."""
    return functools.cache(lambda: load_model_from_args(args))


def activation_dir_for(exp_dir: Path, args, prompt: str | None = None) -> Path:
    """The store of ``prompt`` under ``--activations ROOT``, by default under 01_extract's
    ``outputs/<model-slug>/activations/`` (shared by all experiments; see
    :func:`llmct.emotion.extract.activation_folder`)."""
    root = Path(args.activations) if args.activations else (
        Path(exp_dir).parent / "01_extract" / "outputs" / model_slug(args.model) / "activations")
    return activation_folder(root, prompt or args.prompt, args.stimuli)


class Outputs:
    """A results folder whose files are written once: existing results are refused, not replaced,
    unless ``overwrite``. Call :meth:`claim` with every file name *before* computing, so a run
    fails in its first second instead of after an hour.

    Inside an :func:`experiment_main` run the files are written to a staging folder next to
    ``folder`` and moved into it only when the run returns (:meth:`commit`); an error deletes
    them (:meth:`discard`), so a failed run leaves no half-written results. Outside one, files
    are written in place.
    """

    def __init__(self, folder: str | Path, overwrite: bool = False) -> None:
        self.folder = Path(folder)
        self.overwrite = overwrite
        self.written: list[Path] = []
        self._staging: Path | None = None
        registry = _OPEN_OUTPUTS.get()
        self.staged = registry is not None
        if registry is not None:
            registry.append(self)

    def _check_folder(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise UsageError(f"{self.folder} is a file, not a folder; pass another --out")

    def claim(self, names: Sequence[str]) -> None:
        self._check_folder()
        clash = [n for n in names if (self.folder / n).exists()]
        if clash and not self.overwrite:
            raise LLMCTError(
                f"{self.folder} already holds {', '.join(clash)}; refusing to overwrite results. "
                "Pass --overwrite, or --out NEW_FOLDER to keep both."
            )
        self._target_dir()  # fails now (not after the work) if the folder cannot be written

    def _target_dir(self) -> Path:
        """Where files go now: the staging folder (created on first use) or the folder itself."""
        if not self.staged:
            self.folder.mkdir(parents=True, exist_ok=True)
            return self.folder
        if self._staging is None:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.partial-",
                                                  dir=self.folder.parent))
        return self._staging

    def path(self, name: str) -> Path:
        """The path to write result file ``name`` to (in the staging folder during a run)."""
        self._check_folder()
        final = self.folder / name
        if final.exists() and not self.overwrite and final not in self.written:
            raise LLMCTError(f"{final} exists; refusing to overwrite (pass --overwrite)")
        target = self._target_dir() / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if final not in self.written:
            self.written.append(final)
        return target

    def commit(self) -> None:
        """Move the staged files into ``folder`` (each file replaced atomically)."""
        if self._staging is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for final in self.written:
            staged = self._staging / final.relative_to(self.folder)
            if staged.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None

    def discard(self) -> None:
        """Delete the staged files (the run failed): ``folder`` is left as it was."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def record(self, name: str, info: dict) -> Path:
        """Write ``info`` as JSON (e.g. ``run.json``: what was left out and why)."""
        p = self.path(name)
        p.write_text(json.dumps(info, indent=2, default=str) + "\n")
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
    """matplotlib.pyplot with the house style applied (:func:`llmct.style.apply_style`: Agg
    backend, fonts, the Okabe-Ito palette): the one entry point of every experiment figure."""
    _STYLE.apply_style()
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
    return fig


def add_probe_args(parser):
    """Options of the emotion-probe battery (experiments 02 and 04)."""
    parser.add_argument("--exclude-labels", nargs="*", default=["neutral"],
                        help="labels left out of the emotion probes (default: neutral)")
    parser.add_argument("--transfer", nargs="*", default=None, metavar="TRAIN:TEST",
                        help="transfer pairs (default: every ordered pair of the sets present, "
                        "e.g. a->b and b->a for --stimuli a.jsonl b.jsonl; give the option with "
                        "no pairs for none)")
    parser.add_argument("--fold-seeds", type=positive_int, default=5, metavar="N",
                        help="re-score each within-set probe under N fold seeds at its quoted "
                        "layers (layer 0, argmax, first within 0.005) and report the spread "
                        "(default 5; 1 switches it off)")
    return parser


def _transfer_pairs(args) -> list[tuple[str, str]] | None:
    if args.transfer is None:
        return None
    pairs = []
    for t in args.transfer:
        a, sep, b = t.partition(":")
        if not sep or not a or not b:
            raise UsageError(f"--transfer {t!r}: expected TRAIN:TEST (two set names)")
        pairs.append((a, b))
    return pairs


def plan_probes(stimuli, args, *, name: str | None = None):
    """The probes 02/04 will fit on ``stimuli`` (:func:`llmct.analysis.probes.plan_suite`), decided before
    any activation is extracted; prints what is left out and why.

    Raises:
        UsageError: nothing can be probed (e.g. a single label), or a transfer names an absent set.
    """
    from llmct.analysis import probes

    labels, sets = [s.label for s in stimuli], [s.set for s in stimuli]
    try:
        plan = probes.plan_suite(labels, sets, transfers=_transfer_pairs(args),
                                 exclude_labels=args.exclude_labels)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    tag = name or _RUN_NAME.get() or "probes"
    for item in plan.left_out:
        where = (f"set {item['set']!r}" if "set" in item
                 else f"transfer {item['train_set']} -> {item['test_set']}")
        label = f" label {item['label']!r}" if item.get("label") else ""
        print(f"[{tag}] left out: {where}{label}: {item['reason']}", flush=True)
    if plan.empty:
        counts: dict[str, dict[str, int]] = {}
        for s in stimuli:
            counts.setdefault(s.set, {}).setdefault(s.label, 0)
            counts[s.set][s.label] += 1
        shown = "; ".join(f"{k}: " + ", ".join(f"{lab}={n}" for lab, n in v.items())
                          for k, v in counts.items())
        raise UsageError("nothing to probe: no set has 2 labels with >= 5 items each and no two "
                         f"sets share 2 such labels (items per label: {shown})")
    return plan


def run_probe_suite(ext: Extraction, stimuli, args, plan=None, peaks_out=None, *,
                    seeds_out=None, proba_out=None):
    """:func:`llmct.analysis.probes.probe_suite` on one extraction, tagged with model and prompt
    (``plan``: from :func:`plan_probes`, computed here if not given). Folds are grouped by
    ``frame_id`` where the stimuli have one (Set D: the nine versions of a frame never straddle
    training and test). ``peaks_out``: a list receiving the peak-layer intervals (see
    :func:`llmct.analysis.probes.peak_rows`); ``seeds_out``: a list receiving ``--fold-seeds`` rows (see
    :func:`llmct.analysis.probes.fold_seed_rows`); ``proba_out``: a dict receiving the probes'
    held-out probabilities."""
    from llmct.analysis import probes

    plan = plan or plan_probes(stimuli, args)
    results = probes.probe_suite(
        ext.acts, [s.label for s in stimuli], [s.set for s in stimuli], [s.text for s in stimuli],
        layers=ext.layers, n_layers=ext.n_layers, exclude_labels=args.exclude_labels, plan=plan,
        groups=[s.frame_id for s in stimuli], peaks_out=peaks_out, proba_out=proba_out,
        fold_seeds=getattr(args, "fold_seeds", 1), seeds_out=seeds_out)
    results.insert(0, "prompt", ext.manifest["prompt"])
    results.insert(0, "model", args.model)
    return results


def run_record(args, *, left_out: Sequence[dict] = (), **extra) -> dict:
    """The ``run.json`` of an experiment: its arguments, stimulus files and what was left out."""
    return {"args": {k: v for k, v in vars(args).items() if not callable(v)},
            "stimuli": args.stimuli or list(getattr(args, "sets", []) or []),
            "left_out": list(left_out), **extra}


def panel_name(frame):
    """'set_a (5-fold CV)' for within-set rows, 'set_a -> set_b' for transfer rows."""
    import numpy as np

    return np.where(frame.train_set == frame.test_set, frame.train_set + " (5-fold CV)",
                    frame.train_set + " -> " + frame.test_set)


def get_stimuli(args) -> list:
    """The validated stimuli named by ``--stimuli``/``--sets`` (at most ``--limit`` per label)."""
    return select_stimuli(args.stimuli, args.sets, args.limit)


def model_n_layers(model_name: str) -> int | None:
    """Number of blocks of ``model_name`` read from its config without loading weights (embedded
    models, local folders, Hugging Face ids in the local cache); None if unknown here."""
    from llmct.core.models import _weights_folder, embedded_model

    spec = embedded_model(model_name)
    if spec is not None:
        return spec.n_layers
    folder = _weights_folder(model_name)
    if folder is None or not (folder / "config.json").is_file():
        return None
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cfg in (config, config.get("text_config") or {}):
        for key in ("num_hidden_layers", "n_layer", "num_layers"):
            if isinstance(cfg.get(key), int):
                return cfg[key]
    return None


def check_args(args) -> None:
    """Check what can be checked before any stimulus is read or model loaded: ``--shard``,
    ``--layers`` against the model's config (when it is on this machine).

    Raises:
        UsageError: naming the option and the problem.
    """
    if getattr(args, "shard", None):
        parse_shard(args.shard)
    layers = getattr(args, "layers", None)
    if layers:
        check_layer_values(layers)
        n = model_n_layers(args.model)
        if n is not None:
            out = [x for x in layers if not -n <= x < n]
            if out:
                raise UsageError(f"--layers {' '.join(map(str, out))}: out of range; "
                                 f"{args.model!r} has {n} layers (0..{n - 1}, or -{n}..-1)")


def start_run(exp_dir: Path, args, results: Sequence[str]) -> tuple[list, Outputs]:
    """The stimuli and results folder of an experiment, with its result files claimed before any
    work (a ``--shard`` run only extracts, so it claims nothing). Options, stimuli and the output
    folder are all checked here, before any model is loaded."""
    check_args(args)
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
    expected = expected_identity(args.model, prompt=prompt, dtype=args.dtype, device=args.device)
    check_store(folder, expected)  # before the model loads: a store of another model is refused
    for parent in (folder, *folder.parents):  # a file in the way, or no write access: say so now
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--activations: {parent} is a file, not a folder")
            break
    folder.mkdir(parents=True, exist_ok=True)

    def load():
        return load_model_from_args(args)

    launched = world()
    if launched.shard and not args.shard:  # torchrun / accelerate launch: one shard per process
        return _extract_launched(folder, stimuli, args, prompt, expected, load, launched)
    if args.shard:
        model, tokenizer = load()
        summary = extract(model, tokenizer, stimuli, folder, prompt=prompt, sources=args.sources,
                          layers=args.layers or "all",
                          batch_size=args.batch_size, shard=args.shard,
                          chunk_size=args.chunk_size, progress=args.progress,
                          model_name=args.model, shared_prefix=getattr(args, "shared_prefix", True))
        print(f"shard {args.shard}: {summary.n_extracted} extracted, {summary.n_skipped} already "
              f"stored in {summary.store_dir}; run again without --shard when all shards are done")
        return None
    return ensure_extraction(folder, stimuli, load=load, prompt=prompt, sources=args.sources,
                             layers=args.layers or "all",
                             batch_size=args.batch_size, chunk_size=args.chunk_size,
                             progress=args.progress, model_name=args.model, expected=expected,
                             shared_prefix=getattr(args, "shared_prefix", True))


def stored_table(path: str | Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """The per-item (or per-pair) table of an earlier full run, for re-summarising without a model
    (05 ``--from-pairs``, 06 ``--from-items``). ``what`` names it in errors ("patching pairs").

    Raises :class:`LLMCTError` naming the file when it does not exist or lacks a column."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise LLMCTError(f"{path}: no such {what} file (written by a full run)")
    table = pd.read_csv(path)
    missing = set(columns) - set(table.columns)
    if missing:
        raise LLMCTError(f"{path}: not a {what} file (missing columns {sorted(missing)})")
    return table


def resummary_outputs(exp_dir: Path, args, results: Sequence[str], table: str) -> Outputs:
    """The outputs of a re-summary: every result file of the experiment but its stored ``table``
    (claimed, so an existing result is replaced only with ``--overwrite``)."""
    out = Outputs(out_dir_for(exp_dir, args), args.overwrite)
    out.claim([r for r in results if r != table])
    return out


def _extract_launched(folder: Path, stimuli, args, prompt: str, expected: dict, load,
                      launched: World) -> Extraction | None:
    """Under a launcher of N processes: extract shard ``rank/N`` (if anything of it is missing),
    wait for every process, then merge on the main process; the others return None."""
    from llmct.emotion.extract import load_extraction, missing_items

    shard = launched.shard
    assert shard is not None
    if missing_items(folder, stimuli, shard):
        model, tokenizer = load()
        summary = extract(model, tokenizer, stimuli, folder, prompt=prompt, sources=args.sources,
                          layers=args.layers or "all", batch_size=args.batch_size, shard=shard,
                          chunk_size=args.chunk_size, progress=args.progress,
                          model_name=args.model, shared_prefix=getattr(args, "shared_prefix", True))
        print(f"[rank {shard[0]}/{shard[1]}] {summary.n_extracted} extracted into "
              f"{summary.store_dir}", flush=True)
    barrier()
    if not launched.is_main:
        return None
    return load_extraction(folder, stimuli, expected=expected)


__all__ = [
    "OKABE_ITO",
    "PALETTE",
    "SOURCE_COLOURS",
    "OneLineParser",
    "Outputs",
    "activation_dir_for",
    "add_probe_args",
    "check_args",
    "experiment_main",
    "experiment_parser",
    "get_activations",
    "get_stimuli",
    "model_n_layers",
    "plan_probes",
    "out_dir_for",
    "resummary_outputs",
    "stored_table",
    "plot_layer_panels",
    "panel_name",
    "pyplot",
    "run_main",
    "run_probe_suite",
    "run_record",
]
