"""Load costs of the embedded models: first load (reassemble + verify + dequantize + cache, then
load), cached load (median of fresh processes, and a second load inside the same process), peak
resident memory of a cached load, and the cache's size on disk. Each measurement runs in a fresh
process against a temporary ``LLMCT_CACHE``, so the real cache is never touched.

    uv run --no-sync python benchmarks/bench_embedded_models.py [--models gemma3-270m ...] [--rounds 3]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import peak_rss_mb, write_result  # noqa: E402


def _child(name: str) -> None:
    """One load in this (fresh) process; prints a JSON line with its timings and peak RSS."""
    t0 = time.perf_counter()
    import torch

    import llmct
    from llmct.core import models

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    import_s = time.perf_counter() - t0
    rss_after_import = peak_rss_mb()
    spec = models.embedded_model(name)
    was_cached = (models.cache_dir() / spec.cache_name / "model.safetensors").exists()
    t, c = time.perf_counter(), time.process_time()
    models.embedded_model_dir(name)  # conversion when not cached, else a stat
    convert_s, convert_cpu_s = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    model, tok = llmct.load_model(name, dtype="float32", device="cpu")
    load_s, load_cpu_s = time.perf_counter() - t, time.process_time() - c
    ids = tok("The weather today is", return_tensors="pt")
    with torch.no_grad():
        model(**ids)  # one forward: the model is really usable
    peak = peak_rss_mb()
    del model, tok
    # The same load again in this process: files only, transformers' lazy imports already done.
    t, c = time.perf_counter(), time.process_time()
    llmct.load_model(name, dtype="float32", device="cpu")
    reload_s, reload_cpu_s = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"was_cached": was_cached, "import_s": import_s, "convert_s": convert_s,
                      "load_s": load_s, "total_s": convert_s + load_s, "reload_s": reload_s,
                      "convert_cpu_s": convert_cpu_s, "load_cpu_s": load_cpu_s,
                      "reload_cpu_s": reload_cpu_s,
                      "peak_rss_mb": peak, "rss_after_import_mb": rss_after_import}))


def _run_child(name: str, cache: Path) -> dict:
    env = {**os.environ, "LLMCT_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True,
                         text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_model(name: str, rounds: int) -> dict:
    from llmct.core import models

    spec = models.embedded_model(name)
    cache = Path(tempfile.mkdtemp(prefix="llmct-bench-cache-"))
    try:
        first = _run_child(name, cache)
        assert not first["was_cached"], "the temporary cache was not empty"
        folder = cache / spec.cache_name
        files = {f.name: f.stat().st_size for f in sorted(folder.iterdir()) if f.is_file()}
        cached = [_run_child(name, cache) for _ in range(rounds)]
        assert all(c["was_cached"] for c in cached)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    loads = [c["load_s"] for c in cached]
    return {
        "model": spec.name, "hf_id": spec.hf_id, "quantization": spec.quantization,
        "n_params": spec.n_params, "gguf_bytes": models._gguf_bytes(spec),
        "first_load": {"convert_s": first["convert_s"], "load_after_convert_s": first["load_s"],
                       "total_s": first["total_s"], "peak_rss_mb": first["peak_rss_mb"],
                       "convert_cpu_s": first["convert_cpu_s"],
                       "total_cpu_s": first["convert_cpu_s"] + first["load_cpu_s"],
                       "import_s": first["import_s"]},
        "cached_load": {"median_s": statistics.median(loads), "min_s": min(loads),
                        "runs": len(loads), "times_s": loads,
                        "cpu_median_s": statistics.median(c["load_cpu_s"] for c in cached),
                        "reload_same_process_median_s":
                            statistics.median(c["reload_s"] for c in cached),
                        "reload_same_process_cpu_median_s":
                            statistics.median(c["reload_cpu_s"] for c in cached),
                        "peak_rss_mb_median": statistics.median(c["peak_rss_mb"] for c in cached),
                        "rss_after_import_mb_median":
                            statistics.median(c["rss_after_import_mb"] for c in cached),
                        "import_s_median": statistics.median(c["import_s"] for c in cached)},
        "cache_bytes": sum(files.values()), "cache_files": files,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=None, help="default: every embedded model")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes for the cached load")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    from llmct.core import models

    names = args.models or list(models.EMBEDDED_MODELS)
    unknown = [n for n in names if models.embedded_model(n) is None]
    if unknown:
        sys.exit(f"bench_embedded_models: error: not embedded models: {unknown}")
    if args.rounds < 1:
        sys.exit("bench_embedded_models: error: --rounds must be >= 1")
    load_before = os.getloadavg()
    results = [bench_model(n, args.rounds) for n in names]
    for r in results:
        print(f"{r['model']}: first load {r['first_load']['total_s']:.1f} s "
              f"(CPU {r['first_load']['total_cpu_s']:.1f} s) "
              f"(convert {r['first_load']['convert_s']:.1f} s), cached load "
              f"{r['cached_load']['median_s']:.1f} s (CPU {r['cached_load']['cpu_median_s']:.1f} s; "
              "again in-process "
              f"{r['cached_load']['reload_same_process_median_s']:.1f} s), peak RSS cached "
              f"{r['cached_load']['peak_rss_mb_median']:.0f} MB, cache {r['cache_bytes'] / 1e6:.0f} MB")
    path = write_result("embedded_models", {
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "note": "*_s is wall-clock time, *_cpu_s the process's CPU time (user + system, less "
                "sensitive to other jobs on the machine); each load is a fresh process on an empty (first_load) or filled (cached_load) "
                "temporary LLMCT_CACHE, fp32 on CPU; load times include transformers' lazy "
                "imports of the tokenizer and model classes (import_s is torch + llmct only); "
                "reload_same_process is a second load in the same process (files only); "
                "peak RSS is taken after the first load and one forward",
        "models": results,
    })
    print(path)


if __name__ == "__main__":
    main()
