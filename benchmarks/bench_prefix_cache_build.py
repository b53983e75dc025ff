"""Building the read-out prefix cache of experiments 05 and 06 after the few-shot prompt's shared
start (computed once, :class:`llmct.core.prefix.SharedPrefix`) vs from whole prompts.

``PrefixCache(shared_prefix=...)`` expands the shared start's KV cache to each batch and runs only
the rest of every prompt but its last token; the baseline runs every prompt but its last token
whole (left-padded). Times the build (``copies=3``, as 06 builds it) on the embedded model's
few-shot Set B prompts, interleaved in one process, and compares the clean read-out logits of the
two caches (max abs difference; greedy answers that differ, and whether each is an exact tie).

    uv run --no-sync python benchmarks/bench_prefix_cache_build.py [--items 96] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import interleave, summary, write_result  # noqa: E402
from llmct import load_model  # noqa: E402
from llmct.core.readout import PrefixCache  # noqa: E402
from llmct.emotion.prompts import build_inputs, shared_prefix_cache  # noqa: E402
from llmct.io.stimuli import load_set  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, tok = load_model(args.model)
    inputs, _ = build_inputs(tok, [s.text for s in load_set("set_b")[: args.items]], "fewshot")
    built: dict[str, PrefixCache] = {}

    def build(name: str) -> None:
        shared = shared_prefix_cache(model, tok, "fewshot") if name == "shared" else None
        built[name] = PrefixCache(model, tok, inputs, batch_size=32, copies=3,
                                  shared_prefix=shared)

    times = interleave(args.rounds, shared=lambda: build("shared"), whole=lambda: build("whole"))
    a, b = built["whole"].run().logits, built["shared"].run().logits
    differ = np.flatnonzero((a.argmax(-1) != b.argmax(-1)).numpy())
    ties = sum(int(torch.topk(a[r], 2).values.diff().abs().item() == 0) for r in differ)
    result = {"model": args.model, "items": len(inputs), "copies": 3, "batch_size": 32,
              "prefix_tokens": len(shared_prefix_cache(model, tok, "fewshot")),
              "prompt_tokens_mean": float(np.mean([len(t) for t in built["whole"].token_ids])),
              "batches_shared": built["shared"].n_shared,
              "batches": len(built["shared"].batches),
              "max_abs_logit_diff": float((a - b).abs().max()),
              "logit_max_abs": float(a.abs().max()),
              "greedy_answers_differing": len(differ), "of_which_exact_ties": ties,
              "whole": summary(times["whole"]), "shared": summary(times["shared"]),
              "speedup_median": summary(times["whole"])["median_s"]
              / summary(times["shared"])["median_s"]}
    print(result)
    print(write_result("bench_prefix_cache_build", result))


if __name__ == "__main__":
    main()
