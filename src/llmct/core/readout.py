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
from typing import TYPE_CHECKING, Any, cast

import torch

from llmct.core.arch import get_adapter
from llmct.core.capture import resolve_layers
from llmct.core.hooks import Hooks
from llmct.core.interventions import Intervention
from llmct.core.lens import head_logits
from llmct.core.positions import batch_readout, readouts_for_item
from llmct.core.prefix import SharedPrefix
from llmct.core.resume import can_resume, resume_at
from llmct.core.runner import (
    Tokenizer,
    cache_is_croppable,
    fresh_cache,
    model_device,
    pad_batch,
    pad_id,
    prefill,
    prepare,
    sliding_window,
)
from llmct.core.runner import forward as run_forward
from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class Readout:
    """Next-token logits at each item's read-out (``[N, V]`` float32, CPU) and, for the layers
    asked for, the block output at the read-out after all interventions (``hidden[l]`` [N, D]).

    ``resid_pre[l]``: from :func:`readout_logits` with ``keep_resid_pre``, the residual stream
    entering block ``l`` at every token of each padded batch (a list over batches of ``[B, T,
    D]``, model dtype), for resuming later forwards of the same inputs at ``l``."""

    logits: torch.Tensor
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    resid_pre: dict[int, list[torch.Tensor]] = field(default_factory=dict)


def _enter(intervention: Intervention, items: list[int]):
    ctx = intervention(items) if intervention is not None else None
    return ctx if ctx is not None else nullcontext()


def _resume(model: PreTrainedModel, start_layer: int, clean: Readout | None, batch: int):
    """The :func:`llmct.core.resume.resume_at` context of batch ``batch`` (or a null context)."""
    if not start_layer or not can_resume(model):
        return nullcontext()
    if clean is None or start_layer not in clean.resid_pre:
        raise CaptureError(f"start_layer {start_layer} needs a clean Readout kept with "
                           f"keep_resid_pre including {start_layer}")
    kept = clean.resid_pre[start_layer]
    if batch >= len(kept):
        raise CaptureError(f"the clean Readout kept {len(kept)} batches; this call has more: "
                           "not the same inputs and batching")
    return resume_at(model, start_layer, kept[batch])


def readout_logits(model: PreTrainedModel, tokenizer: Tokenizer | None, inputs: Sequence,
                   intervention: Intervention = None, *,
                   position: str | int | Sequence[Sequence[int]] = "last", batch_size: int = 8,
                   padding_side: str | None = None, hidden_layers: Sequence[int] = (),
                   add_special_tokens: bool = True, keep_resid_pre: Sequence[int] = (),
                   start_layer: int = 0, clean: Readout | None = None) -> Readout:
    """Batched full forwards of ``inputs`` under ``intervention(items)`` (items in row order);
    next-token logits at each item's read-out (one token index per item, mapped via the mask;
    the unembedding runs at the read-outs only).

    ``keep_resid_pre``: layers whose block input (every token) is kept in the result, so that a
    later call on the same inputs and batching may pass it as ``clean`` with ``start_layer`` and
    resume there (:mod:`llmct.core.resume`: blocks below are skipped, the numbers are the same)
    -- valid only for an intervention that changes nothing below ``start_layer``.

    Raises:
        CaptureError: a read-out of more than one token; ``start_layer`` without a ``clean``
            result that kept it; ``hidden_layers`` below ``start_layer``; a hook below it.
    """
    token_ids = prepare(model, tokenizer, inputs, add_special_tokens)
    readouts = [readouts_for_item(position, i, len(t), 0) for i, t in enumerate(token_ids)]
    if any(len(r) != 1 or isinstance(r[0], tuple) for r in readouts):
        raise CaptureError("readout_logits reads one token per item")
    side = padding_side or getattr(tokenizer, "padding_side", None) or "right"
    adapter = get_adapter(model)
    n_layers = adapter.n_layers(model)
    layers = resolve_layers(list(hidden_layers), n_layers) if len(hidden_layers) else []
    keep = resolve_layers(list(keep_resid_pre), n_layers) if len(keep_resid_pre) else []
    if any(la < start_layer for la in layers):
        raise CaptureError(f"hidden_layers {layers} start below start_layer {start_layer}")
    pad, device = pad_id(tokenizer, model), model_device(model)
    logits: list[torch.Tensor | None] = [None] * len(token_ids)
    hidden: dict[int, list[torch.Tensor | None]] = {la: [None] * len(token_ids) for la in layers}
    kept: dict[int, list[torch.Tensor]] = {la: [] for la in keep}
    for b, start in enumerate(range(0, len(token_ids), batch_size)):
        items = list(range(start, min(start + batch_size, len(token_ids))))
        ids, mask = pad_batch([token_ids[i] for i in items], pad, side)
        plan = batch_readout(mask, [readouts[i] for i in items]).to(device)
        got: dict[int, torch.Tensor] = {}
        with Hooks() as hooks, _resume(model, start_layer, clean, b), \
                _enter(intervention, items), torch.inference_mode():
            for la in layers:  # readers run after every edit of the same site
                def read(h: torch.Tensor, la: int = la, plan=plan, got: dict = got) -> None:
                    got[la] = plan.reduce(h).cpu()
                hooks.read(adapter.site(model, "hidden_out", la), read)
            for la in keep:
                def store(h: torch.Tensor, la: int = la) -> None:
                    kept[la].append(h.clone())
                hooks.read(adapter.site(model, "hidden_in", la), store)
            final = run_forward(model, ids.to(device), mask.to(device), logits=False)
            last = final.last_hidden_state  # one-hot gather: exact, back in the model's dtype
            batch_logits = head_logits(model, plan.reduce(last).to(last.dtype))
        _fill(logits, hidden, items, batch_logits.cpu(), got)
    out = _stacked(logits, hidden)
    out.resid_pre = kept
    return out


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
    ``shared_prefix``: a :class:`llmct.core.prefix.SharedPrefix` that the prompts begin with
    (e.g. the few-shot instruction and examples): its cache is computed once and each batch
    runs only the prompts' remaining tokens (``n_shared`` counts the batches that did; a batch
    with a prompt that does not continue the prefix, or wider than a sliding window, runs
    whole). Same numbers to float rounding.
    Raises CaptureError for inputs shorter than 2 tokens or ids outside the vocabulary.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: Tokenizer | None, inputs: Sequence, *,
                 batch_size: int = 8, copies: int = 1, add_special_tokens: bool = True,
                 copy_cache: bool = False, shared_prefix: SharedPrefix | None = None) -> None:
        self.model = model
        self.shared = shared_prefix
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
        self._resid: list[list[torch.Tensor] | None] = [None] * len(self.batches)
        for k in range(len(self.batches)):
            self._build(k)

    def __len__(self) -> int:
        return len(self.token_ids) * self.copies

    @property
    def n_shared(self) -> int:
        """Batches whose prompts ran after the shared prefix's cache."""
        return sum(bool(st and st["shared"]) for st in self._state)

    def _build(self, k: int) -> None:
        items = self.batches[k]
        last, mask, cache, shared = self._prefill([self.token_ids[i] for i in items])
        c = self.copies
        if c > 1:  # row r of the repeated batch is copy r % c of item r // c
            cache.batch_repeat_interleave(c)
            last, mask = (t.repeat_interleave(c, dim=0) for t in (last, mask))
        rows = [cp * len(self.token_ids) + i for i in items for cp in range(c)]
        self._resid[k] = None
        self._state[k] = {"last": last, "mask": mask, "cache": cache, "rows": rows,
                          "shared": shared,
                          "length": mask.shape[1] - 1,
                          "crop": cache_is_croppable(cache) and not self.copy_cache}

    def _prefill(self, seqs: list[list[int]]
                 ) -> tuple[torch.Tensor, torch.Tensor, Any, bool]:
        """``(last tokens [B, 1], mask [B, T] including the last column, KV cache of every
        token but the last, whether the shared prefix ran)``. Left-padded full forwards, or,
        where every prompt continues the shared prefix (and a sliding window, if any, spans the
        padded batch), the prefix's cache expanded and only each prompt's body after it run,
        right-padded; the padding hole before the last token is masked and position ids follow
        the mask, so both give the same numbers to float rounding."""
        sp = self.shared
        bodies = [t[:-1] for t in seqs]
        last = torch.tensor([[t[-1]] for t in seqs], dtype=torch.long, device=self.device)
        window = sliding_window(self.model)
        shared = sp is not None and all(sp.splits(b) for b in bodies) and (
            window is None or max(map(len, bodies)) + 1 <= window)
        if sp is not None and shared:
            ids, mask, cache = sp.batch(bodies, self.pad)
            ids, mask = ids.to(self.device), mask.to(self.device)
            with torch.inference_mode():
                run_forward(self.model, ids, mask, logits=False, past_key_values=cache,
                            use_cache=True)
        else:
            ids, mask = pad_batch(bodies, self.pad, "left")
            ids, mask = ids.to(self.device), mask.to(self.device)
            cache = prefill(self.model, ids, mask)
        return last, torch.cat([mask, torch.ones_like(last)], dim=1), cache, shared

    def _last_token(self, st: dict, cache):
        return run_forward(self.model, st["last"], st["mask"], past_key_values=cache,
                           use_cache=True)

    def resid_pre(self, k: int, layer: int) -> torch.Tensor:
        """The clean residual stream entering block ``layer`` at the last token of batch ``k``'s
        rows (``[B, 1, D]``, model dtype), from one clean last-token forward per batch (run on
        first use, kept for every layer)."""
        if self._resid[k] is None:
            st = cast(dict, self._state[k])
            got: dict[int, torch.Tensor] = {}
            with Hooks() as hooks, torch.inference_mode():
                for la in range(len(self.blocks)):
                    def store(h: torch.Tensor, la: int = la) -> None:
                        got[la] = h.clone()
                    hooks.read(self.adapter.site(self.model, "hidden_in", la), store)
                self._last_token(st, fresh_cache(st["cache"]))
            self._resid[k] = [got[la] for la in range(len(self.blocks))]
        return cast(list, self._resid[k])[layer]

    def run(self, intervention: Intervention = None, *, hidden_layers: Sequence[int] = (),
            start_layer: int = 0) -> Readout:
        """Logits (and block outputs at ``hidden_layers``) at every row's last token under
        ``intervention(rows)``; the cached prefixes are left as they were.

        ``start_layer`` > 0: the intervention changes nothing below that block, so the forward
        resumes there from the stored clean residual (:mod:`llmct.core.resume`; the same numbers,
        fewer blocks computed). Falls back to the whole forward where the model cannot resume.
        Raises CaptureError for ``hidden_layers`` below ``start_layer``, or (at forward time) an
        intervention hooked below it."""
        layers = resolve_layers(list(hidden_layers), len(self.blocks)) if len(hidden_layers) else []
        start = int(start_layer) if start_layer and can_resume(self.model) else 0
        if any(la < start_layer for la in layers):
            raise CaptureError(f"hidden_layers {layers} start below start_layer {start_layer}")
        n = len(self)
        logits: list[torch.Tensor | None] = [None] * n
        hidden: dict[int, list[torch.Tensor | None]] = {la: [None] * n for la in layers}
        for k in range(len(self.batches)):
            got: dict[int, torch.Tensor] = {}
            out = self._run_batch(k, intervention, layers, got, start)
            rows = cast(dict, self._state[k])["rows"]
            _fill(logits, hidden, rows, out.logits[:, -1].float().cpu(), got)
        return _stacked(logits, hidden)

    def _run_batch(self, k: int, intervention: Intervention, layers: list[int],
                   got: dict[int, torch.Tensor], start: int):
        """One batch's last-token forward (readers at ``layers`` fill ``got``); a croppable
        cache is extended and cropped back, any other (or a resumed forward's) is copied."""
        st = cast(dict, self._state[k])
        crop = st["crop"] and not start
        cache = st["cache"] if crop else fresh_cache(st["cache"])
        resume = resume_at(self.model, start, self.resid_pre(k, start)) if start else nullcontext()
        ok = False
        try:
            with Hooks() as hooks, resume, _enter(intervention, st["rows"]), \
                    torch.inference_mode():
                for la in layers:
                    def keep(h: torch.Tensor, la: int = la) -> None:
                        got[la] = h[:, -1].float().cpu()
                    hooks.read(self.adapter.site(self.model, "hidden_out", la), keep)
                out = self._last_token(st, cache)
            ok = True
        finally:
            if crop:
                if ok:
                    st["cache"].crop(-1)
                if not ok or st["cache"].get_seq_length() != st["length"]:
                    self._build(k)  # a failed or unexpected forward left the cache unknown
        return out


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
