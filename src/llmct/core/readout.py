"""Read-out forwards under an intervention: next-token logits at each item's read-out.

:func:`readout_logits` runs batched forwards under a per-batch intervention (a callable that
returns e.g. :func:`llmct.core.interventions.patch`) and returns next-token logits at each item's
read-out; :class:`PrefixCache` stores the key/value cache of every token but the last, so an
intervention *at the read-out token* costs one token of compute per item (the earlier tokens
cannot see the last one, so their keys and values are unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import torch

from llmct.core.arch import get_adapter
from llmct.core.capture import resolve_layers
from llmct.core.hooks import Hooks
from llmct.core.interventions import Intervention
from llmct.core.positions import batch_readout, readouts_for_item
from llmct.core.runner import (
    Tokenizer,
    cache_is_croppable,
    fresh_cache,
    model_device,
    pad_batch,
    pad_id,
    prefill,
    prepare,
)
from llmct.core.runner import forward as run_forward
from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class Readout:
    """Next-token logits at each item's read-out (``[N, V]`` float32, CPU) and, for the layers
    asked for, the block output at the read-out after all interventions (``hidden[l]`` [N, D])."""

    logits: torch.Tensor
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)


def _enter(intervention: Intervention, items: list[int]):
    ctx = intervention(items) if intervention is not None else None
    return ctx if ctx is not None else nullcontext()


def readout_logits(model: PreTrainedModel, tokenizer: Tokenizer | None, inputs: Sequence,
                   intervention: Intervention = None, *,
                   position: str | int | Sequence[Sequence[int]] = "last", batch_size: int = 8,
                   padding_side: str | None = None, hidden_layers: Sequence[int] = (),
                   add_special_tokens: bool = True) -> Readout:
    """Batched full forwards of ``inputs`` under ``intervention(items)`` (items in row order);
    next-token logits at each item's read-out (one token index per item, mapped via the mask)."""
    token_ids = prepare(model, tokenizer, inputs, add_special_tokens)
    readouts = [readouts_for_item(position, i, len(t), 0) for i, t in enumerate(token_ids)]
    if any(len(r) != 1 or isinstance(r[0], tuple) for r in readouts):
        raise CaptureError("readout_logits reads one token per item")
    side = padding_side or getattr(tokenizer, "padding_side", None) or "right"
    adapter = get_adapter(model)
    n_layers = adapter.n_layers(model)
    layers = resolve_layers(list(hidden_layers), n_layers) if len(hidden_layers) else []
    pad, device = pad_id(tokenizer, model), model_device(model)
    logits: list[torch.Tensor | None] = [None] * len(token_ids)
    hidden: dict[int, list[torch.Tensor | None]] = {la: [None] * len(token_ids) for la in layers}
    for start in range(0, len(token_ids), batch_size):
        items = list(range(start, min(start + batch_size, len(token_ids))))
        ids, mask = pad_batch([token_ids[i] for i in items], pad, side)
        plan = batch_readout(mask, [readouts[i] for i in items]).to(device)
        got: dict[int, torch.Tensor] = {}
        with Hooks() as hooks, _enter(intervention, items), torch.inference_mode():
            for la in layers:  # readers run after every edit of the same site
                def keep(h: torch.Tensor, la: int = la, got: dict = got, plan=plan) -> None:
                    got[la] = plan.reduce(h).cpu()
                hooks.read(adapter.site(model, "hidden_out", la), keep)
            out = run_forward(model, ids.to(device), mask.to(device))
        _fill(logits, hidden, items, plan.reduce(out.logits).cpu(), got)
    return _stacked(logits, hidden)


class PrefixCache:
    """Key/value caches of every input's tokens but the last, for interventions at the read-out.

    ``run(intervention)`` re-runs only each item's final token against its cached prefix and
    returns a :class:`Readout` at that token -- the same numbers as a full forward (to float
    tolerance) for any intervention confined to the last token, at a fraction of the cost.
    Batches are left-padded (the last token is the last column); ``intervention`` receives the
    batch's row indices and may use positions "last" / -1 only.

    The stored prefix is never changed by a run: a cache whose every layer keeps all its past
    states is extended and cropped back; any other cache (sliding-window or hybrid layers, as in
    Mistral or Gemma 3, whose rotating layers cannot be rolled back) is copied for each run and
    the copy extended. ``copy_cache=True`` forces copying.

    ``copies``: each prefix is computed once and its cache repeated, so that one forward can run
    ``copies`` different interventions per item (the fixed cost of a forward is paid once).
    Rows are then *virtual*: row ``c * n + i`` is copy ``c`` of item ``i``; ``run`` returns
    ``copies * n`` logits in that order and passes virtual row indices to ``intervention``.
    Raises CaptureError for inputs shorter than 2 tokens or ids outside the vocabulary.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: Tokenizer | None, inputs: Sequence, *,
                 batch_size: int = 8, copies: int = 1, add_special_tokens: bool = True,
                 copy_cache: bool = False) -> None:
        self.model = model
        self.token_ids = prepare(model, tokenizer, inputs, add_special_tokens)
        if any(len(t) < 2 for t in self.token_ids):
            raise CaptureError("PrefixCache needs inputs of at least 2 tokens")
        if copies < 1:
            raise CaptureError(f"copies must be >= 1, got {copies}")
        self.copies = int(copies)
        self.copy_cache = bool(copy_cache)
        self.pad, self.device = pad_id(tokenizer, model), model_device(model)
        self.adapter = get_adapter(model)
        self.blocks = self.adapter.block_list(model)
        order = sorted(range(len(self.token_ids)), key=lambda i: -len(self.token_ids[i]))
        self.batches = [order[k: k + batch_size] for k in range(0, len(order), batch_size)]
        self._state: list[dict | None] = [None] * len(self.batches)
        for k in range(len(self.batches)):
            self._build(k)

    def __len__(self) -> int:
        return len(self.token_ids) * self.copies

    def _build(self, k: int) -> None:
        items = self.batches[k]
        ids, mask = pad_batch([self.token_ids[i] for i in items], self.pad, "left")
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = prefill(self.model, ids[:, :-1], mask[:, :-1])
        c = self.copies
        if c > 1:  # row r of the repeated batch is copy r % c of item r // c
            cache.batch_repeat_interleave(c)
            ids, mask = (t.repeat_interleave(c, dim=0) for t in (ids, mask))
        rows = [cp * len(self.token_ids) + i for i in items for cp in range(c)]
        self._state[k] = {"ids": ids, "mask": mask, "cache": cache, "rows": rows,
                          "length": ids.shape[1] - 1,
                          "crop": cache_is_croppable(cache) and not self.copy_cache}

    def _last_token(self, st: dict, cache):
        return run_forward(self.model, st["ids"][:, -1:], st["mask"], past_key_values=cache,
                           use_cache=True)

    def run(self, intervention: Intervention = None, *, hidden_layers: Sequence[int] = ()
            ) -> Readout:
        """Logits (and block outputs at ``hidden_layers``) at every row's last token under
        ``intervention(rows)``; the cached prefixes are left as they were."""
        layers = resolve_layers(list(hidden_layers), len(self.blocks)) if len(hidden_layers) else []
        n = len(self)
        logits: list[torch.Tensor | None] = [None] * n
        hidden: dict[int, list[torch.Tensor | None]] = {la: [None] * n for la in layers}
        for k in range(len(self.batches)):
            st = cast(dict, self._state[k])  # every batch is built in __init__
            items = st["rows"]
            got: dict[int, torch.Tensor] = {}
            cache = st["cache"] if st["crop"] else fresh_cache(st["cache"])
            ok = False
            try:
                with Hooks() as hooks, _enter(intervention, items), torch.inference_mode():
                    for la in layers:
                        def keep(h: torch.Tensor, la: int = la, got: dict = got) -> None:
                            got[la] = h[:, -1].float().cpu()
                        hooks.read(self.adapter.site(self.model, "hidden_out", la), keep)
                    out = self._last_token(st, cache)
                ok = True
            finally:
                if st["crop"]:
                    if ok:
                        st["cache"].crop(-1)
                    if not ok or st["cache"].get_seq_length() != st["length"]:
                        self._build(k)  # a failed or unexpected forward left the cache unknown
            _fill(logits, hidden, items, out.logits[:, -1].float().cpu(), got)
        return _stacked(logits, hidden)


def _fill(logits: list, hidden: dict[int, list], items: Sequence[int],
          batch_logits: torch.Tensor, got: dict[int, torch.Tensor]) -> None:
    """Put a batch's rows (``batch_logits`` [B, V], ``got[layer]`` [B, D]) into the slots of its
    ``items`` (row ``r`` is item ``items[r]``)."""
    for r, i in enumerate(items):
        logits[i] = batch_logits[r]
        for la in hidden:
            hidden[la][i] = got[la][r]


def _stacked(logits: list, hidden: dict[int, list]) -> Readout:
    """The :class:`Readout` of filled slots (every slot was filled by its batch)."""
    return Readout(torch.stack(cast(list[torch.Tensor], logits)),
                   {la: torch.stack(cast(list[torch.Tensor], v)) for la, v in hidden.items()})


__all__ = ["PrefixCache", "Readout", "readout_logits"]
