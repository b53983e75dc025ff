"""Resumed forwards: interventions at block L computed from L on (the blocks below skipped, their
clean resid_pre stored) vs whole forwards, on the embedded model's few-shot Set B prompts.

Two cases, as experiments 05 and 06 run them:
- ``readout``: knockouts at the read-out token over a prefix KV cache (``PrefixCache(copies=3)``,
  every ablation mode per forward), at ``--layers`` evenly spaced layers (05's 8 depths by
  default); ``PrefixCache.run(start_layer=L)`` vs ``run()``.
- ``every_token``: every-token knockouts by full forwards at the first, middle and last layer
  (06's variant); ``readout_logits(start_layer=L, clean=...)`` vs whole forwards. The clean
  forward that keeps resid_pre is counted in the resumed path.

Interleaved in one process; reports the ratio of medians and the largest logit difference
between the paths (0.0: bit-identical).

    uv run --no-sync python benchmarks/bench_resume.py [--items 96] [--layers 8]
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
from llmct.core.readout import PrefixCache, readout_logits  # noqa: E402
from llmct.emotion.prompts import build_inputs  # noqa: E402
from llmct.io.stimuli import load_set  # noqa: E402


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def _case(times: dict, whole, resumed) -> dict:
    w, r = summary(times["whole"]), summary(times["resumed"])
    return {"max_abs_logit_diff": _max_diff(whole(), resumed()), "whole": w, "resumed": r,
            "speedup_median": w["median_s"] / r["median_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--every-token-items", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8, help="evenly spaced read-out layers")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, tok = load_model(args.model)
    inputs, _ = build_inputs(tok, [s.text for s in load_set("set_b")[: args.items]], "fewshot")
    n_layers = model.config.num_hidden_layers
    layers = iv.spaced_layers(n_layers, args.layers)
    mean = np.random.default_rng(0).standard_normal(model.config.hidden_size).astype(np.float32)
    n = len(inputs)
    cache = PrefixCache(model, tok, inputs, batch_size=32, copies=len(iv.ABLATIONS))

    def makers(layer, positions):
        return [lambda pos, m=m: iv.ablate(model, "mlp_out", layer, m, positions=pos,
                                           mean_vector=mean, seed=1000 * layer)
                for m in iv.ABLATIONS]

    def readout(resume: bool) -> list[torch.Tensor]:
        return [cache.run(iv.by_copy(makers(la, "last"), n), start_layer=la if resume else 0
                          ).logits for la in layers]

    sub = inputs[: args.every_token_items]
    every_layers = sorted({0, n_layers // 2, n_layers - 1})

    def every_token(resume: bool) -> list[torch.Tensor]:
        clean = readout_logits(model, tok, sub, keep_resid_pre=every_layers if resume else ())
        out = [clean.logits]
        for la in every_layers:
            for m in ("zero", "noise"):
                out.append(readout_logits(
                    model, tok, sub, lambda rows, la=la, m=m: iv.ablate(
                        model, "mlp_out", la, m, positions="all", seed=la),
                    start_layer=la if resume else 0, clean=clean if resume else None).logits)
        return out

    result = {"model": args.model, "items": n, "prompt_tokens_max": max(map(len, cache.token_ids))}
    t = interleave(args.rounds, whole=lambda: readout(False), resumed=lambda: readout(True))
    result["readout"] = {"layers": layers, **_case(t, lambda: readout(False),
                                                   lambda: readout(True))}
    t = interleave(args.rounds, whole=lambda: every_token(False),
                   resumed=lambda: every_token(True))
    result["every_token"] = {"layers": every_layers, "items": len(sub),
                             **_case(t, lambda: every_token(False), lambda: every_token(True))}
    print(result)
    print(write_result("bench_resume", result))


if __name__ == "__main__":
    main()
