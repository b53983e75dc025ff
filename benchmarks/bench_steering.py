"""Steering conditions batched vs one at a time, on the embedded model (experiment 11's work per
condition: the pairwise preference read-out over the 48 activities, the LM loss on neutral text,
a greedy sample reply).

One at a time (11's ``--no-batch-conditions``): one :func:`llmct.core.steering.steer` per
condition. Batched (11's default): ``--copies`` conditions per forward with
:func:`llmct.core.steering.steer_copies` -- the blocks up to the steered layer, which do not
depend on the steering, run once for all of them and only the later blocks run per condition --
and every sample reply in one ``generate`` with one condition per row
(:func:`llmct.core.steering.steer_rows`). Interleaved in one process; also reports the largest
differences between the two paths (unrounded P(A), label mass, LM loss) and how many greedy
replies differ.

    uv run --no-sync python benchmarks/bench_steering.py [--conditions 8] [--rounds 1]
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
from llmct.core.generation import generate_replies, generate_reply  # noqa: E402
from llmct.core.steering import (  # noqa: E402
    lm_loss,
    lm_losses,
    mean_residual_norm,
    random_direction,
    steer,
    steer_copies,
    steer_rows,
)
from llmct.emotion.preferences import (  # noqa: E402
    ask_preferences,
    ask_preferences_copies,
    sample_pairs,
)
from llmct.emotion.vectors import default_layer  # noqa: E402
from stimuli.loader import load_set  # noqa: E402

PROMPT = [{"role": "user", "content": "Tell me about your plans for the weekend."}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--conditions", type=int, default=8,
                    help="the unsteered baseline and this many - 1 random directions")
    ap.add_argument("--alpha", type=float, default=0.25)
    ap.add_argument("--copies", type=int, default=16, help="conditions per batched forward")
    ap.add_argument("--sample-tokens", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, tok = load_model(args.model)
    layer = default_layer(model.config.num_hidden_layers)
    items = [a.text for a in load_set("activities")]
    neutral = [s.text for s in load_set("neutral_dialogues", "en")]
    fluency = neutral[-2:]
    norm = mean_residual_norm(model, tok, neutral[:8], layer, mean_from=1, batch_size=4)
    pairs = sample_pairs(len(items), 2, seed=0)
    d = model.config.hidden_size
    dirs = [np.ones(d, np.float32)] + [random_direction(d, 1000 + k)
                                       for k in range(args.conditions - 1)]
    alphas = [0.0] + [args.alpha] * (args.conditions - 1)

    def one_at_a_time():
        out = []
        for direction, alpha in zip(dirs, alphas, strict=True):
            with steer(model, direction, layer, alpha=alpha, scale=norm):
                ch = ask_preferences(model, tok, items, pairs)
                loss = lm_loss(model, tok, fluency)
                reply = generate_reply(model, tok, PROMPT, max_new_tokens=args.sample_tokens)
            out.append((ch, loss, reply))
        return out

    def batched():
        chs, losses = [], []
        for k in range(0, len(dirs), args.copies):
            sl = slice(k, k + args.copies)
            with steer_copies(model, dirs[sl], layer, alphas[sl], scale=norm):
                chs += ask_preferences_copies(model, tok, items, pairs, copies=len(dirs[sl]))
                losses += list(lm_losses(model, tok, fluency, copies=len(dirs[sl])))
        with steer_rows(model, dirs, layer, alphas, scale=norm):
            replies = generate_replies(model, tok, PROMPT, copies=len(dirs),
                                       max_new_tokens=args.sample_tokens)
        return list(zip(chs, losses, replies, strict=True))

    results = {}

    def keep(name, fn):
        return lambda: results.__setitem__(name, fn())

    times = interleave(args.rounds, one_at_a_time=keep("one", one_at_a_time),
                       batched=keep("batched", batched))
    one, new = results["one"], results["batched"]
    result = {"model": args.model, "layer": layer, "conditions": len(dirs), "alpha": args.alpha,
              "copies": args.copies, "pairs": int(len(pairs)), "prompts_per_condition":
              2 * int(len(pairs)), "fluency_texts": len(fluency),
              "sample_tokens": args.sample_tokens,
              "max_abs_p_a_diff": max(float(np.abs(a[0].p_a - b[0].p_a).max())
                                      for a, b in zip(one, new, strict=True)),
              "max_abs_label_mass_diff": max(float(np.abs(a[0].mass - b[0].mass).max())
                                             for a, b in zip(one, new, strict=True)),
              "max_abs_lm_loss_diff": max(float(abs(a[1] - b[1]))
                                          for a, b in zip(one, new, strict=True)),
              "sample_replies_differing": sum(a[2] != b[2] for a, b in zip(one, new, strict=True)),
              "one_at_a_time": summary(times["one_at_a_time"]),
              "batched": summary(times["batched"]),
              "speedup_median": summary(times["one_at_a_time"])["median_s"]
              / summary(times["batched"])["median_s"]}
    print(result)
    print(write_result("bench_steering", result))


if __name__ == "__main__":
    main()
