"""Shared benchmark plumbing: interleaved timing rounds, peak memory, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def interleave(rounds: int, **fns) -> dict[str, list[float]]:
    """Run each function once per round, alternating, so load on the machine hits all alike."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_memory_of(script: str, mode: str, env: dict | None = None) -> float:
    """Peak memory (MB) of a fresh process running ``script --memory MODE`` (``env``: extra
    environment variables, e.g. glibc malloc settings)."""
    out = subprocess.run([sys.executable, script, "--memory", mode], capture_output=True,
                         text=True, check=True, env={**os.environ, **(env or {})})
    return float(out.stdout.strip().splitlines()[-1])


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "cuda": torch.cuda.is_available(), "threads": torch.get_num_threads(),
                          "platform": platform.platform()},
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
