"""Conversation snapshots: the model's state after each message, in one causal pass when possible.

A causal model's activations at token ``t`` depend only on tokens ``<= t``. If the chat template
has the prefix property (the rendering of ``messages[:k]`` is a token prefix of the rendering of
the whole conversation), one forward over the whole conversation yields every snapshot exactly;
otherwise we fall back to one forward per prefix (as the original tool always did).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmct.core.capture import Capture, capture
from llmct.core.chat import MessageSpan, has_prefix_property, render_chat
from llmct.core.prefix import SharedPrefix


@dataclass
class Snapshots:
    capture: Capture  # rows = messages, in order
    mode: str  # "single_pass" or "per_prefix"
    spans: list[MessageSpan]
    tokens_processed: int
    n_tokens: list[int]  # tokens of each message
    template: str = ""  # which chat template rendered it (see llmct.core.chat.ChatRendering.template)


def readout(span: MessageSpan, position: str):
    """The read-out of one message: its content's last token, the rendered prefix's last token,
    or the mean over its content tokens."""
    if position == "message_end":
        return span.content_last
    if position == "template_end":
        return span.last
    if position == "mean":
        return (span.content_start, span.content_end)
    raise ValueError(f"unknown snapshot position {position!r}")


def conversation_snapshots(model, tokenizer, messages: list[dict], *, sources, layers,
                           position: str, force_per_prefix: bool = False,
                           batch_size: int = 4) -> Snapshots:
    """One snapshot per message prefix (``messages[:k+1]``) at ``position``."""
    full = render_chat(tokenizer, messages)
    n_tokens = [s.end - s.start for s in full.spans]
    if not force_per_prefix and has_prefix_property(tokenizer, messages):
        spec = [[readout(s, position) for s in full.spans]]
        cap = capture(model, tokenizer, [full.input_ids], sources=sources, layers=layers,
                      position=spec)
        return Snapshots(cap, "single_pass", full.spans, len(full.input_ids), n_tokens,
                         full.template)
    renders = [render_chat(tokenizer, messages[: k + 1]) for k in range(len(messages))]
    spec = [[readout(r.spans[-1], position)] for r in renders]
    cap = capture(model, tokenizer, [r.input_ids for r in renders], sources=sources,
                  layers=layers, position=spec, batch_size=batch_size)
    processed = int(sum(len(r.input_ids) for r in renders))
    return Snapshots(cap, "per_prefix", [r.spans[-1] for r in renders], processed, n_tokens,
                     full.template)


def single_message_states(model, tokenizer, texts: list[str], system_prompt: str | None, *,
                          sources, layers, position: str, batch_size: int = 8,
                          role: str = "user", share_prefix: bool = False
                          ) -> tuple[np.ndarray, int]:
    """States of standalone messages (references, baseline) rendered like the conversation:
    the same template and the same system prompt, read at the same position rule, each text as
    one ``role`` message (``"user"``, or ``"assistant"`` for the role control of the scan).
    ``share_prefix``: run them as :func:`message_states` does (the same numbers to float
    rounding, fewer tokens).

    Returns ``[len(sources), len(texts), n_layers, d]`` and the number of tokens processed.
    """
    if share_prefix:
        return message_states(model, tokenizer, [(role, t) for t in texts], system_prompt,
                              sources=sources, layers=layers, position=position,
                              batch_size=batch_size)
    prefix = [{"role": "system", "content": system_prompt}] if system_prompt else []
    renders = [render_chat(tokenizer, [*prefix, {"role": role, "content": t}]) for t in texts]
    spec = [[readout(r.spans[-1], position)] for r in renders]
    cap = capture(model, tokenizer, [r.input_ids for r in renders], sources=sources,
                  layers=layers, position=spec, batch_size=batch_size)
    return np.stack([cap[s] for s in sources]), int(sum(len(r.input_ids) for r in renders))


def _common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every row shares, leaving each row at least one token after."""
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def message_states(model, tokenizer, items: Sequence[tuple[str, str]], system_prompt: str | None,
                   *, sources, layers, position: str, batch_size: int = 8,
                   share_prefix: bool = True) -> tuple[np.ndarray, int]:
    """States of standalone ``(role, text)`` messages rendered like the conversation (as
    :func:`single_message_states`, every role in one call), with two savings that leave the
    numbers unchanged up to float rounding:

    - each rendering stops at its last read-out token (a causal model's state at a token does
      not depend on the tokens after it: ``message_end`` drops the end-of-turn tokens);
    - the leading tokens every rendering shares (the system prompt and the turn header) run once
      and their key/value cache is reused (:class:`llmct.core.prefix.SharedPrefix`), when
      ``share_prefix`` and there are two or more items.

    Returns ``[len(sources), len(items), n_layers, d]`` and the number of tokens run.
    """
    prefix = [{"role": "system", "content": system_prompt}] if system_prompt else []
    renders = [render_chat(tokenizer, [*prefix, {"role": role, "content": text}])
               for role, text in items]
    spec = [readout(r.spans[-1], position) for r in renders]
    ids = [r.input_ids[: (s[1] if isinstance(s, tuple) else s + 1)]
           for r, s in zip(renders, spec, strict=True)]
    n = _common_prefix_length(ids) if share_prefix and len(ids) > 1 else 0
    shared = SharedPrefix.build(model, tokenizer, ids[0][:n]) if n else None
    cap = capture(model, tokenizer, ids, sources=sources, layers=layers,
                  position=[[s] for s in spec], batch_size=batch_size, shared_prefix=shared)
    return np.stack([cap[s] for s in sources]), n + sum(len(i) - n for i in ids)
