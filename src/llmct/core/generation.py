"""Generating assistant replies from a chat history (seeded, greedy by default)."""

from __future__ import annotations

import torch

from llmct.core.chat import FALLBACK_TEMPLATE, end_plain_turn, render_chat
from llmct.core.runner import model_device


def eos_ids(model, tokenizer=None, eos: int | list[int] | None = None) -> set[int]:
    """The token ids that end a generation: ``eos`` when given, else the model's generation
    config's, else the tokenizer's (empty when none is known)."""
    if eos is None:
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None and tokenizer is not None:
        eos = getattr(tokenizer, "eos_token_id", None)
    return {int(e) for e in (eos if isinstance(eos, list | tuple) else [eos]) if e is not None}


def generate_reply(model, tokenizer, messages: list[dict], *, max_new_tokens: int = 64,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                   seed: int = 0, streamer=None) -> str:
    """The model's next assistant message for ``messages`` (special tokens stripped; with the
    plain fallback format, cut where the model starts writing a next turn itself)."""
    return generate_replies(model, tokenizer, messages, max_new_tokens=max_new_tokens,
                            do_sample=do_sample, temperature=temperature, top_p=top_p, seed=seed,
                            streamer=streamer)[0]


def generate_replies(model, tokenizer, messages: list[dict], *, copies: int = 1,
                     max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 1.0,
                     top_p: float = 1.0, seed: int = 0, streamer=None) -> list[str]:
    """:func:`generate_reply` for ``copies`` rows of the same prompt in one ``generate`` (no
    padding): ``copies`` replies, row ``r``'s as the model gives it under whatever per-row hooks
    are active (e.g. :func:`llmct.core.steering.steer_rows`, one steering condition per row).
    A row is cut after its first end-of-sequence token, as a one-row generation stops there;
    greedy rows equal one-row generations up to argmax ties that batched float rounding can
    flip. Raises ValueError for ``copies < 1``."""
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    rendered = render_chat(tokenizer, messages, add_generation_prompt=True)
    ids = torch.tensor([rendered.input_ids] * copies, device=model_device(model))
    torch.manual_seed(seed)
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                  pad_token_id=tokenizer.pad_token_id, streamer=streamer)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:  # explicit: never inherit a sampling default from generation_config
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
    eos, replies = eos_ids(model, tokenizer), []
    for row in out[:, ids.shape[1]:].tolist():
        cut = next((k + 1 for k, t in enumerate(row) if t in eos), len(row))
        text = tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
        if rendered.template == FALLBACK_TEMPLATE:  # a base model: the reply ends at a new turn
            text = end_plain_turn(text)
        replies.append(text or "(empty)")
    return replies
