"""``llmct scan`` side by side with Activation Lab (the tool llmct reimplements) on the same input.

Activation Lab's own 20-message scenario (``scenarios/inject/where_emotions_lie_qwen_2.5_3b.yaml``
in its checkout: system prompt, ten user and nine assistant turns, nine one-message references,
50 generated tokens) is run twice over:

- by Activation Lab (``activation-lab run``), the scenario pointed at the embedded model's weights
  (the dequantized SmolLM2-135M-Instruct folder llmct caches, ``llmct.core.models``), in fp32 on the
  CPU, everything else (what it captures, how it stores it) as the file says;
- by ``llmct scan`` on the same scenario converted to llmct's format (docs/scenarios.md): the same
  messages, an assistant turn left to generate (greedy, 50 new tokens, seed 42), the nine
  references; plus the emotion tags of llmct's own copy of this conversation
  (``stimuli/scenarios/rollercoaster.yaml``) so that every finding is computed.

Each run is a fresh process, timed by wall clock, with its peak resident memory from ``wait4``;
runs are interleaved (Activation Lab in the middle round). Activation Lab writes every captured
tensor of every step and takes minutes, so it runs once by default (``--activation-lab-runs``).
Its comparison report (``notebooks/compare_runs.py``) is a separate step and is not timed;
llmct's time includes its report and figures. ``--llmct-src LABEL=DIR`` also times another llmct
source tree (e.g. an older commit's ``src``) in the same rounds.

    # Activation Lab in its own environment (never in llmct's):
    uv venv /tmp/al-venv && uv pip install --python /tmp/al-venv/bin/python -e PATH/TO/ACTIVATION_LAB
    uv run python benchmarks/bench_vs_activation_lab.py --activation-lab PATH/TO/ACTIVATION_LAB \\
        --activation-lab-python /tmp/al-venv/bin/python

Writes ``benchmarks/results/bench_vs_activation_lab.json`` (``--out`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import RESULTS, write_result  # noqa: E402

AL_SCENARIO = Path("scenarios") / "inject" / "where_emotions_lie_qwen_2.5_3b.yaml"
TAGS_FROM = ROOT / "stimuli" / "scenarios" / "rollercoaster.yaml"


def weights_dir(model: str) -> Path:
    """The embedded model's dequantized Hugging Face folder (converted on first use)."""
    from llmct.core.models import embedded_model_dir

    return embedded_model_dir(model)


def activation_lab_scenario(source: Path, weights: Path, out_dir: Path) -> dict:
    """Activation Lab's scenario with its model pointed at ``weights`` (fp32, CPU) and its runs
    written under ``out_dir``; everything else as the file says."""
    sc = yaml.safe_load(source.read_text(encoding="utf-8"))
    sc["model"] = {**sc.get("model", {}), "id": str(weights), "dtype": "float32", "device": "cpu"}
    sc["output"] = {**sc.get("output", {}), "dir": str(out_dir)}
    return sc


def user_tags(path: Path) -> list[str | None]:
    """The emotion tags of the user turns of llmct's copy of the conversation."""
    sc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [m.get("emotion") for m in sc["messages"] if m["role"] == "user"]


def to_llmct(al: dict, model: str, tags: list[str | None] | None) -> dict:
    """An Activation Lab scenario in llmct's format: its first prompt's messages plus one
    generated assistant turn (Activation Lab generates after the last message and snapshots the
    reply too), its generation settings, its references (the last message of each), all four
    sources at every layer."""
    prompt = al["prompt"][0] if isinstance(al["prompt"], list) else al["prompt"]
    messages = [{"role": m["role"], "content": m["content"]} for m in prompt["messages"]]
    users = [m for m in messages if m["role"] == "user"]
    if tags is not None and len(tags) == len(users):
        for m, tag in zip(users, tags, strict=True):
            if tag:
                m["emotion"] = tag
    messages.append({"role": "assistant"})  # generated
    gen = al.get("generation", {})
    return {
        "name": al["name"],
        "description": "Activation Lab's scenario converted by benchmarks/bench_vs_activation_lab.py",
        "model": {"id": model, "dtype": "float32", "device": "cpu"},
        "generation": {"max_new_tokens": int(gen.get("max_new_tokens", 8)),
                       "do_sample": bool(gen.get("do_sample", False)),
                       "seed": int(gen.get("seed", 42))},
        "capture": {"sources": ["hidden_in", "hidden_out", "attn_out", "mlp_out"],
                    "layers": "all", "position": "message_end"},
        "messages": messages,
        "references": {r["label"]: r["messages"][-1]["content"]
                       for r in al.get("reference_states", [])},
    }


def measure(cmd: list[str], *, cwd: Path, env: dict, log: Path) -> dict:
    """Run ``cmd`` as a fresh process: wall seconds and peak resident memory (MB, its own and
    its waited-for children's, from ``wait4``)."""
    with open(log, "wb") as out:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {"wall_s": round(wall, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
              "exit": proc.returncode}
    if proc.returncode != 0:
        result["error"] = log.read_text(errors="replace")[-2000:]
    return result


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["exit"] == 0]
    out: dict = {"runs": len(ok), "wall_s": [r["wall_s"] for r in runs],
                 "peak_rss_mb": [r["peak_rss_mb"] for r in runs]}
    if ok:
        out["median_wall_s"] = round(statistics.median(r["wall_s"] for r in ok), 3)
        out["median_peak_rss_mb"] = round(statistics.median(r["peak_rss_mb"] for r in ok), 1)
    failed = [r for r in runs if r["exit"] != 0]
    if failed:
        out["errors"] = [r.get("error", "")[-600:] for r in failed]
    return out


def llmct_phases(scan_dirs: list[Path]) -> dict:
    """Median of each phase llmct times itself (``run.json`` ``timings``)."""
    timings = [json.loads((d / "run.json").read_text())["timings"] for d in scan_dirs
               if (d / "run.json").exists()]
    keys = sorted({k for t in timings for k in t})
    return {k: round(statistics.median(t.get(k, 0.0) for t in timings), 3) for k in keys}


def git_head(path: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--activation-lab", required=True, type=Path,
                    help="an Activation Lab checkout (its scenario file is read from it)")
    ap.add_argument("--activation-lab-python", type=Path, default=None,
                    help="the Python of Activation Lab's environment (default: "
                    "ACTIVATION_LAB/.venv/bin/python)")
    ap.add_argument("--activation-lab-runs", type=int, default=1)
    ap.add_argument("--llmct-runs", type=int, default=3)
    ap.add_argument("--llmct-src", action="append", default=[], metavar="LABEL=DIR",
                    help="also time the llmct package found in DIR (a 'src' folder) as LABEL")
    ap.add_argument("--model", default="default", help="the embedded model to run both tools on")
    ap.add_argument("--keep", type=Path, default=None, help="keep every output under this folder")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_vs_activation_lab.json")
    args = ap.parse_args()

    al_root = args.activation_lab.resolve()
    al_python = (args.activation_lab_python or al_root / ".venv" / "bin" / "python").absolute()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-al-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    weights = weights_dir(args.model)
    al_source = al_root / AL_SCENARIO
    notes: list[str] = []
    al_problem = None
    if not al_source.exists():
        al_problem = f"{AL_SCENARIO} is not in {al_root} (not an Activation Lab checkout?)"
    elif not al_python.exists():
        al_problem = (f"no Python at {al_python}: install Activation Lab in its own environment "
                      "(see this script's docstring) and pass --activation-lab-python")
    al_dict = yaml.safe_load(al_source.read_text(encoding="utf-8")) if al_source.exists() else None
    if al_dict is None:
        raise SystemExit(f"cannot convert the scenario: {al_problem}")
    al_scen = work / "activation_lab_scenario.yaml"
    al_scen.write_text(yaml.safe_dump(activation_lab_scenario(al_source, weights, work / "al_runs"),
                                      sort_keys=False, allow_unicode=True), encoding="utf-8")
    llmct_dict = to_llmct(al_dict, args.model, user_tags(TAGS_FROM) if TAGS_FROM.exists() else None)
    llmct_scen = work / "llmct_scenario.yaml"
    llmct_scen.write_text(yaml.safe_dump(llmct_dict, sort_keys=False, allow_unicode=True),
                          encoding="utf-8")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    variants = {"llmct": ROOT / "src"}
    for item in args.llmct_src:
        label, _, path = item.partition("=")
        variants[label] = Path(path).resolve()
    runs: dict[str, list[dict]] = {k: [] for k in variants} | {"activation_lab": []}
    scan_dirs: dict[str, list[Path]] = {k: [] for k in variants}
    rounds = max(args.llmct_runs, args.activation_lab_runs)
    al_rounds = set(range(rounds // 2, rounds // 2 + args.activation_lab_runs)) if not al_problem else set()
    for i in range(rounds):
        for label, src in variants.items():
            if i >= args.llmct_runs:
                continue
            out = work / f"{label}_scan_{i}"
            res = measure([sys.executable, "-m", "llmct.cli", "scan", str(llmct_scen), "--out", str(out)],
                          cwd=work, env={**env, "PYTHONPATH": str(src)}, log=work / f"{label}_{i}.log")
            res["bytes_written"] = folder_bytes(out)
            runs[label].append(res)
            scan_dirs[label].append(out)
            print(f"round {i}: {label} {res['wall_s']:.1f} s, {res['peak_rss_mb']:.0f} MB", flush=True)
        if i in al_rounds:
            before = set((work / "al_runs").glob("*")) if (work / "al_runs").exists() else set()
            res = measure([str(al_python), "-m", "activation_lab.cli", "run", str(al_scen)], cwd=work,
                          env=env, log=work / f"activation_lab_{i}.log")
            new = sorted(set((work / "al_runs").glob("*")) - before)
            res["bytes_written"] = sum(folder_bytes(p) for p in new)
            runs["activation_lab"].append(res)
            print(f"round {i}: activation_lab {res['wall_s']:.1f} s, {res['peak_rss_mb']:.0f} MB",
                  flush=True)
            if not args.keep:
                for p in new:
                    shutil.rmtree(p, ignore_errors=True)

    llmct_sum = {label: {**summarise(runs[label]), "phases_median_s": llmct_phases(scan_dirs[label]),
                         "bytes_written": runs[label][-1].get("bytes_written") if runs[label] else None,
                         "src": str(src.relative_to(ROOT)) if src.is_relative_to(ROOT) else label}
                 for label, src in variants.items()}
    al_sum = summarise(runs["activation_lab"]) if runs["activation_lab"] else {"runs": 0}
    if al_problem:
        al_sum["not_run"] = al_problem
    if runs["activation_lab"]:
        al_sum["bytes_written"] = runs["activation_lab"][-1]["bytes_written"]
    al_sum.update({"checkout_commit": git_head(al_root), "python": str(al_python),
                   "command": "activation-lab run SCENARIO (its report, notebooks/compare_runs.py, "
                              "is a separate step: not timed)"})
    result = {
        "scenario": {"activation_lab_file": str(AL_SCENARIO), "model": args.model,
                     "weights": str(weights), "dtype": "float32", "device": "cpu",
                     "messages": len(llmct_dict["messages"]) - 1,
                     "references": len(llmct_dict["references"]),
                     "max_new_tokens": llmct_dict["generation"]["max_new_tokens"],
                     "llmct_scenario": llmct_dict},
        "cpu_count": os.cpu_count(),
        "activation_lab": al_sum,
        "llmct": llmct_sum,
        "notes": notes,
    }
    a, m = al_sum.get("median_wall_s"), llmct_sum["llmct"].get("median_wall_s")
    if a and m:
        result["speedup_wall"] = round(a / m, 1)
        result["rss_ratio"] = round(al_sum["median_peak_rss_mb"] / llmct_sum["llmct"]["median_peak_rss_mb"], 2)
    if args.out.resolve() == (RESULTS / "bench_vs_activation_lab.json").resolve():
        path = write_result("bench_vs_activation_lab", result)
    else:
        args.out.write_text(json.dumps(result, indent=2))
        path = args.out
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in result.items() if k in ("activation_lab", "llmct", "speedup_wall")},
                     indent=2, default=str)[:3000])
    print(f"written {path}")


if __name__ == "__main__":
    main()
