"""The CT scan over a population of conversations: the conversation is the unit.

``llmct scan FOLDER`` (or several files) validates every scenario before the model loads, checks
that they can be pooled (the same references, baseline, model and capture), loads the model
once, scans each conversation into its own subfolder (the usual files of one scan) and writes a
population summary next to them:

- ``population_findings.json`` / ``.csv``: each finding pooled over conversations (the mean of the
  per-conversation values with a percentile bootstrap over conversations, ``ci_unit`` =
  ``conversations``; n is small, ~14-17, and the files say so), with its verdict;
- ``per_conversation.csv``: one row per conversation x finding x quantity (long form), and
  ``comparison.csv``: one row per conversation, the headline value and verdict of each finding;
- ``population.json``: files, model, timings; ``report.html``: the page comparing conversations
  (self-contained, offline, every text escaped), linking each conversation's own report.

    from llmct.scan.population import run_population
    run_population(["stimuli/scenarios/population/"], out="outputs/population")
"""

from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..models import load_model, model_slug
from ..store import atomic_dir, output_dir_for
from ..style import VERDICT_COLOURS
from .findings import SPECS, pool_findings
from .scenario import Scenario, ScenarioError, load_scenario

ASSETS = Path(__file__).with_name("report_assets")
SUFFIXES = (".yaml", ".yml")


def scenario_paths(inputs: list[str | Path]) -> list[Path]:
    """The scenario files named by ``inputs``: a folder stands for the ``*.yaml``/``*.yml`` files
    directly inside it (sorted; sub-folders are not searched), a file for itself.

    Raises:
        ScenarioError: a path that does not exist, a folder without scenario files, or the same
            file given twice.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in SUFFIXES)
            if not found:
                raise ScenarioError(f"{p}: folder holds no scenario files (*.yaml, *.yml)")
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
    """Validate every scenario (before any model loads) and check they can be pooled.

    Pooling needs the same ``references`` (labels, texts and ratings), ``baseline``, ``model``
    and ``capture`` block in every file, and unique names (each names its subfolder).

    Raises:
        ScenarioError: any file's own error (file, line, key), fewer than two files, or the
            first file that differs from the first one (naming both and the block).
    """
    if len(paths) < 2:
        sub = sorted({str(f.parent) for p in paths for f in p.parent.glob("*/*.y*ml")})
        hint = (f" (sub-folders are not searched; scenario folders there: {', '.join(sub)})"
                if sub else "")
        raise ScenarioError(f"a population needs at least 2 scenarios to pool, got {len(paths)} "
                            f"({', '.join(map(str, paths)) or 'none'}); scan one file on its own"
                            + hint)
    loaded = [(p, load_scenario(p)) for p in paths]
    first_path, first = loaded[0]
    names: dict[str, Path] = {}
    for p, sc in loaded:
        if sc.name in names:
            raise ScenarioError(f"{p}: name {sc.name!r} is also the name of {names[sc.name]} "
                                "(each conversation needs its own subfolder)")
        names[sc.name] = p
        for key in ("references", "baseline", "model", "capture"):
            if getattr(sc, key) != getattr(first, key):
                raise ScenarioError(
                    f"{p} ({sc.line_of(key)}): its {key!r} block differs from {first_path}'s; "
                    "a population is pooled only over conversations scanned against the same "
                    "references, baseline, model and capture")
    return loaded


def default_population_dir(paths: list[Path], model_name: str) -> Path:
    parents = {p.parent.name for p in paths}
    stem = parents.pop() if len(parents) == 1 else "population"
    return Path("outputs") / "scans" / f"population-{stem}" / model_slug(model_name)


def run_population(inputs: list[str | Path], *, model_name: str | None = None,
                   out: str | Path | None = None, overwrite: bool = False, report: bool = True,
                   model_and_tokenizer=None, n_boot: int = 2000, figures: bool = False,
                   chat_template: str | Path | None = None,
                   explicit_out: bool | None = None) -> Path:
    """Scan every conversation of ``inputs`` with one model load and pool the findings.

    Returns the folder written (``out``, or a default under ``outputs/scans/``); each
    conversation is in ``<folder>/<scenario name>/``. Everything that can be checked (every
    file, poolability, the output folder, each conversation's context length) is checked before
    the first conversation is scanned; the folder is written atomically. Each conversation's
    report is its HTML page; its static PNG/SVG figures only with ``figures`` (they take most of
    a scan's time on CPU). ``chat_template``: a template file used for every render (as
    ``llmct scan --chat-template``). ``explicit_out`` (default: ``out is not None``): an existing
    ``out`` is an error; otherwise it gets a timestamped sibling (``llmct.store.output_dir_for``).

    Raises:
        ScenarioError: see :func:`scenario_paths`, :func:`load_population`; a conversation that
            does not fit the model's context (nothing is scanned).
        StoreError: ``out`` exists and ``overwrite`` is False.
    """
    from .run import check_context, run_scan

    t0 = time.perf_counter()
    paths = scenario_paths(inputs)
    population = load_population(paths)
    first = population[0][1]
    name = model_name or first.model.id
    explicit = (out is not None) if explicit_out is None else explicit_out
    out_dir = output_dir_for(out or default_population_dir(paths, name), overwrite=overwrite,
                             explicit=explicit)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if model_and_tokenizer is None:
        model_and_tokenizer = load_model(name, dtype=first.model.dtype, device=first.model.device)
    timings["model_load"] = round(time.perf_counter() - t, 3)
    model, tokenizer = model_and_tokenizer
    if chat_template is not None:
        from ..chat import use_chat_template

        use_chat_template(tokenizer, chat_template)
    for _, sc in population:
        check_context(model, tokenizer, sc)
    from ..arch import get_adapter

    n_layers_model = get_adapter(model).n_layers(model)
    cache: dict = {}
    per_conv: dict[str, list[dict]] = {}
    conv_time: dict[str, float] = {}
    with atomic_dir(out_dir, overwrite) as tmp:
        for k, (path, sc) in enumerate(population):
            t = time.perf_counter()
            print(f"[scan] {k + 1}/{len(population)} {path}", file=sys.stderr, flush=True)
            sub = run_scan(sc, model_name=name, out=tmp / sc.name, explicit_out=True,
                           model_and_tokenizer=model_and_tokenizer,
                           report=(True if figures else "html") if report else False,
                           reference_cache=cache, chat_template=chat_template)
            per_conv[sc.name] = json.loads((sub / "findings.json").read_text(encoding="utf-8"))
            conv_time[sc.name] = round(time.perf_counter() - t, 3)
        run0 = json.loads((tmp / first.name / "run.json").read_text(encoding="utf-8"))
        pooled = pool_findings(per_conv, n_refs=len(first.references),
                               n_layers=len(run0.get("layers") or []) or n_layers_model,
                               position=first.capture.position, n_boot=n_boot)
        timings["conversations"] = round(sum(conv_time.values()), 3)
        timings["total"] = round(time.perf_counter() - t0, 3)
        info = {
            "kind": "llmct.scan.population", "model": name,
            "model_fingerprint": run0.get("model_fingerprint"), "position": first.capture.position,
            "sources": run0.get("sources"), "layers": run0.get("layers"),
            "n_conversations": len(population), "unit": "conversations",
            "interval": f"95% percentile bootstrap over conversations ({n_boot} resamples, "
                        "llmct.stats.cluster_bootstrap_mean, one value per conversation)",
            "note": "n is small: read each pooled interval beside the per-conversation values",
            "conversations": [{"name": sc.name, "file": str(p), "kind": _kind(sc.name),
                               "n_messages": len(sc.messages), "seconds": conv_time[sc.name]}
                              for p, sc in population],
            "references": list(first.references), "timings": timings,
            "llmct_version": __version__,
        }
        write_population_tables(tmp, pooled, per_conv, info)
        if report:
            write_population_report(tmp)
    return out_dir


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
        row = {"conversation": conv, "kind": _kind(conv)}
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


def _strip_svg(values: list[tuple[str, float]], pooled: dict, width: int = 260,
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
    css = (ASSETS / "population.css").read_text(encoding="utf-8")
    if "</style" in css.lower():
        raise ValueError("population.css must not contain '</style'")
    ids = [s.id for s in SPECS]
    titles = {f["id"]: f["title"] for f in pooled}
    h = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
         'style-src \'unsafe-inline\'; img-src data:">',
         f"<title>{_e('CT scan population: ' + str(len(convs)) + ' conversations')}</title>",
         f"<style>{css}</style></head><body>",
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
            colour = VERDICT_COLOURS.get(f.get("verdict"), VERDICT_COLOURS["not testable here"])
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


def run_population_cli(args) -> int:
    """``llmct scan`` with a folder or several files."""
    if getattr(args, "save_library", None):
        raise ScenarioError("--save-library takes one scenario; scan a population without it")
    out = run_population(args.scenario, model_name=args.model, out=args.out,
                         overwrite=args.overwrite, report=not args.no_report,
                         chat_template=getattr(args, "chat_template", None))
    print(f"population scan written to {out}")
    for f in json.loads((out / "population_findings.json").read_text(encoding="utf-8")):
        print(f"  [{f['verdict']:>38}] {f['title']}: {f['value']} ({f['ci_low']}, {f['ci_high']}) "
              f"{f['unit']}; over {f['ci_unit']}, n={f['n_units']}")
    if (out / "report.html").exists():
        print(f"report: {out / 'report.html'}")
    return 0


__all__ = ["load_population", "render_population_html", "run_population", "scenario_paths",
           "write_population_report", "write_population_tables"]
