"""Activation capture: per-layer ``hidden_in``, ``hidden_out``, ``attn_out``, ``mlp_out``.

Hooks reduce each tensor to the requested read-out rows *inside* the hook (nothing of size
``[B, T, D]`` is kept), results are gathered on the model's device and copied to the CPU once per
batch, upcast to fp32. Hooks are removed even if the forward raises.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from llmct.core.arch import SITE_ALIASES, SITES, canonical_site, get_adapter
from llmct.core.hooks import Hooks
from llmct.core.positions import (
    BatchReadout,
    PositionSpec,
    ReadOut,
    batch_readout,
    describe_position,
    readouts_for_item,
)
from llmct.core.prefix import SharedPrefix
from llmct.core.runner import (  # noqa: F401  (re-exported: the historical home of these helpers)
    Tokenizer,
    context_length,
    model_device,
    pad_batch,
    position_ids_from_mask,
    prepare,
    tokenize,
)
from llmct.core.runner import forward as run_forward
from llmct.core.runner import pad_id as _runner_pad_id
from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

SOURCES = SITES


@dataclass
class Capture:
    """Captured activations. ``acts[source]`` is ``[rows, len(layers), d_model]`` float32.

    One row per read-out; with ``position="last"`` or ``"mean"`` rows are items. ``row_item[r]``
    is the input index of row ``r``.
    """

    acts: dict[str, np.ndarray]
    layers: list[int]
    row_item: np.ndarray
    token_ids: list[list[int]]
    logits: np.ndarray | None = None
    attention: list[np.ndarray] | None = None  # per row: [len(layers), n_heads, n_tokens_of_item]
    meta: dict = field(default_factory=dict)

    def __getitem__(self, source: str) -> np.ndarray:
        if source not in self.acts:
            raise KeyError(f"source {source!r} was not captured; have {sorted(self.acts)}")
        return self.acts[source]

    def layer(self, source: str, layer: int) -> np.ndarray:
        """``[rows, d_model]`` for one (possibly negative) layer index that was captured."""
        n = self.meta.get("n_layers", max(self.layers) + 1)
        want = layer + n if layer < 0 else layer
        if want not in self.layers:
            raise CaptureError(f"layer {layer} was not captured; captured {self.layers}")
        return self.acts[source][:, self.layers.index(want)]


def resolve_layers(layers: str | int | Sequence[int], n_layers: int) -> list[int]:
    """Normalise a layer selection; negative indices count from the end; out of range is an error."""
    if isinstance(layers, str):
        if layers != "all":
            raise CaptureError(f"layers must be 'all' or a list of ints, got {layers!r}")
        return list(range(n_layers))
    raw = [layers] if isinstance(layers, int) else list(layers)
    if not raw:
        raise CaptureError("empty layer selection")
    out = []
    for layer in raw:
        idx = int(layer) + n_layers if int(layer) < 0 else int(layer)
        if not 0 <= idx < n_layers:
            raise CaptureError(
                f"layer {layer} is out of range for a model with {n_layers} layers "
                f"(valid: 0..{n_layers - 1} or -{n_layers}..-1)"
            )
        if idx in out:
            raise CaptureError(f"layer {layer} is selected twice")
        out.append(idx)
    return out


def forward_batch(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, *,
                  want_logits: bool):
    """One forward with explicit position ids; the LM head is skipped when logits are not needed."""
    return run_forward(model, ids, mask, logits=want_logits)


def capture(
    model: PreTrainedModel,
    tokenizer: Tokenizer | None,
    inputs: Sequence,
    *,
    sources: Sequence[str] = SOURCES,
    layers: str | int | Sequence[int] = "all",
    position: PositionSpec = "last",
    mean_from: int = 0,
    batch_size: int = 8,
    padding_side: str | None = None,
    add_special_tokens: bool = True,
    attention: bool = False,
    logits: bool = False,
    progress: bool = False,
    shared_prefix: SharedPrefix | None = None,
) -> Capture:
    """Capture activations of ``inputs`` (strings or token-id lists) at the requested read-outs.

    position: ``"last"`` (last real token), ``"mean"`` (mean over tokens from ``mean_from``), an int
    (same index for every item), or one list of read-outs per item (ints or ``(start, end)`` spans).

    shared_prefix: a :class:`llmct.core.prefix.SharedPrefix` of ``model`` (e.g. a few-shot
    block): items whose tokens begin with exactly its tokens run only their suffix against its
    cached keys/values (same numbers as full forwards to float rounding; 1.77x faster few-shot
    extraction on the embedded model, ``benchmarks/results/bench_shared_prefix.json``).
    Read-outs inside the prefix (a ``"mean"`` from its start, a span or token in it) come exactly
    from its own per-token activations, computed once. Attention weights span the cached prefix
    keys and the item's own. Items that do not split at the prefix, with ``logits``/``attention``
    those reading a prefix token, and with ``attention`` all where a sliding window dropped
    prefix keys, run whole; ``meta["shared_prefix"]`` counts both (``shared``, ``fallback``).

    Returns a :class:`Capture` (``acts[source]``: ``[rows, len(layers), d_model]`` float32).
    Raises CaptureError for bad layers, sources, positions, options, inputs (empty, too long,
    ids outside the vocabulary) or a ``shared_prefix`` built for another model.
    """
    adapter = get_adapter(model)
    n_layers = adapter.n_layers(model)
    sources = check_sources(sources)
    layer_idx = resolve_layers(layers, n_layers)
    side = _check_options(model, tokenizer, batch_size, padding_side, attention)
    if shared_prefix is not None and shared_prefix.model is not model:
        raise CaptureError("shared_prefix was built for another model")

    token_ids = prepare(model, tokenizer, inputs, add_special_tokens)
    readouts = [readouts_for_item(position, i, len(t), mean_from) for i, t in enumerate(token_ids)]
    pad_id = _pad_id(tokenizer, model)
    device = model_device(model)
    shared = _shared_items(shared_prefix, token_ids, readouts, logits, attention)
    prefix_acts = None
    if shared_prefix is not None and any(
            shared_prefix.touches_prefix(readouts[i], len(shared_prefix)) for i in shared):
        prefix_acts = _prefix_token_acts(model, shared_prefix, sources, layer_idx)

    groups = _batch_groups(token_ids, shared, batch_size)
    rec = _Recorder(device, sources, len(layer_idx))
    per_item: dict[int, dict] = {}
    with Hooks() as hooks:
        for pos, layer in enumerate(layer_idx):
            for source in sources:
                hooks.read(adapter.site(model, source, layer), partial(rec.store, source, pos))
            if attention:
                hooks.forward(
                    adapter.attention_module(adapter.block_list(model)[layer]),
                    lambda m, a, o, p=pos: rec.store_attention(
                        p, o[1] if isinstance(o, tuple) else None),
                )
        for batch in tqdm(groups, desc="capture", disable=not progress, unit="batch"):
            job = _batch_job([token_ids[i] for i in batch], [readouts[i] for i in batch],
                             shared_prefix if batch[0] in shared else None, prefix_acts,
                             pad_id, side)
            per_item.update(_run_batch(model, rec, job, batch, token_ids, logits, attention))
            del job

    meta = _meta(model, adapter.family, n_layers, device, describe_position(position, mean_from),
                 sources, layer_idx, side, token_ids)
    meta["shared_prefix"] = None if shared_prefix is None else {
        "tokens": len(shared_prefix), "shared": len(shared),
        "fallback": len(token_ids) - len(shared)}
    return _assemble(per_item, token_ids, sources, layer_idx, logits, attention, meta)


def _batch_groups(token_ids: list[list[int]], shared: list[int], batch_size: int
                  ) -> list[list[int]]:
    """Batches of item indices: full-forward items and shared-prefix items apart, each longest
    first (fewer pad tokens per batch, and an out-of-memory error shows up at once)."""
    order = sorted(set(range(len(token_ids))) - set(shared), key=lambda i: -len(token_ids[i]))
    shared.sort(key=lambda i: -len(token_ids[i]))
    return [g[k: k + batch_size] for g in (order, shared) for k in range(0, len(g), batch_size)]


class _Recorder:
    """The current batch's read-out plan and buffers, filled by the capture hooks (reduced
    inside the hook: one ``[rows, d]`` tensor per source and layer, never the whole sequence)."""

    def __init__(self, device, sources: Sequence[str], n_layers: int) -> None:
        self.device, self.sources, self.n_layers = device, list(sources), n_layers
        self.plan: BatchReadout | None = None
        self.offsets: dict | None = None
        self.buf: dict[str, list] = {}
        self.attn: list = []

    def start(self, plan, offsets: dict | None) -> None:
        self.plan, self.offsets = plan, offsets
        self.buf = {s: [None] * self.n_layers for s in self.sources}
        self.attn = [None] * self.n_layers

    def store(self, source: str, pos: int, hidden: torch.Tensor) -> None:
        assert self.plan is not None  # set by start() before every forward
        value = self.plan.reduce(hidden)
        if self.offsets is not None:  # read-outs that average over prefix tokens too
            value = value + self.offsets[source][:, pos]
        self.buf[source][pos] = value.to(self.device)

    def store_attention(self, pos: int, weights: torch.Tensor | None) -> None:
        if weights is None:
            raise CaptureError("the attention module returned no weights (is it eager?)")
        q = _query_rows(self.plan, weights.shape[-2])  # queries: this forward's tokens only
        self.attn[pos] = weights[q[:, 0], :, q[:, 1], :].float().to(self.device)  # [R, H, T]

    def stacked(self) -> torch.Tensor:
        """``[n_sources, rows, n_layers, d]`` on the CPU."""
        return torch.stack([torch.stack(self.buf[s], dim=1) for s in self.sources]).cpu()


def _run_batch(model: PreTrainedModel, rec: _Recorder, job: dict, batch: list[int],
               token_ids: list[list[int]], logits: bool, attention: bool) -> dict[int, dict]:
    """One forward of a batch job (:func:`_batch_job`) with the hooks recording into ``rec``;
    returns the per-item activations (and logits / attention) of :func:`_split_batch`."""
    device = rec.device
    plan = job["plan"].to(device)
    rec.start(plan, job["offsets"])
    with torch.inference_mode():
        out = run_forward(model, job["ids"].to(device), job["mask"].to(device),
                          logits=logits, past_key_values=job["cache"],
                          use_cache=job["cache"] is not None)
    batch_logits = plan.reduce(out.logits).cpu() if logits else None
    batch_attn = torch.stack(rec.attn, dim=1).cpu() if attention else None
    return _split_batch(batch, plan.row_items, rec.stacked(), batch_logits, batch_attn,
                        job["mask"], token_ids)


def _assemble(per_item: dict[int, dict], token_ids: list[list[int]], sources: Sequence[str],
              layer_idx: list[int], logits: bool, attention: bool, meta: dict) -> Capture:
    """The :class:`Capture` of every item's rows, in item order (finite values checked)."""
    n_items = len(token_ids)
    row_item = np.concatenate(
        [np.full(per_item[i]["acts"].shape[1], i, dtype=np.int64) for i in range(n_items)]
    )
    all_acts = torch.cat([per_item[i]["acts"] for i in range(n_items)], dim=1).numpy()
    acts = {s: all_acts[k] for k, s in enumerate(sources)}
    _check_finite(acts, layer_idx)
    return Capture(
        acts=acts,
        layers=layer_idx,
        row_item=row_item,
        token_ids=token_ids,
        logits=torch.cat([per_item[i]["logits"] for i in range(n_items)]).numpy()
        if logits
        else None,
        attention=[a for i in range(n_items) for a in per_item[i]["attn"]] if attention else None,
        meta=meta,
    )


def _shared_items(prefix: SharedPrefix | None, token_ids: list[list[int]],
                  readouts: list[list[ReadOut]], logits: bool, attention: bool) -> list[int]:
    """Indices of the items that run after ``prefix``'s cache: those whose tokens split at it;
    with logits or attention weights, not those reading a prefix token (neither is kept for
    the prefix's queries). Attention weights need every prefix key in the cache: with a
    sliding-window layer that has already dropped some (a prefix longer than its window), every
    item runs whole."""
    if prefix is None or (attention and not prefix.keeps_every_key()):
        return []
    n = len(prefix)
    return [i for i, toks in enumerate(token_ids) if prefix.splits(toks)
            and not ((logits or attention) and prefix.touches_prefix(readouts[i], n))]


def _prefix_token_acts(model: PreTrainedModel, prefix: SharedPrefix, sources: tuple[str, ...],
                       layer_idx: list[int]) -> dict[str, torch.Tensor]:
    """``[P, len(layers), d]`` per source: the prefix's activations at each of its tokens (one
    capture of the prefix alone, memoised on ``prefix``; causal attention makes them the same in
    every item)."""
    key = (sources, tuple(layer_idx))
    if key not in prefix.token_acts:
        cap = capture(model, None, [prefix.token_ids], sources=sources, layers=layer_idx,
                      position=[list(range(len(prefix)))], batch_size=1)
        prefix.token_acts[key] = {s: torch.from_numpy(cap.acts[s]) for s in sources}
    return prefix.token_acts[key]


def _batch_job(seqs: list[list[int]], readouts: list[list[ReadOut]], prefix: SharedPrefix | None,
               prefix_acts: dict[str, torch.Tensor] | None, pad: int, side: str) -> dict:
    """The forward of one batch: ``ids``, ``mask``, read-out ``plan``, KV ``cache`` (None: a
    full forward) and ``offsets`` (``[R, len(layers), d]`` per source: the prefix's share of
    read-outs that average over prefix tokens; None when there is none)."""
    if prefix is None:
        ids, mask = pad_batch(seqs, pad, side)
        return {"ids": ids, "mask": mask, "plan": batch_readout(mask, readouts), "cache": None,
                "offsets": None}
    ids, mask, cache = prefix.batch(seqs, pad)
    plan = prefix.plan(mask, readouts)
    offsets = None
    if plan.coef is not None:
        assert prefix_acts is not None  # computed whenever a shared item reads the prefix
        offsets = {s: torch.einsum("rp,pld->rld", plan.coef, acts)
                   for s, acts in prefix_acts.items()}
    return {"ids": ids, "mask": mask, "plan": plan.suffix, "cache": cache, "offsets": offsets}


def _split_batch(batch: list[int], row_items: list[int], stacked: torch.Tensor,
                 batch_logits: torch.Tensor | None, batch_attn: torch.Tensor | None,
                 mask: torch.Tensor, token_ids: list[list[int]]) -> dict[int, dict]:
    """Per input index: its read-out rows of a batch's activations, logits and attention (the
    attention keeps only the item's real key positions)."""
    out = {}
    for b, item in enumerate(batch):
        rows = [r for r, owner in enumerate(row_items) if owner == b]
        n_tok = len(token_ids[item])
        out[item] = {
            "acts": stacked[:, rows],
            "logits": batch_logits[rows] if batch_logits is not None else None,
            "attn": [batch_attn[r][..., mask[b].bool()][..., :n_tok].numpy() for r in rows]
            if batch_attn is not None
            else None,
        }
    return out


def check_sources(sources: Sequence[str]) -> tuple[str, ...]:
    """Canonical names of the requested sites (aliases resolved); CaptureError when empty,
    unknown, or one site is asked for twice."""
    if not sources:
        raise CaptureError(f"no sources given; choose from {SOURCES}")
    unknown = [s for s in sources if SITE_ALIASES.get(s, s) not in SOURCES]
    if unknown:
        raise CaptureError(f"unknown sources {unknown}; choose from {SOURCES}")
    canonical = tuple(canonical_site(s) for s in sources)
    if len(set(canonical)) != len(canonical):
        raise CaptureError(f"a source is selected twice in {canonical} (resid_pre is hidden_in, "
                           "resid_post is hidden_out)")
    return canonical


def _check_options(model: PreTrainedModel, tokenizer: Tokenizer | None, batch_size: int,
                   padding_side: str | None, attention: bool) -> str:
    """Validate the batching options; returns the padding side to use."""
    if batch_size < 1:
        raise CaptureError(f"batch_size must be >= 1, got {batch_size}")
    side = padding_side or getattr(tokenizer, "padding_side", None) or "right"
    if side not in ("left", "right"):
        raise CaptureError(f"padding_side must be 'left' or 'right', got {side!r}")
    if attention and getattr(model.config, "_attn_implementation", "eager") != "eager":
        raise CaptureError(
            "attention weights need eager attention: load the model with "
            "attn_implementation='eager' (llmct.load_model(..., attn_implementation='eager'))"
        )
    return side


def _meta(model: PreTrainedModel, family: str, n_layers: int, device, position: str, sources,
          layer_idx, side, token_ids) -> dict:
    """The manifest fields of a capture."""
    return {
        "model": getattr(model.config, "_name_or_path", None) or model.config.model_type,
        "family": family,
        "n_layers": n_layers,
        "d_model": int(model.config.hidden_size),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "device": str(device),
        "position": position,
        "sources": list(sources),
        "layers": layer_idx,
        "padding_side": side,
        "n_tokens": int(sum(len(t) for t in token_ids)),
    }


def _pad_id(tokenizer: Tokenizer | None, model: PreTrainedModel) -> int:
    return _runner_pad_id(tokenizer, model)


def _query_rows(plan, seq_len: int) -> torch.Tensor:
    """(batch, token) of each read-out row's query: the single token, or a span's last token."""
    last_col = torch.stack(
        [torch.nonzero(w, as_tuple=False).max() for w in plan.weights]
    )
    flat = plan.token_rows[last_col]
    return torch.stack([flat // seq_len, flat % seq_len], dim=1)


def _check_finite(acts: dict[str, np.ndarray], layers: list[int]) -> None:
    for source, arr in acts.items():
        bad = ~np.isfinite(arr)
        if bad.any():
            where = sorted({layers[j] for j in np.nonzero(bad.any(axis=(0, 2)))[0]})
            warnings.warn(
                f"non-finite activations (NaN/inf) in {source} at layers {where}: typical of fp16 "
                "overflow; reload with dtype='float32' or 'bfloat16'",
                RuntimeWarning,
                stacklevel=3,
            )


__all__ = ["SOURCES", "Capture", "ReadOut", "capture", "resolve_layers", "tokenize", "pad_batch"]
