"""Run every numbered experiment (00 ... 12) on one model, in order, with progress and timings.

An experiment whose ``outputs/<model-slug>/`` already holds results is skipped (results are never
overwritten) unless ``--force``, which passes ``--overwrite``; 12_summary is always recomputed
(it is a pure function of the other CSVs). Each experiment's output is shown live and kept in
``outputs/tmp/reproduce/<slug>-<stamp>/NN_name.log`` with a ``timings.csv``. A failed experiment
stops the run (later experiments read earlier outputs) unless ``--keep-going``.

    uv run --no-sync python scripts/reproduce.py --model default [--force] [--only 02 03]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
SUMMARY = "12_summary"
# Extra arguments per experiment (none needed today: every run.py defaults to the paper's setup).
EXTRA: dict[str, list[str]] = {}
# The v2 stimuli (issue: stimuli that isolate emotion) run beside v1, each into its own folder
# under outputs/<model-slug>/: (sub-folder, extra arguments). Set D's 4 confirmation frames have
# too few items per label for a probe of their own; their lexical ceiling is in validation/.
V2: dict[str, tuple[str, list[str]]] = {
    "02_probes": ("v2", ["--sets", "set_d"]),
    "03_binary": ("v2", ["--sets", "set_b", "set_b_control_v2", "set_c", "set_a",
                         "--control-set", "set_b_control_v2"]),
    "04_zeroshot": ("v2", ["--sets", "set_d"]),
    "07_attention": ("v2", ["--sets", "set_b", "set_b_control_v2",
                            "--control-set", "set_b_control_v2"]),
    "09_emotion_vectors": ("stories_v2", ["--sets", "stories_v2", "neutral_stories"]),
    "10_crosslingual": ("stories_v2", ["--sets", "stories_v2", "neutral_stories"]),
}


def experiments(only: list[str] | None = None) -> list[str]:
    names = sorted(p.parent.name for p in EXPERIMENTS.glob("[0-9][0-9]_*/run.py"))
    if only:
        names = [n for n in names if any(n == o or n.startswith(f"{o}_") for o in only)]
    return names


def has_results(folder: Path) -> bool:
    """True when ``folder`` holds result files (sub-folders, e.g. activations/ or the v2 results,
    do not count)."""
    return folder.is_dir() and any(p.is_file() for p in folder.iterdir())


def command(name: str, model: str, force: bool, extra: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, str(EXPERIMENTS / name / "run.py")]
    if name == SUMMARY:
        return [*cmd, "--overwrite"]
    cmd += ["--model", model, *EXTRA.get(name, []), *(extra or [])]
    return [*cmd, "--overwrite"] if force else cmd


def jobs(names: list[str], slug: str, model: str, force: bool, stimuli: str
         ) -> list[tuple[str, Path, list[str]]]:
    """``(label, results folder, command)`` of every run: v1 (the paper's stimuli) and/or v2."""
    out = []
    for name in names:
        folder = EXPERIMENTS / name / "outputs" / slug
        if stimuli in ("v1", "all") or name == SUMMARY:
            out.append((name, folder, command(name, model, force)))
        if stimuli in ("v2", "all") and name in V2:
            sub, extra = V2[name]
            target = folder / sub
            out.append((f"{name}[{sub}]", target,
                        command(name, model, force, [*extra, "--out", str(target)])))
    return out


def headline_lines(folder: Path, limit: int = 6) -> list[str]:
    """The claims of ``folder/headline.csv`` that name a control, as short lines (value, interval,
    control): what ``reproduce`` shows after each experiment. Reads nothing else."""
    from llmct.io.headline import FILENAME, read_headline

    path = folder / FILENAME
    if not path.exists():
        return []
    frame = read_headline(path)
    frame = frame[frame.control.notna() & (frame.control.astype(str) != "")].head(limit)
    out = []
    for r in frame.itertuples():
        ci = f" [{r.ci_lo:.3g}, {r.ci_hi:.3g}]" if r.ci_lo == r.ci_lo else ""
        cv = f" {r.control_value:.3g}" if isinstance(r.control_value, float) else ""
        out.append(f"    {r.claim_id} = {r.value}{ci}; control ({str(r.control)[:60]}){cv}")
    return out


def missing_inputs(name: str, slug: str) -> list[str]:
    """The experiments ``name`` declares as inputs (``headline.INPUTS``) that have no results
    for ``slug`` yet."""
    from llmct.runs import experiment_headline

    module = experiment_headline(EXPERIMENTS / name)
    inputs = getattr(module, "INPUTS", ()) if module is not None else ()
    return [i for i in inputs if not has_results(EXPERIMENTS / i / "outputs" / slug)]


def run_logged(cmd: list[str], log: Path) -> int:
    """Run ``cmd`` from the repository root, echoing its output and writing it to ``log``."""
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write("    " + line)
            fh.write(line)
        return proc.wait()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="'default' or a HF id / local path")
    ap.add_argument("--force", action="store_true",
                    help="re-run experiments that already have results (passes --overwrite)")
    ap.add_argument("--only", nargs="*", default=None, metavar="NN",
                    help="only these experiments (e.g. 00 02 or 02_probes)")
    ap.add_argument("--keep-going", action="store_true",
                    help="run the remaining experiments after a failure")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    ap.add_argument("--stimuli", choices=("v1", "v2", "all"), default="all",
                    help="v1: the paper's stimulus sets; v2: Set D, controls v2, stories v2")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from llmct.core.models import model_slug

    slug = model_slug(args.model)
    names = experiments(args.only)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    logs = ROOT / "outputs" / "tmp" / "reproduce" / f"{slug}-{stamp}"
    rows, t_all = [], time.perf_counter()
    print(f"reproduce: {len(names)} experiments on {args.model} (outputs/<{slug}>); logs in "
          f"{logs.relative_to(ROOT)}")
    plan = jobs(names, slug, args.model, args.force, args.stimuli)
    for k, (name, out, cmd) in enumerate(plan, 1):
        head = f"[{k}/{len(plan)}] {name}"
        if name != SUMMARY and not args.force and has_results(out):
            print(f"{head}: already has results in {out.relative_to(ROOT)}; skipped "
                  "(--force / FORCE=1 re-runs it)", flush=True)
            rows.append((name, "skipped", 0.0))
            continue
        if args.dry_run:
            print(f"{head}: would run {' '.join(cmd)}")
            rows.append((name, "planned", 0.0))
            continue
        logs.mkdir(parents=True, exist_ok=True)
        if name != SUMMARY and (absent := missing_inputs(name.split("[")[0], slug)):
            print(f"{head}: its inputs {', '.join(absent)} have no results for {slug} yet; "
                  "it will compute what it needs or fail", flush=True)
        elapsed = time.perf_counter() - t_all
        print(f"{head}: running ({elapsed / 60:.1f} min so far)", flush=True)
        t0 = time.perf_counter()
        rc = run_logged(cmd, logs / f"{name}.log")
        secs = time.perf_counter() - t0
        status = "ok" if rc == 0 else f"failed (exit {rc})"
        print(f"{head}: {status} in {secs / 60:.1f} min", flush=True)
        if rc == 0:
            print("\n".join(headline_lines(out)), flush=True)
        rows.append((name, status, secs))
        if rc and not args.keep_going:
            print(f"{head}: stopping (log {logs.relative_to(ROOT)}/{name}.log; --keep-going / "
                  "KEEP_GOING=1 runs the rest anyway)", flush=True)
            break
    print("\nexperiment            status              minutes")
    for name, status, secs in rows:
        print(f"{name:<21} {status:<19} {secs / 60:7.1f}")
    total = time.perf_counter() - t_all
    print(f"total {total / 60:.1f} min")
    if not args.dry_run and logs.exists():
        lines = ["experiment,status,seconds"] + [f"{n},{s},{t:.1f}" for n, s, t in rows]
        (logs / "timings.csv").write_text("\n".join(lines) + "\n")
    failed = [n for n, s, _ in rows if s.startswith("failed")]
    if failed:
        print(f"failed: {', '.join(failed)} (logs in {logs.relative_to(ROOT)})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
