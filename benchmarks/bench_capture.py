"""Capture overhead: all four sources at all layers (last token) vs the bare forward of the same
padded batches, interleaved in one run. Goal: wall-time ratio <= 1.10.

    uv run python benchmarks/bench_capture.py [--n 64] [--batch-size 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llmct  # noqa: E402
from benchmarks._common import (  # noqa: E402
    interleave,
    peak_memory_of,
    peak_rss_mb,
    summary,
    write_result,
)
from llmct.core.capture import model_device, pad_batch, position_ids_from_mask  # noqa: E402
from llmct.emotion.prompts import fewshot_prompt  # noqa: E402
from stimuli.loader import load_set  # noqa: E402


def setup(n: int, model_name: str):
    model, tok = llmct.load_model(model_name)
    texts = [fewshot_prompt(s.text) for s in load_set("set_a")[:n]]
    ids = [tok(t)["input_ids"] for t in texts]
    return model, tok, texts, ids


def bare_batches(model, tok, ids, batch_size):
    """The same batches capture() builds (longest first, right-padded), for plain forwards."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    dev = model_device(model)
    out = []
    for k in range(0, len(order), batch_size):
        x, m = pad_batch([ids[i] for i in order[k:k + batch_size]], tok.pad_token_id, "right")
        out.append((x.to(dev), m.to(dev)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", choices=["bare", "capture"], default=None)
    args = ap.parse_args()
    model, tok, texts, ids = setup(args.n, args.model)
    batches = bare_batches(model, tok, ids, args.batch_size)

    def bare_lm():  # what a user runs: the full CausalLM forward, logits for every token
        with torch.inference_mode():
            for x, m in batches:
                model(input_ids=x, attention_mask=m, position_ids=position_ids_from_mask(m),
                      use_cache=False)

    def bare_base():  # the same work capture does (no LM head), without hooks
        with torch.inference_mode():
            for x, m in batches:
                model.base_model(input_ids=x, attention_mask=m,
                                 position_ids=position_ids_from_mask(m), use_cache=False)

    def cap():
        llmct.capture(model, tok, ids, batch_size=args.batch_size, padding_side="right")

    if args.memory:
        (bare_base if args.memory == "bare" else cap)()
        print(peak_rss_mb())
        return
    cap()  # warm-up (allocator, kernels)
    times = interleave(args.rounds, bare_lm=bare_lm, bare_base=bare_base, capture=cap)
    n_tokens = sum(len(t) for t in ids)
    med = {k: summary(v)["median_s"] for k, v in times.items()}
    result = {
        "model": args.model, "n_items": args.n, "batch_size": args.batch_size,
        "tokens": n_tokens, "sources": list(llmct.SOURCES), "layers": "all", "position": "last",
        "timings": {k: summary(v) for k, v in times.items()},
        "ratio_capture_vs_bare_base": med["capture"] / med["bare_base"],
        "ratio_capture_vs_bare_lm": med["capture"] / med["bare_lm"],
        "tokens_per_s": {k: n_tokens / v for k, v in med.items()},
        "peak_rss_mb": {"bare": peak_memory_of(__file__, "bare"),
                        "capture": peak_memory_of(__file__, "capture")},
        # glibc's dynamic mmap threshold lets many small read-out tensors fragment the heap, which
        # inflates peak RSS; with a fixed threshold the difference is the stored arrays alone.
        "peak_rss_mb_fixed_mmap_threshold": {
            m: peak_memory_of(__file__, m, {"MALLOC_MMAP_THRESHOLD_": "65536"})
            for m in ("bare", "capture")},
        "stored_mb": 4 * len(llmct.SOURCES) * model.config.num_hidden_layers
        * model.config.hidden_size * args.n / 2**20,
    }
    path = write_result("bench_capture", result)
    print(f"{n_tokens} tokens in {len(batches)} batches, {args.rounds} interleaved rounds")
    for k, v in med.items():
        print(f"  {k:<10} {v:7.3f} s  {n_tokens / v:8.0f} tok/s")
    print(f"  capture / bare base-model forward = {result['ratio_capture_vs_bare_base']:.3f}")
    print(f"  capture / bare CausalLM forward   = {result['ratio_capture_vs_bare_lm']:.3f}")
    print(f"  peak RSS MB: {result['peak_rss_mb']}; with MALLOC_MMAP_THRESHOLD_=65536: "
          f"{result['peak_rss_mb_fixed_mmap_threshold']}; arrays kept: {result['stored_mb']:.1f}")
    print(f"written {path}")


if __name__ == "__main__":
    main()
