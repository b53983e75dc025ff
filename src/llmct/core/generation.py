"""Generating assistant replies from a chat history (seeded, greedy by default)."""

from __future__ import annotations

import torch

from llmct.core.chat import FALLBACK_TEMPLATE, end_plain_turn, render_chat
from llmct.core.runner import model_device


def generate_reply(model, tokenizer, messages: list[dict], *, max_new_tokens: int = 64,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                   seed: int = 0, streamer=None) -> str:
    """The model's next assistant message for ``messages`` (special tokens stripped; with the
    plain fallback format, cut where the model starts writing a next turn itself)."""
    rendered = render_chat(tokenizer, messages, add_generation_prompt=True)
    ids = torch.tensor([rendered.input_ids], device=model_device(model))
    torch.manual_seed(seed)
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                  pad_token_id=tokenizer.pad_token_id, streamer=streamer)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:  # explicit: never inherit a sampling default from generation_config
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
    text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
    if rendered.template == FALLBACK_TEMPLATE:  # a base model: the reply ends where it starts a turn
        text = end_plain_turn(text)
    return text or "(empty)"
