"""Where ``make reproduce``'s time goes: seconds inside the model's forwards vs everything else.

Runs the same commands as ``scripts/reproduce.py`` (same plan, same arguments, one fresh process
per experiment), but each process starts through this script's ``--child`` bootstrap, which wraps
:func:`llmct.core.models.load_model` so that every model it returns carries two timers: a
forward pre-/post-hook on ``model.base_model`` (embedding, every block, final norm: the residual
stream's arithmetic) and on the output embedding (the LM head, called by full forwards, by
generation and by :func:`llmct.core.lens.head_logits`). The hooks are plain torch hooks, outside
llmct's hook registry, so they change no intervention, and cost microseconds per forward.

Per experiment it records the wall time (as ``reproduce`` measures it), the seconds inside the
forwards, the seconds from the process start until its first model was ready (imports and
load), the number of forwards and the tokens they processed (padding included). The sum of the
forward seconds is the **floor** of a reproduction that keeps every experiment's arithmetic (same
items, layers, conditions, precision) on this machine: no change outside the forwards can bring
the run below it.

    uv run --no-sync python benchmarks/bench_reproduce_floor.py [--stimuli v1] [--only 05 06]

Run it from empty outputs (a fresh worktree) to time a whole reproduction; experiments that
already have results are skipped, as by ``reproduce``. Results:
``benchmarks/results/bench_reproduce_floor.json``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATS_ENV = "LLMCT_FLOOR_STATS"
# Work added after the speed issue was filed, which it asks to be timed separately: 00's
# population of conversations and 11's in-span / shuffled-label null directions. With
# --as-filed these two experiments run a second time without it (into outputs/tmp/floor/), and the
# totals are given both ways.
AS_FILED = {"00_ct_scan": ["--population", "none"],
            "11_steering": ["--null-directions", "0", "--null-shuffles", "0"]}


class ForwardTimer:
    """Accumulates wall seconds and tokens of every forward of the modules it is attached to."""

    def __init__(self) -> None:
        self.stats = {"forward_s": 0.0, "head_s": 0.0, "n_forwards": 0, "tokens": 0,
                      "ready_s": None, "loads": 0}
        self._start: dict[int, float] = {}

    def attach(self, module, key: str, count: bool) -> None:
        def pre(mod, args, kwargs):
            if count:
                ids = kwargs.get("input_ids", args[0] if args else None)
                if ids is None:
                    ids = kwargs.get("inputs_embeds")
                self.stats["n_forwards"] += 1
                self.stats["tokens"] += int(ids.shape[0] * ids.shape[1]) if ids is not None else 0
            self._start[id(mod)] = time.perf_counter()

        def post(mod, args, kwargs, output):
            t0 = self._start.pop(id(mod), None)
            if t0 is not None:
                self.stats[key] += time.perf_counter() - t0

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post, with_kwargs=True, always_call=True)


def child(argv: list[str]) -> None:
    """Run the experiment ``argv[0]`` (a run.py) with ``argv[1:]`` as its arguments, timing the
    forwards of every model it loads; the stats go to the file named by ``$LLMCT_FLOOR_STATS``."""
    import runpy

    t_start = time.perf_counter()
    timer = ForwardTimer()
    import llmct.core.models as models

    original = models.load_model

    def load_model(*args, **kwargs):
        model, tokenizer = original(*args, **kwargs)
        timer.attach(model.base_model, "forward_s", count=True)
        head = model.get_output_embeddings()
        if head is not None:
            timer.attach(head, "head_s", count=False)
        timer.stats["loads"] += 1
        if timer.stats["ready_s"] is None:
            timer.stats["ready_s"] = time.perf_counter() - t_start
        return model, tokenizer

    models.load_model = load_model
    atexit.register(lambda: Path(os.environ[STATS_ENV]).write_text(json.dumps(timer.stats)))
    if argv[0] == "-m":  # a module, e.g. ``-m llmct.cli scan SCENARIO``
        sys.argv = list(argv[1:])
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")


def measure(label: str, cmd: list[str], log: Path) -> dict:
    """Run one planned command through the bootstrap; its wall time and forward stats."""
    stats_file = log.with_suffix(".json")
    stats_file.unlink(missing_ok=True)
    cmd = [cmd[0], str(Path(__file__).resolve()), "--child", *cmd[1:]]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ, STATS_ENV: str(stats_file)}).returncode
    wall = time.perf_counter() - t0
    if rc:
        raise SystemExit(f"{label} failed (exit {rc}); log {log}")
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    forward = stats.get("forward_s", 0.0) + stats.get("head_s", 0.0)
    return {"experiment": label, "wall_s": round(wall, 1), "forward_s": round(forward, 1),
            "head_s": round(stats.get("head_s", 0.0), 1),
            "ready_s": round(stats["ready_s"], 1) if stats.get("ready_s") else None,
            "other_s": round(wall - forward, 1), "n_forwards": stats.get("n_forwards", 0),
            "tokens": stats.get("tokens", 0), "model_loads": stats.get("loads", 0)}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--stimuli", choices=("v1", "v2", "all"), default="v1")
    ap.add_argument("--only", nargs="*", default=None, metavar="NN")
    ap.add_argument("--name", default="bench_reproduce_floor", help="result file name")
    ap.add_argument("--as-filed", action="store_true",
                    help="also run 00 and 11 without the work added after the issue (AS_FILED)")
    ap.add_argument("--scan", type=Path, default=None, metavar="SCENARIO",
                    help="instead: time `llmct scan SCENARIO` --runs times (e.g. the scenario "
                    "bench_vs_activation_lab.py converts) -> bench_scan_floor.json")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile-forward", action="store_true",
                    help="instead: is one forward compute-bound? -> bench_forward_profile.json")
    args = ap.parse_args()
    if args.scan:
        return scan_floor(args.scan, args.runs)
    if args.profile_forward:
        return profile_forward(args.model)
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "scripts"))
    sys.path.insert(0, str(ROOT))
    from reproduce import experiments, has_results, jobs

    from benchmarks._common import write_result
    from llmct.core.models import model_slug

    logs = ROOT / "outputs" / "tmp" / "floor"
    logs.mkdir(parents=True, exist_ok=True)
    plan = jobs(experiments(args.only), model_slug(args.model), args.model, False, args.stimuli)
    todo = [(label, cmd) for label, out, cmd in plan
            if label.startswith("12_") or not has_results(out)]
    for label, out, _ in plan:
        if not label.startswith("12_") and has_results(out):
            print(f"{label}: has results, skipped", flush=True)
    if not [label for label, _ in todo if not label.startswith("12_")]:
        raise SystemExit("bench_reproduce_floor: nothing to time (every planned experiment "
                         "already has results, or --only matched none); run it from empty "
                         "outputs, e.g. in a fresh `git worktree`; nothing was run or written")
    rows = []
    for label, cmd in todo:
        rows.append(measure(label, cmd, logs / f"{label}.log"))
        print(json.dumps(rows[-1]), flush=True)
    result = {"model": args.model, "stimuli": args.stimuli, "cores": os.cpu_count(),
              "experiments": rows, "total": totals(rows)}
    if args.as_filed:
        names = [r["experiment"] for r in rows if r["experiment"] in AS_FILED]
        filed = [measure(f"{n}[as filed]", as_filed_command(n, args, logs),
                         logs / f"{n}-as-filed.log") for n in names]
        print("\n".join(json.dumps(r) for r in filed))
        keep = [r for r in rows if r["experiment"] not in AS_FILED]
        result.update(as_filed_args=AS_FILED, as_filed_experiments=filed,
                      total_as_filed=totals(keep + filed))
    print(f"total: {result['total']}" + (f"; as filed: {result['total_as_filed']}"
                                        if args.as_filed else ""))
    print(f"wrote {write_result(args.name, result)}")
    print(f"wrote {write_table(args.name, result)}")


def profile_forward(model_name: str, n_texts: int = 4) -> None:
    """One base-model forward of the first ``n_texts`` Japanese stories (the longest inputs of
    the reproduction) under the torch profiler, after a warm-up: the share of its CPU time in
    matrix products and their rate, 2 x (weights of every ``nn.Linear`` in the blocks) x tokens
    per second of ``aten::mm``."""
    import torch
    from torch.profiler import profile

    sys.path.insert(0, str(ROOT))
    from benchmarks._common import write_result
    from llmct.core.arch import get_adapter
    from llmct.core.models import load_model
    from llmct.io.stimuli import load_jsonl

    model, tok = load_model(model_name)
    texts = [s.text for s in load_jsonl(ROOT / "stimuli" / "stories_ja.jsonl")[:n_texts]]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        model.base_model(**enc)
        with profile() as prof:
            model.base_model(**enc)
    events = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    total, mm = sum(events.values()), events.get("aten::mm", 0.0)
    blocks = get_adapter(model).block_list(model)
    linear = sum(m.weight.numel() for b in blocks for m in b.modules()
                 if isinstance(m, torch.nn.Linear))
    tokens = int(enc.input_ids.numel())
    result = {"model": model_name, "texts": n_texts, "tokens": tokens, "forward_cpu_s": total,
              "mm_s": mm, "mm_share": mm / total, "linear_weights_in_blocks": linear,
              "mm_gflops_per_s": 2 * linear * tokens / mm / 1e9,
              "top_ops": dict(sorted(events.items(), key=lambda kv: -kv[1])[:6])}
    print(json.dumps(result, indent=1))
    print(f"wrote {write_result('bench_forward_profile', result)}")


def write_table(name: str, result: dict) -> Path:
    """The per-experiment rows of ``result`` (and its as-filed re-runs) as ``results/NAME.csv``,
    with a total row for each way of counting, so a README can quote them."""
    import pandas as pd

    from benchmarks._common import RESULTS

    rows = [*result["experiments"], *result.get("as_filed_experiments", [])]
    rows += [{"experiment": "total", **result["total"]}]
    if "total_as_filed" in result:
        rows.append({"experiment": "total (as filed)", **result["total_as_filed"]})
    path = RESULTS / f"{name}.csv"
    frame = pd.DataFrame(rows)
    counts = ["n_forwards", "tokens", "model_loads"]
    frame[counts] = frame[counts].astype("Int64")  # blank on the total rows, not floats
    frame.to_csv(path, index=False)
    return path


def scan_floor(scenario: Path, runs: int) -> None:
    """Time ``llmct scan SCENARIO`` ``runs`` times through the bootstrap; medians, and the
    largest speed-up over Activation Lab (``bench_vs_activation_lab.json``'s median wall on the
    same scenario) that the scan's forwards alone leave possible."""
    import statistics
    import tempfile

    sys.path.insert(0, str(ROOT))
    from benchmarks._common import RESULTS, write_result

    logs = Path(tempfile.mkdtemp(prefix="scan-floor-"))
    cmd = [sys.executable, "-m", "llmct.cli", "scan", str(scenario.resolve())]
    rows = [measure(f"scan {k}", [*cmd, "--out", str(logs / f"run{k}")], logs / f"run{k}.log")
            for k in range(runs)]
    med = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "forward_s", "ready_s")}
    al = json.loads((RESULTS / "bench_vs_activation_lab.json").read_text())["activation_lab"]
    result = {"scenario": str(scenario), "runs": rows, "median": med,
              "activation_lab_median_wall_s": al["median_wall_s"],
              "max_speedup_given_forwards": round(al["median_wall_s"] / med["forward_s"], 1),
              "max_speedup_given_forwards_and_load": round(
                  al["median_wall_s"] / (med["forward_s"] + med["ready_s"]), 1)}
    print(json.dumps(result, indent=1))
    print(f"wrote {write_result('bench_scan_floor', result)}")


def totals(rows: list[dict]) -> dict:
    """Summed wall, forward, other and ready seconds of ``rows``."""
    total = {k: round(sum(r[k] for r in rows), 1) for k in ("wall_s", "forward_s", "other_s")}
    total["ready_s"] = round(sum(r["ready_s"] or 0.0 for r in rows), 1)
    return total


def as_filed_command(name: str, args, logs: Path) -> list[str]:
    """``name``'s command as ``reproduce`` runs it, plus AS_FILED's arguments and a scratch
    ``--out`` (the experiment's own results stay those of the full run)."""
    run = ROOT / "experiments" / name / "run.py"
    return [sys.executable, str(run), "--model", args.model, *AS_FILED[name],
            "--out", str(logs / "as_filed" / name), "--overwrite"]


if __name__ == "__main__":
    main()
