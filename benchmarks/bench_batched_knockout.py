"""Batched interventions: every ablation mode of a (source, layer) in one forward vs one forward
per mode, on the embedded model's few-shot Set B prompts (experiment 06's read-out knockouts).

Both paths use the same prefix KV cache (:class:`llmct.core.readout.PrefixCache`); the batched
one repeats it once per mode (``copies=3``) and edits each copy's rows with its own mode
(:func:`llmct.core.interventions.by_copy`). Interleaved in one process; also reports the largest
logit difference between the two paths and how many greedy answers differ (and whether each
difference is an exact tie).

    uv run --no-sync python benchmarks/bench_batched_knockout.py [--items 96] [--layers 4]
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
from llmct.core import interventions as iv  # noqa: E402
from llmct.core.readout import PrefixCache  # noqa: E402
from llmct.emotion.prompts import build_inputs  # noqa: E402
from llmct.io.stimuli import load_set  # noqa: E402

MODES = iv.ABLATIONS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--layers", type=int, default=4, help="evenly spaced layers knocked out")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, tok = load_model(args.model)
    texts = [s.text for s in load_set("set_b")[: args.items]]
    inputs, _ = build_inputs(tok, texts, "fewshot")
    n = len(inputs)
    layers = iv.spaced_layers(model.config.num_hidden_layers, args.layers)
    d_model = model.config.hidden_size
    mean = np.random.default_rng(0).standard_normal(d_model).astype(np.float32)
    one = PrefixCache(model, tok, inputs, batch_size=32)
    batched = PrefixCache(model, tok, inputs, batch_size=32, copies=len(MODES))

    def maker(layer, mode):
        return lambda pos: iv.ablate(model, "mlp_out", layer, mode, positions=pos,
                                     mean_vector=mean, seed=1000 * layer)

    makers = {(la, m): maker(la, m) for la in layers for m in MODES}

    def one_at_a_time():
        return [one.run(lambda rows, mk=makers[la, m]: mk("last")).logits
                for la in layers for m in MODES]

    def by_copy():
        out = []
        for la in layers:
            res = batched.run(iv.by_copy([makers[la, m] for m in MODES], n)).logits
            out += [res[c * n:(c + 1) * n] for c in range(len(MODES))]
        return out

    a, b = one_at_a_time(), by_copy()
    diff = max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))
    answers_differ, ties = 0, 0
    for x, y in zip(a, b, strict=True):
        for r in np.flatnonzero((x.argmax(-1) != y.argmax(-1)).numpy()):
            answers_differ += 1
            top2 = torch.topk(x[r], 2).values
            ties += int(top2[0] == top2[1])
    times = interleave(args.rounds, one_at_a_time=one_at_a_time, by_copy=by_copy)
    result = {"model": args.model, "items": n, "layers": layers, "modes": list(MODES),
              "conditions": len(layers) * len(MODES),
              "prompt_tokens_max": max(len(t) for t in one.token_ids),
              "max_abs_logit_diff": diff, "greedy_answers_differing": answers_differ,
              "of_which_exact_ties": ties, "answers_compared": n * len(layers) * len(MODES),
              "one_at_a_time": summary(times["one_at_a_time"]),
              "by_copy": summary(times["by_copy"]),
              "speedup_median": summary(times["one_at_a_time"])["median_s"]
              / summary(times["by_copy"])["median_s"]}
    print(result)
    print(write_result("bench_batched_knockout", result))


if __name__ == "__main__":
    main()
