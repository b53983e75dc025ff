"""The CT scan over a population of conversations: the conversation is the unit.

``llmct scan FOLDER`` (or several files) finds every scenario (a folder's sub-folders are
searched too), validates each before the model loads, partitions them into **pools** of
scenarios with identical ``references``, ``baseline``, ``model`` and ``capture`` blocks, loads
the model once, and scans every pool. A pool of two or more conversations gets its own
population folder: each conversation in its own subfolder (the usual files of one scan) and a
population summary next to them:

- ``population_findings.json`` / ``.csv``: each finding pooled over conversations (the mean of the
  per-conversation values with a percentile bootstrap over conversations, ``ci_unit`` =
  ``conversations``; n is small, ~14-17, and the files say so), with its verdict;
- ``per_conversation.csv``: one row per conversation x finding x quantity (long form), and
  ``comparison.csv``: one row per conversation, the headline value and verdict of each finding;
- ``population.json``: files, model, timings; ``report.html``: the page comparing conversations
  (self-contained, offline, every text escaped), linking each conversation's own report.

A scenario alone in its pool is not pooled: it is scanned as one conversation (an ordinary scan
folder). With one pool the output folder *is* that pool's population folder; with several,
``<out>/<pool label>/`` holds each pool (label: the pool's common parent folder name, else
``pool-<k>``), ``<out>/<scenario name>/`` each scenario scanned alone, and ``<out>/pools.json``
and ``<out>/report.html`` index them (which blocks separate the pools).

    from llmct.scan.population import run_population
    run_population(["stimuli/scenarios/population/"], out="outputs/population")
    run_population(["stimuli/scenarios/"], out="outputs/all")  # population + rollercoaster alone
"""

from __future__ import annotations

import html
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from llmct._version import __version__
from llmct.core.models import load_model, model_slug
from llmct.io.store import atomic_dir, output_dir_for
from llmct.scan.findings import SPECS, pool_findings
from llmct.scan.scenario import Scenario, ScenarioError, load_scenario
from llmct.style import VERDICT_COLOURS

ASSETS = Path(__file__).with_name("report_assets")
SUFFIXES = (".yaml", ".yml")
#: The blocks that must be identical for conversations to be pooled, in the order they are named.
BLOCKS = ("references", "baseline", "model", "capture")


def scenario_paths(inputs: list[str | Path]) -> list[Path]:
    """The scenario files named by ``inputs``: a folder stands for every ``*.yaml``/``*.yml`` file
    in it or in its sub-folders, recursively (sorted by path; names starting with '.' are
    skipped), a file for itself.

    Raises:
        ScenarioError: a path that does not exist, a folder without scenario files, or the same
            file given twice.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise ScenarioError(f"{p}: folder holds no scenario files (*.yaml, *.yml), "
                                    "sub-folders included")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise ScenarioError(f"scenario file {p} does not exist")
    seen: dict[Path, Path] = {}
    for p in out:
        key = p.resolve()
        if key in seen:
            raise ScenarioError(f"{p}: given twice (also as {seen[key]})")
        seen[key] = p
    return out


def load_population(paths: list[Path]) -> list[tuple[Path, Scenario]]:
    """Validate every scenario (before any model loads): each file's own checks, at least two
    files, and unique names (each names a folder of the output).

    Raises:
        ScenarioError: any file's own error (file, line, key), fewer than two files, or a name
            used twice (naming both files).
    """
    if len(paths) < 2:
        raise ScenarioError(f"a population needs at least 2 scenarios to pool, got {len(paths)} "
                            f"({', '.join(map(str, paths)) or 'none'}); scan one file on its own")
    loaded = [(p, load_scenario(p)) for p in paths]
    names: dict[str, Path] = {}
    for p, sc in loaded:
        if sc.name in names:
            raise ScenarioError(f"{p}: name {sc.name!r} is also the name of {names[sc.name]} "
                                "(each conversation needs its own subfolder)")
        names[sc.name] = p
    return loaded


@dataclass
class Pool:
    """Scenarios with identical ``references``, ``baseline``, ``model`` and ``capture`` blocks.

    ``members``: (file, scenario) in input order; ``label``: its folder in a several-pool output
    (a lone scenario's name); ``differs``: for each other pool's label, the blocks (in
    :data:`BLOCKS` order) in which this pool differs from it.
    """

    members: list[tuple[Path, Scenario]]
    label: str = ""
    differs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def pooled(self) -> bool:
        """Two or more conversations: pooled; one: scanned alone."""
        return len(self.members) >= 2

    @property
    def first(self) -> Scenario:
        return self.members[0][1]

    def alone_blocks(self) -> list[str]:
        """The blocks in which this pool differs from every other pool ([] if none is common)."""
        common = [b for b in BLOCKS if all(b in v for v in self.differs.values())]
        return common if self.differs else []


def differing_blocks(a: Scenario, b: Scenario) -> list[str]:
    """The blocks of :data:`BLOCKS` in which ``a`` and ``b`` differ, in that order."""
    return [key for key in BLOCKS if getattr(a, key) != getattr(b, key)]


def partition_pools(loaded: list[tuple[Path, Scenario]]) -> list[Pool]:
    """Group scenarios into pools by identical blocks (in order of first appearance), give each a
    unique label and record which blocks separate each pair of pools.

    Raises:
        ScenarioError: no two scenarios share all four blocks (naming the first two files and the
            first block in which they differ).
    """
    pools: list[Pool] = []
    for p, sc in loaded:
        home = next((q for q in pools if not differing_blocks(q.first, sc)), None)
        if home is None:
            pools.append(Pool([(p, sc)]))
        else:
            home.members.append((p, sc))
    if not any(q.pooled for q in pools):
        (p1, s1), (p2, s2) = loaded[0], loaded[1]
        key = differing_blocks(s1, s2)[0]
        more = f"; no two of the {len(loaded)} scenarios share them" if len(loaded) > 2 else ""
        raise ScenarioError(
            f"{p2} ({s2.line_of(key)}): its {key!r} block differs from {p1}'s; a population is "
            "pooled only over conversations scanned against the same references, baseline, "
            f"model and capture{more} (scan each file on its own)")
    for label, pool in zip(_pool_labels(pools), pools, strict=True):
        pool.label = label
    for pool in pools:
        pool.differs = {q.label: differing_blocks(pool.first, q.first)
                        for q in pools if q is not pool}
    return pools


def _pool_labels(pools: list[Pool]) -> list[str]:
    """A lone scenario's name (unique already), else the pool's common parent folder name, else
    ``pool-<k>`` (k counts pools from 1), suffixed ``-2``, ``-3``, ... until unique."""
    taken = {q.first.name for q in pools if not q.pooled}
    labels = []
    for k, pool in enumerate(pools, 1):
        if not pool.pooled:
            labels.append(pool.first.name)
            continue
        parents = {p.resolve().parent for p, _ in pool.members}
        label = parents.pop().name if len(parents) == 1 else ""
        label = label if label and label not in taken else f"pool-{k}"
        base, n = label, 1
        while label in taken:
            n += 1
            label = f"{base}-{n}"
        taken.add(label)
        labels.append(label)
    return labels


def _and(words: list[str]) -> str:
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def pool_note(pool: Pool) -> str:
    """Why a lone scenario is not pooled ('' for a pooled pool)."""
    if pool.pooled:
        return ""
    blocks = pool.alone_blocks()
    if not blocks:
        return ("not pooled: no other scenario shares all of its references, baseline, model "
                "and capture blocks")
    many = len(blocks) > 1
    return (f"not pooled: its {_and(blocks)} block{'s' if many else ''} "
            f"differ{'' if many else 's'} from every other scenario's")


def describe_pool(pool: Pool) -> str:
    """The line printed for a pool before scanning, e.g. ``pool 'population': 17 conversations``
    or ``'rollercoaster' scanned alone (not pooled: its references and baseline differ ...)``."""
    if pool.pooled:
        folders = sorted({str(p.parent) for p, _ in pool.members})
        return f"pool {pool.label!r}: {len(pool.members)} conversations ({', '.join(folders)})"
    return f"{pool.label!r} scanned alone ({pool_note(pool)}): {pool.members[0][0]}"


def check_one_model(pools: list[Pool], model_name: str | None) -> None:
    """Every pool is scanned with one model load: the model id (unless ``model_name`` overrides
    it), dtype and device must agree across pools.

    Raises:
        ScenarioError: naming the file, the line of its ``model`` block and the first file.
    """
    def spec(sc: Scenario) -> tuple[str, str, str]:
        return (model_name or sc.model.id, sc.model.dtype, sc.model.device)

    (p0, s0) = pools[0].members[0]
    for pool in pools[1:]:
        p, sc = pool.members[0]
        if spec(sc) != spec(s0):
            raise ScenarioError(
                f"{p} ({sc.line_of('model')}): its model {spec(sc)} (id, dtype, device) differs "
                f"from {p0}'s {spec(s0)}; the model is loaded once for every pool, so scan them "
                "separately")


def default_population_dir(paths: list[Path], model_name: str, nested: bool = False) -> Path:
    """``outputs/scans/population-<stem>/<model slug>``: the stem is the files' common parent
    folder name, else 'population' (``nested``, i.e. several pools: their common ancestor's)."""
    parents = {p.parent.name for p in paths}
    if len(parents) == 1:
        stem = parents.pop()
    elif nested:
        stem = Path(os.path.commonpath([str(p.resolve().parent) for p in paths])).name
    else:
        stem = ""
    return Path("outputs") / "scans" / f"population-{stem or 'population'}" / model_slug(model_name)


@dataclass
class _Run:
    """What every pool of one run shares: the model loaded once, its name and layer count, the
    options, and the reference cache (see :func:`run_population`)."""

    model_and_tokenizer: tuple
    name: str
    n_layers: int
    report: bool
    figures: bool
    n_boot: int
    chat_template: str | Path | None
    cache: dict = field(default_factory=dict)

    def scan(self, sc: Scenario, out: Path) -> Path:
        """One conversation's ordinary scan folder at ``out`` (HTML report, figures if asked)."""
        from llmct.scan.run import run_scan

        return run_scan(sc, model_name=self.name, out=out, explicit_out=True,
                        model_and_tokenizer=self.model_and_tokenizer,
                        report=(True if self.figures else "html") if self.report else False,
                        reference_cache=self.cache, chat_template=self.chat_template)


def run_population(inputs: list[str | Path], *, model_name: str | None = None,
                   out: str | Path | None = None, overwrite: bool = False, report: bool = True,
                   model_and_tokenizer=None, n_boot: int = 2000, figures: bool = False,
                   chat_template: str | Path | None = None,
                   explicit_out: bool | None = None) -> Path:
    """Scan every conversation of ``inputs`` with one model load and pool the findings per pool.

    Returns the folder written (``out``, or a default under ``outputs/scans/``). With one pool
    (:func:`partition_pools`) each conversation is in ``<folder>/<scenario name>/`` beside the
    population files; with several, each pool is in ``<folder>/<pool label>/`` (the same
    layout), each lone scenario's scan in ``<folder>/<scenario name>/``, and ``pools.json`` and
    ``report.html`` index them. One line per pool is printed (stderr) before the model loads.
    Everything that can be checked (every file, unique names, the pools, one model for all, the
    output folder; once the model is loaded, each conversation's context length and each pool's
    layers) is checked before the first conversation is scanned; the folder is written
    atomically. The reference cache is shared by all pools: it is keyed by the texts themselves
    (with role, system prompt, sources, layers and read-out position), so pools with different
    references never share states, and identical texts are computed once. Each conversation's
    report is its HTML page; its static PNG/SVG figures only with ``figures`` (they take most of
    a scan's time on CPU). ``chat_template``: a template file used for every render (as
    ``llmct scan --chat-template``). ``explicit_out`` (default: ``out is not None``): an existing
    ``out`` is an error; otherwise it gets a timestamped sibling (``llmct.io.store.output_dir_for``).

    Raises:
        ScenarioError: see :func:`scenario_paths`, :func:`load_population`,
            :func:`partition_pools`, :func:`check_one_model`; a conversation that does not fit
            the model's context, or layers the model lacks (nothing is scanned).
        StoreError: ``out`` exists and ``overwrite`` is False.
    """
    t0 = time.perf_counter()
    paths = scenario_paths(inputs)
    pools = partition_pools(load_population(paths))
    check_one_model(pools, model_name)
    first = pools[0].first
    name = model_name or first.model.id
    explicit = (out is not None) if explicit_out is None else explicit_out
    out_dir = output_dir_for(out or default_population_dir(paths, name, nested=len(pools) > 1),
                             overwrite=overwrite, explicit=explicit)
    for pool in pools:
        print(describe_pool(pool), file=sys.stderr, flush=True)
    t = time.perf_counter()
    if model_and_tokenizer is None:
        model_and_tokenizer = load_model(name, dtype=first.model.dtype, device=first.model.device)
    timings = {"model_load": round(time.perf_counter() - t, 3)}
    run = _prepare(model_and_tokenizer, pools, name=name, report=report, figures=figures,
                   n_boot=n_boot, chat_template=chat_template)
    with atomic_dir(out_dir, overwrite) as tmp:
        if len(pools) == 1:
            _scan_pool(pools[0], tmp, run, timings, t0)
        else:
            _scan_pools(pools, tmp, run, timings, t0)
    return out_dir


def _prepare(model_and_tokenizer: tuple, pools: list[Pool], **options) -> _Run:
    """Use the chat template, then check that every conversation fits the model's context and
    every pool's layers exist, before anything is scanned.

    Raises:
        ScenarioError: naming the file (layers) or the scenario line (context).
    """
    from llmct.core.arch import get_adapter
    from llmct.core.capture import resolve_layers
    from llmct.errors import CaptureError
    from llmct.scan.run import check_context

    model, tokenizer = model_and_tokenizer
    if options["chat_template"] is not None:
        from llmct.core.chat import use_chat_template

        use_chat_template(tokenizer, options["chat_template"])
    n_layers = get_adapter(model).n_layers(model)
    for pool in pools:
        path, sc = pool.members[0]
        try:
            resolve_layers(sc.capture.layers, n_layers)
        except CaptureError as exc:
            raise ScenarioError(f"{path}: capture.layers ({sc.line_of('capture', 'layers')}): "
                                f"{exc}") from exc
        for _, sc in pool.members:
            check_context(model, tokenizer, sc)
    return _Run(model_and_tokenizer, n_layers=n_layers, **options)


def _scan_pool(pool: Pool, folder: Path, run: _Run, timings: dict[str, float], t0: float,
               tag: str = "") -> None:
    """Scan each conversation of ``pool`` into ``folder/<name>/`` and write the population
    files into ``folder``. ``timings`` (seconds) gains ``conversations`` and ``total`` (since
    ``t0``, a ``time.perf_counter()`` value); ``tag`` prefixes the progress lines."""
    per_conv: dict[str, list[dict]] = {}
    conv_time: dict[str, float] = {}
    for k, (path, sc) in enumerate(pool.members):
        t = time.perf_counter()
        print(f"[scan] {tag}{k + 1}/{len(pool.members)} {path}", file=sys.stderr, flush=True)
        sub = run.scan(sc, folder / sc.name)
        per_conv[sc.name] = json.loads((sub / "findings.json").read_text(encoding="utf-8"))
        conv_time[sc.name] = round(time.perf_counter() - t, 3)
    first = pool.first
    run0 = json.loads((folder / first.name / "run.json").read_text(encoding="utf-8"))
    pooled = pool_findings(per_conv, n_refs=len(first.references),
                           n_layers=len(run0.get("layers") or []) or run.n_layers,
                           position=first.capture.position, n_boot=run.n_boot)
    timings = {**timings, "conversations": round(sum(conv_time.values()), 3),
               "total": round(time.perf_counter() - t0, 3)}
    write_population_tables(folder, pooled, per_conv,
                            _population_info(pool, run0, run, conv_time, timings))
    if run.report:
        write_population_report(folder)


def _population_info(pool: Pool, run0: dict, run: _Run, conv_time: dict[str, float],
                     timings: dict[str, float]) -> dict:
    """The content of ``population.json`` (``run0``: the first conversation's ``run.json``)."""
    first = pool.first
    return {
        "kind": "llmct.scan.population", "model": run.name,
        "model_fingerprint": run0.get("model_fingerprint"), "position": first.capture.position,
        "sources": run0.get("sources"), "layers": run0.get("layers"),
        "n_conversations": len(pool.members), "unit": "conversations",
        "interval": f"95% percentile bootstrap over conversations ({run.n_boot} resamples, "
                    "llmct.analysis.stats.cluster_bootstrap_mean, one value per conversation)",
        "note": "n is small: read each pooled interval beside the per-conversation values",
        "conversations": [{"name": sc.name, "file": str(p), "kind": _kind(sc.name),
                           "n_messages": len(sc.messages), "seconds": conv_time[sc.name]}
                          for p, sc in pool.members],
        "references": list(first.references), "timings": timings,
        "llmct_version": __version__,
    }


def _scan_pools(pools: list[Pool], out_dir: Path, run: _Run, timings: dict[str, float],
                t0: float) -> None:
    """Several pools: each pooled one in ``out_dir/<label>/`` (timings of its own, the shared
    model load is in ``pools.json``), each lone scenario's scan in ``out_dir/<name>/``, then
    ``pools.json`` and (with ``run.report``) the index page."""
    seconds: dict[str, float] = {}
    for pool in pools:
        t = time.perf_counter()
        if pool.pooled:
            _scan_pool(pool, out_dir / pool.label, run, {}, t, tag=f"{pool.label} ")
        else:
            print(f"[scan] {pool.label} (alone) {pool.members[0][0]}", file=sys.stderr,
                  flush=True)
            run.scan(pool.first, out_dir / pool.label)
        seconds[pool.label] = round(time.perf_counter() - t, 3)
    index_timings: dict[str, Any] = {**timings, "pools": seconds,
                                     "total": round(time.perf_counter() - t0, 3)}
    write_pools_index(out_dir, pools, run.name, index_timings)
    if run.report:
        write_pools_report(out_dir)


def write_pools_index(out_dir: Path, pools: list[Pool], model: str,
                      timings: dict) -> Path:
    """Write ``out_dir/pools.json``: per pool its label (= folder), whether it was pooled, its
    files and names, ``differs_from`` (other label -> the blocks that separate them) and the
    note of a lone scenario; ``timings`` in seconds (``pools``: label -> seconds)."""
    index = {
        "kind": "llmct.scan.pools", "model": model, "blocks": list(BLOCKS),
        "rule": "scenarios are pooled only when all of these blocks are identical; a scenario "
                "alone in its pool is scanned as one conversation",
        "n_scenarios": sum(len(q.members) for q in pools),
        "pools": [{"label": q.label, "folder": q.label, "pooled": q.pooled,
                   "n_conversations": len(q.members), "files": [str(p) for p, _ in q.members],
                   "names": [sc.name for _, sc in q.members], "differs_from": q.differs,
                   "note": pool_note(q)} for q in pools],
        "timings": timings, "llmct_version": __version__,
    }
    path = Path(out_dir) / "pools.json"
    path.write_text(json.dumps(index, indent=2), encoding="utf-8")
    return path


def _kind(name: str) -> str:
    return name.split("_", 1)[0] if "_" in name else ""


def write_population_tables(out_dir: Path, pooled: list[dict], per_conv: dict[str, list[dict]],
                            info: dict) -> None:
    """``population_findings.json/.csv``, ``per_conversation.csv``, ``comparison.csv`` and
    ``population.json`` in ``out_dir``."""
    out_dir = Path(out_dir)
    (out_dir / "population_findings.json").write_text(json.dumps(pooled, indent=2),
                                                      encoding="utf-8")
    cols = ["id", "title", "seed_claim", "value", "ci_low", "ci_high", "unit", "ci_unit",
            "n_units", "verdict", "control", "reason", "detail"]
    pd.DataFrame([{c: f.get(c) for c in cols} for f in pooled]).to_csv(
        out_dir / "population_findings.csv", index=False)
    long, wide = [], []
    for conv, findings in per_conv.items():
        row: dict[str, Any] = {"conversation": conv, "kind": _kind(conv)}
        for f in findings:
            row[f"{f['id']}"] = f.get("value")
            row[f"{f['id']}_verdict"] = f.get("verdict")
            quantities = f.get("quantities") or {}
            if not quantities:
                long.append({"conversation": conv, "kind": _kind(conv), "id": f["id"],
                             "quantity": "", "estimate": None, "ci_low": None, "ci_high": None,
                             "ci_unit": f.get("ci_unit"), "n_units": f.get("n_units"),
                             "verdict": f.get("verdict"), "reason": f.get("reason", "")})
            for q, v in quantities.items():
                long.append({"conversation": conv, "kind": _kind(conv), "id": f["id"],
                             "quantity": q, "estimate": v.get("estimate"),
                             "ci_low": v.get("ci_low"), "ci_high": v.get("ci_high"),
                             "ci_unit": f.get("ci_unit"), "n_units": v.get("n_units"),
                             "verdict": f.get("verdict"), "reason": f.get("reason", "")})
        wide.append(row)
    pd.DataFrame(long).to_csv(out_dir / "per_conversation.csv", index=False)
    pd.DataFrame(wide).to_csv(out_dir / "comparison.csv", index=False)
    (out_dir / "population.json").write_text(json.dumps(info, indent=2, default=str),
                                             encoding="utf-8")


# -- the comparison page --------------------------------------------------------------------------

def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{float(x):.{digits}g}"


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["not testable here"])
    return f'<span class="badge" style="background:{_e(colour)}">{_e(verdict)}</span>'


def _page_head(title: str) -> list[str]:
    """The start of a report page up to ``<body>``: charset, a CSP that forbids scripts and
    remote content, the escaped ``title`` and the inlined ``population.css``.

    Raises:
        ValueError: the stylesheet contains '</style'.
    """
    css = (ASSETS / "population.css").read_text(encoding="utf-8")
    if "</style" in css.lower():
        raise ValueError("population.css must not contain '</style'")
    return ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            'style-src \'unsafe-inline\'; img-src data:">',
            f"<title>{_e(title)}</title>",
            f"<style>{css}</style></head><body>"]


def _strip_svg(values: Sequence[tuple[str, float | None]], pooled: dict, width: int = 260,
               height: int = 34) -> str:
    """One finding: a dot per conversation and the pooled interval as a bar (inline SVG)."""
    finite = [v for _, v in values if v is not None and np.isfinite(v)]
    lo, hi = pooled.get("ci_low"), pooled.get("ci_high")
    span = finite + [x for x in (lo, hi, pooled.get("value"), 0.0) if x is not None]
    if not finite:
        return ""
    a, b = min(span), max(span)
    if b - a < 1e-12:
        a, b = a - 1, b + 1
    pad = 8

    def x(v):
        return pad + (v - a) / (b - a) * (width - 2 * pad)

    parts = [f'<svg class="strip" width="{width}" height="{height}" role="img" '
             f'aria-label="per-conversation values">',
             f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="2" y2="{height - 2}" class="zero"/>']
    if lo is not None and hi is not None:
        parts.append(f'<rect x="{x(lo):.1f}" y="{height / 2 - 5:.1f}" width="{max(x(hi) - x(lo), 1):.1f}" '
                     'height="10" class="ci"/>')
    for conv, v in values:
        if v is not None and np.isfinite(v):
            parts.append(f'<circle cx="{x(v):.1f}" cy="{height / 2:.1f}" r="3" class="dot">'
                         f'<title>{_e(conv)}: {_e(_num(v))}</title></circle>')
    if pooled.get("value") is not None:
        parts.append(f'<line x1="{x(pooled["value"]):.1f}" x2="{x(pooled["value"]):.1f}" y1="4" '
                     f'y2="{height - 4}" class="mean"/>')
    parts.append(f'<text x="{pad}" y="{height - 1}" class="axis">{_e(_num(a, 3))}</text>'
                 f'<text x="{width - pad}" y="{height - 1}" class="axis" text-anchor="end">'
                 f'{_e(_num(b, 3))}</text></svg>')
    return "".join(parts)


def render_population_html(out_dir: Path) -> str:
    """The comparison page of a population folder (reads ``population.json``,
    ``population_findings.json`` and each conversation's ``findings.json``)."""
    out_dir = Path(out_dir)
    info = json.loads((out_dir / "population.json").read_text(encoding="utf-8"))
    pooled = json.loads((out_dir / "population_findings.json").read_text(encoding="utf-8"))
    convs = info.get("conversations") or []
    per: dict[str, dict[str, dict]] = {}
    for c in convs:
        path = out_dir / c["name"] / "findings.json"
        per[c["name"]] = ({f["id"]: f for f in json.loads(path.read_text(encoding="utf-8"))}
                          if path.exists() else {})
    ids = [s.id for s in SPECS]
    titles = {f["id"]: f["title"] for f in pooled}
    h = [*_page_head(f"CT scan population: {len(convs)} conversations"),
         '<header><div class="wrap"><div class="eyebrow">llmct scan · population</div>',
         f"<h1>{_e(len(convs))} conversations, one model: {_e(info.get('model'))}</h1>",
         f"<p>Read-out <code>{_e(info.get('position'))}</code>; each finding is computed per "
         "conversation, then pooled with the <b>conversation as the unit</b>: "
         f"{_e(info.get('interval'))}. <b>{_e(info.get('note'))}</b> "
         f"(n = {_e(info.get('n_conversations'))}).</p>",
         f"<p class=\"muted\">Total time {_e(_num((info.get('timings') or {}).get('total'), 4))} s; "
         f"llmct {_e(info.get('llmct_version'))}.</p></div></header><main class=\"wrap\">",
         '<section id="pooled"><h2>Pooled findings</h2><div class="scroll"><table class="data">',
         "<thead><tr><th>Finding</th><th>Original claim</th><th>Pooled value</th>"
         "<th>Per conversation (dots) and pooled interval (bar)</th><th>Verdict</th>"
         "<th>Control / reason</th><th>Detail</th></tr></thead><tbody>"]
    for f in pooled:
        vals = [(c["name"], (per[c["name"]].get(f["id"]) or {}).get("value")) for c in convs]
        ci = (f"<div class=\"ci\">95% CI [{_e(_num(f.get('ci_low')))}, {_e(_num(f.get('ci_high')))}]"
              f" over {_e(f.get('ci_unit'))}, n = {_e(f.get('n_units'))}</div>"
              if f.get("ci_low") is not None else
              f"<div class=\"ci\">n = {_e(f.get('n_units'))} {_e(f.get('ci_unit'))}</div>")
        h.append(f"<tr><td><b>{_e(f['title'])}</b><div class=\"mono\">{_e(f['id'])}</div></td>"
                 f"<td>{_e(f.get('seed_claim'))}</td>"
                 f"<td class=\"val\"><b>{_e(_num(f.get('value')))}</b> {_e(f.get('unit'))}{ci}</td>"
                 f"<td>{_strip_svg(vals, f)}</td><td>{_badge(f['verdict'])}</td>"
                 f"<td class=\"note\">{_e(f.get('control') or f.get('reason'))}</td>"
                 f"<td class=\"detail\">{_e(f.get('detail'))}</td></tr>")
    h.append("</tbody></table></div></section>")
    h.append('<section id="conversations"><h2>Conversations compared</h2><p>One row per '
             "conversation: each finding's headline value in that conversation (its interval, over "
             "that conversation's turns, is in its own report) and, in colour, its verdict there."
             '</p><div class="scroll"><table class="data"><thead><tr><th>Conversation</th>'
             "<th>Kind</th><th>Messages</th>")
    h += [f"<th>{_e(titles.get(i, i))}</th>" for i in ids]
    h.append("</tr></thead><tbody>")
    for c in convs:
        link = f"{c['name']}/report.html"
        has_report = (out_dir / link).exists()
        name = (f'<a href="{_e(link)}">{_e(c["name"])}</a>' if has_report else _e(c["name"]))
        cells = []
        for i in ids:
            f = per[c["name"]].get(i) or {}
            colour = VERDICT_COLOURS.get(str(f.get("verdict")),
                                         VERDICT_COLOURS["not testable here"])
            cells.append(f'<td class="num" title="{_e(f.get("verdict"))}"><span class="dot" '
                         f'style="background:{_e(colour)}"></span>{_e(_num(f.get("value")))}</td>')
        h.append(f"<tr><td>{name}</td><td>{_e(c.get('kind'))}</td><td class=\"num\">"
                 f"{_e(c.get('n_messages'))}</td>{''.join(cells)}</tr>")
    legend = " ".join(f'<span class="pill"><span class="dot" style="background:{_e(col)}"></span>'
                      f"{_e(v)}</span>" for v, col in VERDICT_COLOURS.items() if v != "n/a")
    h.append(f"</tbody></table></div><p>{legend}</p></section></main></body></html>")
    return "\n".join(h)


def write_population_report(out_dir: Path) -> Path:
    """Write ``out_dir/report.html``, the page comparing the conversations."""
    path = Path(out_dir) / "report.html"
    path.write_text(render_population_html(out_dir), encoding="utf-8")
    return path


def render_pools_html(out_dir: Path) -> str:
    """The index page of a several-pool scan (reads ``pools.json``): one row per pool or lone
    scan, linking its own page where it was written, with the blocks that separate it from the
    other pools. Every text is escaped; no script."""
    out_dir = Path(out_dir)
    index = json.loads((out_dir / "pools.json").read_text(encoding="utf-8"))
    pools = index.get("pools") or []
    h = [*_page_head(f"CT scan: {len(pools)} pools"),
         '<header><div class="wrap"><div class="eyebrow">llmct scan · pools</div>',
         f"<h1>{_e(index.get('n_scenarios'))} scenarios, {_e(len(pools))} pools, one model: "
         f"{_e(index.get('model'))}</h1>",
         f"<p>Pooled only when the {_e(_and(index.get('blocks') or list(BLOCKS)))} blocks are "
         "identical; a scenario alone in its pool is scanned as one conversation.</p>",
         f"<p class=\"muted\">Total time {_e(_num((index.get('timings') or {}).get('total'), 4))}"
         f" s; llmct {_e(index.get('llmct_version'))}.</p></div></header><main class=\"wrap\">",
         '<section id="pools"><h2>Pools</h2><div class="scroll"><table class="data"><thead><tr>'
         "<th>Pool</th><th>Scanned as</th><th>Conversations</th><th>Differs from</th>"
         "<th>Files</th></tr></thead><tbody>"]
    for q in pools:
        link = f"{q['folder']}/report.html"
        label = (f'<a href="{_e(quote(link))}">{_e(q["label"])}</a>'
                 if (out_dir / link).exists() else _e(q["label"]))
        kind = ("a population, pooled over conversations" if q.get("pooled")
                else f"one conversation ({q.get('note')})")
        differs = "; ".join(f"{other}: {_and(blocks)}"
                            for other, blocks in (q.get("differs_from") or {}).items())
        h.append(f"<tr><td>{label}</td><td>{_e(kind)}</td><td class=\"num\">"
                 f"{_e(q.get('n_conversations'))}</td><td class=\"note\">{_e(differs)}</td>"
                 f"<td class=\"note\">{_e(', '.join(q.get('files') or []))}</td></tr>")
    h.append("</tbody></table></div></section></main></body></html>")
    return "\n".join(h)


def write_pools_report(out_dir: Path) -> Path:
    """Write ``out_dir/report.html``, the page linking each pool's page and each lone scan."""
    path = Path(out_dir) / "report.html"
    path.write_text(render_pools_html(out_dir), encoding="utf-8")
    return path


def _print_population(folder: Path) -> None:
    for f in json.loads((folder / "population_findings.json").read_text(encoding="utf-8")):
        print(f"  [{f['verdict']:>38}] {f['title']}: {f['value']} ({f['ci_low']}, {f['ci_high']}) "
              f"{f['unit']}; over {f['ci_unit']}, n={f['n_units']}")


def run_population_cli(args) -> int:
    """``llmct scan`` with a folder (sub-folders searched too) or several files."""
    if getattr(args, "save_library", None):
        raise ScenarioError("--save-library takes one scenario; scan a population without it")
    out = run_population(args.scenario, model_name=args.model, out=args.out,
                         overwrite=args.overwrite, report=not args.no_report,
                         chat_template=getattr(args, "chat_template", None))
    if not (out / "pools.json").exists():
        print(f"population scan written to {out}")
        _print_population(out)
    else:
        index = json.loads((out / "pools.json").read_text(encoding="utf-8"))
        print(f"scan of {len(index['pools'])} pools written to {out}")
        for q in index["pools"]:
            if q["pooled"]:
                print(f"pool {q['label']!r} ({q['n_conversations']} conversations): "
                      f"{out / q['folder']}")
                _print_population(out / q["folder"])
            else:
                print(f"{q['label']!r} scanned alone ({q['note']}): {out / q['folder']}")
    if (out / "report.html").exists():
        print(f"report: {out / 'report.html'}")
    return 0


__all__ = ["BLOCKS", "Pool", "check_one_model", "describe_pool", "differing_blocks",
           "load_population", "partition_pools", "pool_note", "render_population_html",
           "render_pools_html", "run_population", "scenario_paths", "write_pools_index",
           "write_pools_report", "write_population_report", "write_population_tables"]
