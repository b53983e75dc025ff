"""A prompt prefix shared by many inputs, computed once: its KV cache is reused for every item.

A prompt template puts the same block of tokens (instruction, few-shot examples, chat header)
before every stimulus. :class:`SharedPrefix` runs that block once and keeps its key/value cache
(one row, never changed); :func:`llmct.core.capture.capture` (``shared_prefix=``) then runs only
each item's *suffix*, right-padded after the prefix, against a per-batch expansion of that cache.
Because attention is causal, every token of the prefix has the same states in every item, so
this equals full forwards up to float rounding (tested on every architecture, sliding-window
and hybrid caches included). The technique is prefix (prompt) caching, as in vLLM's automatic
prefix caching and the prompt-reuse example of transformers' KV-cache guide (prefill once, copy
the cache for each continuation); the code is this project's own.

Token boundary: an item shares the prefix only when its own tokens *begin with exactly* the
prefix's tokens and continue after them (:meth:`SharedPrefix.splits`); a prompt whose text
merges across the boundary into another token is run as a full forward instead (counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from llmct.core.positions import BatchReadout, ReadOut, batch_readout
from llmct.core.runner import (
    Tokenizer,
    expanded_cache,
    model_device,
    pad_batch,
    prefill,
    prepare,
)
from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class PrefixPlan:
    """How a batch of suffixes gives the read-outs of the whole items.

    ``suffix``: the gather/average plan over the suffix batch, each row's weights scaled so that
    a span which starts inside the prefix keeps its full-item mean; ``coef[R, P]`` (None when no
    read-out touches the prefix): each row's weights on the prefix tokens, applied to the
    prefix's own per-token activations."""

    suffix: BatchReadout
    coef: torch.Tensor | None


@dataclass(eq=False)
class SharedPrefix:
    """The tokens of a shared prompt prefix and their key/value cache (batch of one).

    Build with :meth:`build`. ``cache`` is never mutated: each batch runs on
    :func:`llmct.core.runner.expanded_cache`, a per-layer copy repeated to the batch (the stored
    layers are never extended, cropped or rolled back, so sliding-window and hybrid caches such
    as Gemma 3's stay exact). ``token_acts`` memoises the prefix's per-token activations for
    read-outs that average over prefix tokens (filled by :func:`llmct.core.capture.capture`).
    """

    model: PreTrainedModel = field(repr=False)
    token_ids: list[int]
    cache: Any = field(repr=False)
    token_acts: dict[tuple, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, model: PreTrainedModel, tokenizer: Tokenizer | None,
              prefix: str | Sequence[int], *, add_special_tokens: bool = True) -> SharedPrefix:
        """Tokenise ``prefix`` (text, tokenised like a capture input with the same
        ``add_special_tokens``; or token ids) and run it once, keeping its KV cache.

        Raises:
            CaptureError: an empty prefix, ids outside the vocabulary, a prefix longer than the
                context, or a model that returns no cache.
        """
        ids = prepare(model, tokenizer, [prefix], add_special_tokens)[0]
        device = model_device(model)
        row = torch.tensor([ids], dtype=torch.long, device=device)
        cache = prefill(model, row, torch.ones_like(row))
        return cls(model=model, token_ids=ids, cache=cache)

    def __len__(self) -> int:
        return len(self.token_ids)

    def keeps_every_key(self) -> bool:
        """Whether every layer of the cache holds a key for each prefix token (a sliding-window
        layer keeps only its window: for a longer prefix, the attention weights of the items
        that follow would miss the dropped keys)."""
        return all(layer.keys.shape[-2] == len(self.token_ids) for layer in self.cache.layers)

    def splits(self, token_ids: Sequence[int]) -> bool:
        """True when ``token_ids`` are exactly the prefix's tokens followed by at least one more
        (the per-item boundary check)."""
        n = len(self.token_ids)
        return len(token_ids) > n and list(token_ids[:n]) == self.token_ids

    def batch(self, token_ids: Sequence[Sequence[int]], pad_id: int
              ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """``ids [B, n]`` of the items' suffixes (right-padded), the attention mask
        ``[B, P + n]`` (ones over the prefix, then the suffix mask; position ids then continue
        from ``P``) and a fresh cache of the prefix expanded to ``B`` rows. Every item must
        :meth:`split <splits>` (CaptureError otherwise)."""
        if not all(self.splits(t) for t in token_ids):
            raise CaptureError("an item does not start with the shared prefix's tokens")
        n = len(self.token_ids)
        ids, mask = pad_batch([list(t[n:]) for t in token_ids], pad_id, "right")
        full = torch.cat([torch.ones((len(token_ids), n), dtype=torch.long), mask], dim=1)
        return ids, full, expanded_cache(self.cache, len(token_ids))

    def plan(self, mask: torch.Tensor, readouts: list[list[ReadOut]]) -> PrefixPlan:
        """The read-out plan of a suffix batch whose full mask (from :meth:`batch`) is ``mask``;
        ``readouts`` are per item, in whole-item coordinates (non-negative, as from
        :func:`llmct.core.positions.readouts_for_item`). A token inside the prefix, or the
        prefix part of a span, is read from the prefix's own per-token activations (``coef``);
        the suffix part is gathered from the batch with weight ``1 / span length``, so the sum
        of both is the full forward's mean over the span."""
        n = len(self.token_ids)
        shifted: list[list[ReadOut]] = []
        scales: list[float] = []
        prefix_rows: list[tuple[int, int, float]] = []  # (start, end, weight) per row
        for item in readouts:
            out: list[ReadOut] = []
            for r in item:
                start, end = (r, r + 1) if isinstance(r, int) else r
                if end > n:  # a suffix part: a token or span of the suffix batch
                    s0 = max(start, n) - n
                    out.append(s0 if isinstance(r, int) else (s0, end - n))
                    scales.append((end - max(start, n)) / (end - start))
                else:  # wholly inside the prefix: a placeholder row weighted 0
                    out.append(0)
                    scales.append(0.0)
                prefix_rows.append((start, min(end, n), 1.0 / (end - start)))
            shifted.append(out)
        suffix = batch_readout(mask[:, n:], shifted)
        suffix.weights *= torch.tensor(scales, dtype=torch.float32)[:, None]
        if all(start >= end for start, end, _ in prefix_rows):
            return PrefixPlan(suffix, None)
        coef = torch.zeros((len(prefix_rows), n), dtype=torch.float32)
        for row, (start, end, weight) in enumerate(prefix_rows):
            coef[row, start:end] = weight
        return PrefixPlan(suffix, coef)

    @staticmethod
    def touches_prefix(readouts: list[ReadOut], n: int) -> bool:
        """Whether any of one item's read-outs reads a token among the first ``n``."""
        return any((r if isinstance(r, int) else r[0]) < n for r in readouts)


__all__ = ["PrefixPlan", "SharedPrefix"]
