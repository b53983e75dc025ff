"""Per-run copy of a sliding-window KV cache: shallow per-layer copy vs the deep copy it replaced.

Gemma 3's caches mix full and sliding-window layers, so :class:`llmct.core.readout.PrefixCache`
cannot crop them back and copies them for every run (every knockout/patching condition). This
times ``PrefixCache.run()`` on the embedded Gemma 3 270M over Set B's few-shot prompts with
``runner.fresh_cache`` as it is (shallow per-layer copy) and with the old ``copy.deepcopy``,
interleaved in one process, and checks both give identical logits.

    uv run --no-sync python benchmarks/bench_prefix_copy.py [--items 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import interleave, summary, write_result  # noqa: E402
from llmct import load_model  # noqa: E402
from llmct.core import readout as ro  # noqa: E402
from llmct.emotion.prompts import build_inputs  # noqa: E402
from llmct.io.stimuli import load_set  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, tok = load_model(args.model)
    texts = [s.text for s in load_set("set_b")[: args.items]]
    inputs, _ = build_inputs(tok, texts, "fewshot")
    cache = ro.PrefixCache(model, tok, inputs, batch_size=args.items)
    shallow = ro.fresh_cache  # PrefixCache.run looks it up in llmct.core.readout

    def run_with(copier):
        ro.fresh_cache = copier
        try:
            return cache.run().logits
        finally:
            ro.fresh_cache = shallow

    same = torch.equal(run_with(shallow), run_with(copy.deepcopy))
    times = interleave(args.rounds, shallow=lambda: run_with(shallow),
                       deepcopy=lambda: run_with(copy.deepcopy))
    result = {"model": args.model, "items": args.items,
              "prompt_tokens_max": max(len(t) for t in cache.token_ids),
              "identical_logits": bool(same),
              "shallow": summary(times["shallow"]), "deepcopy": summary(times["deepcopy"]),
              "speedup_median": summary(times["deepcopy"])["median_s"]
              / summary(times["shallow"])["median_s"]}
    print(result)
    write_result("bench_prefix_copy", result)


if __name__ == "__main__":
    main()
