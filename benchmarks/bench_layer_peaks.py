"""Item-bootstrap of per-layer pooled AUROCs: every resample's ranks from its draw counts over the
items sorted once (:func:`llmct.analysis.layer_peaks.resampled_auroc_by_layer`) vs ranking one
resample at a time (the loop over :func:`~llmct.analysis.layer_peaks.pooled_auroc_by_layer` it
replaced), on probabilities of
the shape 04's zero-shot vs few-shot intervals use (30 layers, 96 items, 8 classes, 1,000
resamples). Interleaved in one process; checks the two give identical numbers.

    uv run --no-sync python benchmarks/bench_layer_peaks.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import interleave, summary, write_result  # noqa: E402
from llmct.analysis.layer_peaks import (  # noqa: E402
    _bootstrap_rows,
    pooled_auroc_by_layer,
    resampled_auroc_by_layer,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(args.layers, args.items, args.classes))
    proba = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y = np.arange(args.items) % args.classes
    classes = np.arange(args.classes)
    rows = _bootstrap_rows(args.items, args.n_boot, seed=0)

    def loop() -> np.ndarray:
        return np.stack([pooled_auroc_by_layer(proba[:, r], y[r], classes) for r in rows])

    def counted() -> np.ndarray:
        return resampled_auroc_by_layer(proba, y, classes, rows)

    identical = bool(np.array_equal(loop(), counted(), equal_nan=True))
    times = interleave(args.rounds, loop=loop, counted=counted)
    result = {"layers": args.layers, "items": args.items, "classes": args.classes,
              "n_boot": args.n_boot, "identical": identical,
              "loop": summary(times["loop"]), "counted": summary(times["counted"]),
              "speedup_median": summary(times["loop"])["median_s"]
              / summary(times["counted"])["median_s"]}
    print(result)
    print(write_result("bench_layer_peaks", result))


if __name__ == "__main__":
    main()
