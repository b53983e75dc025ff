"""The ``llmct`` command: ``layers``, ``models``, ``scan``, ``monitor``, ``extract``."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from llmct.errors import OneLineParser, report_errors


def _cmd_layers(args) -> int:
    from llmct.core.arch import describe
    from llmct.core.models import load_model

    model, _ = load_model(args.model, dtype=args.dtype, device=args.device)
    info = describe(model)
    width = max(len(k) for k in info)
    print(f"llmct layer map of {args.model!r}")
    for key, value in info.items():
        print(f"  {key:<{width}}  {value}")
    return 0


def _cmd_models(args) -> int:
    import json

    from llmct.core.models import cache_dir, embedded_models_table

    rows = embedded_models_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0

    def mb(n: int | None) -> str:
        return f"{n / 1e6:,.0f} MB" if n else "-"

    table = [("name", "family (adapter)", "kind", "layers", "d_model", "params", "GGUF", "cache", "licence")]
    for r in rows:
        name = r["name"] + "".join(f" ({a})" for a in r["aliases"])
        cache = mb(r["cache_bytes"]) if r["cached"] else "not yet"
        kind = r["kind"] + (", no chat template" if r["chat_template"] == "none" else "")
        table.append((name, f"{r['family']} ({r['adapter']})", kind, str(r["n_layers"]), str(r["d_model"]),
                      f"{r['n_params'] / 1e6:.1f}M", mb(r["gguf_bytes"]) if r["installed"]
                      else "not installed", cache, r["licence"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"cache: {cache_dir()} (a model is converted on its first load)")
    return 0


def _cmd_scan(args) -> int:
    from llmct.scan.run import run_scan_cli

    return run_scan_cli(args)


def _cmd_monitor(args) -> int:
    from llmct.scan.monitor import run_monitor_cli

    return run_monitor_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="llmct", description="A CT scan of an LLM's hidden states.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("layers", help="print where a model keeps its blocks, attention, MLP, norms")
    p.add_argument("model", nargs="?", default="default", help="'default', a HF id or a local dir")
    p.add_argument("--dtype", default=None)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser("models", help="list the embedded models (offline, shipped as packages)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("scan", help="scan a YAML scenario and write metrics + an HTML report")
    p.add_argument("scenario", nargs="+", help="scenario YAML (see docs/scenarios.md); a folder "
                   "(sub-folders searched too) or several files scan a population of "
                   "conversations, pooled with the conversation as the unit; scenarios whose "
                   "references, baseline, model or capture differ form separate pools (a "
                   "scenario alone in its pool is scanned on its own)")
    p.add_argument("--model", default=None, help="override the scenario's model")
    p.add_argument("--out", default=None, help="output folder; refused if it exists unless "
                   "--overwrite (default: the scenario's output.dir, or a timestamped sibling "
                   "of it if that exists)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing scan folder (and --save-library file)")
    p.add_argument("--save-library", default=None, help="also save the reference library here")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--chat-template", default=None, metavar="FILE",
                   help="jinja chat template file to render the conversation with (e.g. for a "
                   "base model, instead of the plain 'role: content' fallback)")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("monitor", help="generate the scenario's assistant turns with a live readout")
    p.add_argument("scenario")
    p.add_argument("--model", default=None)
    p.add_argument("--library", default=None, help="reference library (.safetensors) to score against")
    p.add_argument("--layers", default=None, help="comma-separated layers to hook")
    p.add_argument("--chat-template", default=None, metavar="FILE",
                   help="jinja chat template file (default: the tokenizer's, else plain text)")
    p.set_defaults(func=_cmd_monitor)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``llmct`` command. llmct's own errors, file-system and encoding errors print one
    line ``llmct: error: PROBLEM`` and return 2 (``LLMCT_TRACEBACK=1`` shows the traceback).

    As the command itself (``argv`` None: the ``llmct`` script, ``python -m llmct.cli``) it then
    exits without tearing the interpreter down (:func:`_exit_without_teardown`); called with
    ``argv`` it returns the exit status."""
    def command() -> int:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)

    code = report_errors("llmct", command)
    if argv is None:
        _exit_without_teardown(code)
    return code


def _exit_without_teardown(code: int) -> NoReturn:
    """Exit once the command is done, its files written and closed: run the ``atexit``
    handlers, flush stdout and stderr, and skip freeing every module and object one by one
    (with torch and transformers loaded that took 1.3 s of a 17 s ``llmct scan``)."""
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``llmct ... | head``) or stream
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
