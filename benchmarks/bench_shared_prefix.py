"""Extraction with the few-shot prompt's shared prefix computed once vs full forwards per item.

The few-shot prompt puts the same ~100-token block before every stimulus.
``llmct.emotion.extract.extract`` (``shared_prefix=True``, the default) runs that block once and
reuses its KV cache for every item (:class:`llmct.core.prefix.SharedPrefix`); the baseline
(``shared_prefix=False``) runs every prompt whole. This times both extractions (all layers, the
three default sources, batch 8, written to a fresh temporary store each run) of Set A + Set B
items on the embedded model, interleaved in one process, and checks that the stored activations
agree (max abs difference) and how many items fell back to full forwards.

    uv run --no-sync python benchmarks/bench_shared_prefix.py [--items 48] [--rounds 3]

``--attention`` times 07's extraction instead: eager attention, ``attn_out`` and the read-out
token's attention weights over every key (``bench_shared_prefix_attention.json``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import interleave, summary, write_result  # noqa: E402
from llmct import load_model  # noqa: E402
from llmct.emotion import extract as ex  # noqa: E402
from llmct.emotion.prompts import build_inputs, template_prefix  # noqa: E402
from llmct.io.stimuli import load_sets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=48, help="Set A + B items, spread evenly")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--attention", action="store_true", help="07's extraction (eager, weights)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, tok = load_model(args.model, dtype="float32", device="cpu",
                            **({"attn_implementation": "eager"} if args.attention else {}))
    sources = ("attn_out",) if args.attention else ex.DEFAULT_SOURCES
    everything = load_sets("set_a", "set_b")
    step = max(1, len(everything) // args.items)
    stimuli = everything[::step][: args.items]
    inputs, _ = build_inputs(tok, [s.text for s in stimuli], "fewshot")
    lengths = [len(t) for t in tok(inputs, add_special_tokens=True)["input_ids"]]
    prefix_tokens = len(tok(template_prefix(tok, "fewshot"), add_special_tokens=True)["input_ids"])
    runs = {"shared": 0, "full": 0}
    last: dict[str, Path] = {}
    summaries: dict[str, ex.ExtractionSummary] = {}

    def extraction(name: str) -> None:
        runs[name] += 1
        folder = work / f"{name}-{runs[name]}"
        summaries[name] = ex.extract(model, tok, stimuli, folder, prompt="fewshot",
                                     progress=False, model_name=args.model, sources=sources,
                                     attention=args.attention, shared_prefix=name == "shared")
        last[name] = folder

    with tempfile.TemporaryDirectory(prefix="bench_shared_prefix-") as tmp:
        work = Path(tmp)
        times = interleave(args.rounds, shared=lambda: extraction("shared"),
                           full=lambda: extraction("full"))
        got = ex.load_extraction(last["shared"], stimuli)
        want = ex.load_extraction(last["full"], stimuli)
    diff = {s: float(np.abs(got.acts[s] - want.acts[s]).max()) for s in got.acts}
    if args.attention:
        diff["attention_weights"] = float(np.nanmax(np.abs(got.attention - want.attention)))
    result = {
        "model": args.model, "prompt": "fewshot", "sets": ["set_a", "set_b"],
        "items": len(stimuli), "batch_size": 8, "sources": list(sources),
        "attention": args.attention,
        "layers": "all", "prompt_tokens_mean": float(np.mean(lengths)),
        "prefix_tokens": prefix_tokens,
        "tokens_run_ratio": float(np.sum(lengths) / (np.sum(lengths) - len(lengths) * prefix_tokens)),
        "shared_items": summaries["shared"].n_shared_prefix,
        "fallback_items": summaries["shared"].n_prefix_fallback,
        "max_abs_diff": diff,
        ("attn_out_max_abs" if args.attention else "residual_max_abs"):
            float(np.abs(want.acts[sources[0]]).max()),
        "shared": summary(times["shared"]), "full": summary(times["full"]),
        "speedup_median": summary(times["full"])["median_s"] / summary(times["shared"])["median_s"],
    }
    print(result)
    write_result("bench_shared_prefix" + ("_attention" if args.attention else ""), result)


if __name__ == "__main__":
    main()
