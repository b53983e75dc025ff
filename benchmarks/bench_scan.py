"""The CT scan, measured three ways (each interleaved against its baseline in one run):

1. snapshots: one causal pass vs one pass per message prefix (the original tool's method) —
   tokens processed and wall time (goals: >= 8x fewer tokens, >= 5x faster);
2. monitor overhead per generated token vs plain ``generate`` (goal <= 5%);
3. the whole scan (generating every assistant turn) vs the bare model doing the same work with
   plain transformers: generate the turns, one forward over the conversation, one per reference
   and baseline message (goal within 1.3x); plus peak memory and bytes written.

    uv run python benchmarks/bench_scan.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llmct  # noqa: E402
from benchmarks._common import interleave, peak_memory_of, peak_rss_mb, summary, write_result  # noqa: E402
from llmct.core.chat import render_chat  # noqa: E402
from llmct.scan.monitor import EmotionMonitor, library_from_scenario  # noqa: E402
from llmct.scan.run import run_scan  # noqa: E402
from llmct.scan.scenario import load_scenario  # noqa: E402
from llmct.scan.snapshots import conversation_snapshots  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[1] / "stimuli" / "scenarios" / "rollercoaster.yaml"
NEW_TOKENS = 32


def generated_variant(scenario):
    """The rollercoaster with every assistant turn left for the model to generate."""
    sc = scenario.model_copy(deep=True)
    for m in sc.messages:
        if m.role == "assistant":
            m.content = None
    sc.generation.max_new_tokens = NEW_TOKENS
    sc._lines = scenario._lines
    return sc


def bare_scan(model, tok, scenario):
    """Plain transformers doing the scan's model work (generation + hidden-state forwards)."""
    history = []
    dev = model.get_input_embeddings().weight.device
    for m in scenario.messages:
        content = m.content
        if content is None:
            ids = torch.tensor([render_chat(tok, history, add_generation_prompt=True).input_ids],
                               device=dev)
            with torch.inference_mode():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_token_id,
                                     temperature=None, top_p=None, top_k=None)
            content = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip() or "."
        history.append({"role": m.role, "content": content})
    system = [{"role": "system", "content": scenario.system_prompt}]
    texts = [r.text for r in scenario.references.values()] + list(scenario.baseline)
    for ids in [render_chat(tok, history).input_ids] + [
            render_chat(tok, system + [{"role": "user", "content": t}]).input_ids for t in texts]:
        with torch.inference_mode():
            model(torch.tensor([ids], device=dev), output_hidden_states=True, use_cache=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", choices=["bare", "scan"], default=None)
    args = ap.parse_args()
    model, tok = llmct.load_model(args.model)
    scenario = load_scenario(SCENARIO)
    gen = generated_variant(scenario)
    tmp = Path(tempfile.mkdtemp())

    def scan_once():
        out = run_scan(gen, model_and_tokenizer=(model, tok), out=tmp / "scan", overwrite=True,
                       report=False)
        return out

    if args.memory:
        (scan_once if args.memory == "scan" else (lambda: bare_scan(model, tok, gen)))()
        print(peak_rss_mb())
        return

    # 1. single pass vs per prefix
    chat = [{"role": m.role, "content": m.content} for m in scenario.messages]
    kw = dict(sources=list(llmct.SOURCES), layers="all", position="message_end")
    one = conversation_snapshots(model, tok, chat, **kw)
    many = conversation_snapshots(model, tok, chat, force_per_prefix=True, **kw)
    t_snap = interleave(args.rounds,
                        single_pass=lambda: conversation_snapshots(model, tok, chat, **kw),
                        per_prefix=lambda: conversation_snapshots(model, tok, chat,
                                                                  force_per_prefix=True, **kw))
    # 2. monitor overhead per generated token
    library = library_from_scenario(model, tok, scenario)
    prompt = render_chat(tok, chat[:2], add_generation_prompt=True).input_ids
    ids = torch.tensor([prompt], device=model.get_input_embeddings().weight.device)
    gen_kw = dict(attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=64,
                  min_new_tokens=64, pad_token_id=tok.pad_token_id, temperature=None, top_p=None,
                  top_k=None)

    def plain():
        with torch.inference_mode():
            model.generate(ids, **gen_kw)

    def monitored():
        with EmotionMonitor(model, library), torch.inference_mode():
            model.generate(ids, **gen_kw)

    plain()
    t_mon = interleave(max(args.rounds, 5), plain_generate=plain, monitored_generate=monitored)
    # 3. whole scan vs bare transformers
    scan_once()
    t_scan = interleave(args.rounds, llmct_scan=scan_once, bare_transformers=lambda: bare_scan(model, tok, gen))
    out = scan_once()
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    med = lambda t, k: summary(t[k])["median_s"]  # noqa: E731
    result = {
        "model": args.model,
        "snapshots": {"tokens_single_pass": one.tokens_processed,
                      "tokens_per_prefix": many.tokens_processed,
                      "token_ratio": many.tokens_processed / one.tokens_processed,
                      "timings": {k: summary(v) for k, v in t_snap.items()},
                      "speedup": med(t_snap, "per_prefix") / med(t_snap, "single_pass")},
        "monitor": {"new_tokens": 64, "layers": library.layers,
                    "timings": {k: summary(v) for k, v in t_mon.items()},
                    "overhead": med(t_mon, "monitored_generate") / med(t_mon, "plain_generate") - 1,
                    "library_bytes": None},
        "whole_scan": {"assistant_turns_generated": sum(m.content is None for m in gen.messages),
                       "max_new_tokens": NEW_TOKENS,
                       "timings": {k: summary(v) for k, v in t_scan.items()},
                       "ratio": med(t_scan, "llmct_scan") / med(t_scan, "bare_transformers"),
                       "bytes_written": written,
                       "peak_rss_mb": {"bare": peak_memory_of(__file__, "bare"),
                                       "scan": peak_memory_of(__file__, "scan")}},
    }
    lib_path = tmp / "lib.safetensors"
    run_scan(scenario, model_and_tokenizer=(model, tok), out=tmp / "s2", report=False,
             save_library_to=lib_path)
    result["monitor"]["library_bytes"] = lib_path.stat().st_size
    shutil.rmtree(tmp, ignore_errors=True)
    path = write_result("bench_scan", result)
    s, mo, w = result["snapshots"], result["monitor"], result["whole_scan"]
    print(f"snapshots: {s['tokens_single_pass']} vs {s['tokens_per_prefix']} tokens "
          f"({s['token_ratio']:.1f}x fewer), {s['speedup']:.1f}x faster")
    print(f"monitor: overhead {mo['overhead'] * 100:+.1f}% per generated token "
          f"(layers {mo['layers']}), library {mo['library_bytes']} bytes")
    print(f"whole scan: llmct / bare transformers = {w['ratio']:.2f}; written {w['bytes_written']} "
          f"bytes; peak RSS {w['peak_rss_mb']}")
    print(f"written {path}")


if __name__ == "__main__":
    main()
