"""Data-parallel extraction throughput: ``torchrun --nproc_per_node 2`` (one torch thread each)
vs one process with 2 threads, on this machine's 2 CPU cores, whole command timed (interpreter
start, model load, extraction of Set A under the few-shot prompt, rank 0's merge and summary).

Each run writes into a fresh activation folder, so nothing is re-used between runs; the two
configurations alternate (``--rounds``). On a 2-core CPU both use the same cores, so the ratio
says what process-level parallelism costs or gains against torch's own threads; on N GPUs the
same command (``accelerate launch`` / ``torchrun``) gives one model per GPU.

    uv run --no-sync python benchmarks/bench_data_parallel.py [--limit 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import summary, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXTRACT = str(ROOT / "experiments" / "01_extract" / "run.py")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(nproc: int, limit: int, tmp: Path) -> float:
    """Wall seconds of one extraction of Set A (``limit`` items per emotion) with ``nproc``
    processes (``2 // nproc`` torch threads each)."""
    threads = str(max(1, 2 // nproc))
    folder = Path(tempfile.mkdtemp(dir=tmp))
    args = ["--sets", "set_a", "--limit", str(limit), "--torch-threads", threads,
            "--no-progress", "--activations", str(folder / "acts"), "--out", str(folder / "out")]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                 "--master_port", str(_port())] if nproc > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    t0 = time.perf_counter()
    done = subprocess.run([*launcher, EXTRACT, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    secs = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{nproc} process(es) failed:\n{done.stderr[-2000:]}")
    return secs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=4, help="items per emotion of Set A")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"one_process": [], "two_processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            times["one_process"].append(run(1, args.limit, Path(tmp)))
            times["two_processes"].append(run(2, args.limit, Path(tmp)))
    n_items = 9 * args.limit  # Set A: 9 labels
    one, two = summary(times["one_process"]), summary(times["two_processes"])
    result = {"items": n_items, "cores": os.cpu_count(), "sources": "01_extract defaults",
              "one_process_2_threads": one, "two_processes_1_thread_each": two,
              "items_per_s_one": n_items / one["median_s"],
              "items_per_s_two": n_items / two["median_s"],
              "throughput_ratio_two_over_one": one["median_s"] / two["median_s"]}
    print(result)
    print(write_result("bench_data_parallel", result))


if __name__ == "__main__":
    main()
