"""Causal interventions: overwrite (patch) or ablate one source at one layer, and read the answer.

``patch`` and ``ablate`` are context managers whose hooks are removed on exit, even when the
forward raises. A source is what a block writes: ``hidden_out`` (the block output -- replacing it
changes everything downstream, because the next block reads it), ``attn_out`` or ``mlp_out``
(what attention / the MLP adds to the residual, via the architecture adapter). Positions are
token indices into each item's *unpadded* tokens (negative counts from the end, ``"last"``, or
``"all"`` real tokens) and are mapped through the attention mask of the forward in flight, so
left- and right-padded batches edit exactly the tokens an unbatched run edits.

Reading the effect of an intervention: :mod:`llmct.core.readout`; scoring the answer:
:mod:`llmct.emotion.answers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from llmct.core.arch import SitePoint, canonical_site, get_adapter
from llmct.core.capture import resolve_layers
from llmct.core.hooks import Hooks
from llmct.core.positions import readouts_for_item
from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

INTERVENABLE = ("hidden_out", "attn_out", "mlp_out")
ABLATIONS = ("zero", "mean", "noise")

#: ``positions``: "last", "all" (every real token), one int for every item, or one list of ints
#: per item (unpadded coordinates; negative counts from the end).
Positions = str | int | Sequence[Sequence[int]]
#: A per-batch intervention: called with the batch's item indices (in row order), returns a
#: context manager (e.g. ``patch(...)``) or None.
Intervention = Callable[[list[int]], object] | None


def site_point(model: PreTrainedModel, source: str, layer: int) -> SitePoint:
    """Where an intervenable ``source`` (or its alias) lives at ``layer`` (negative counts from
    the end), from the architecture adapter's one site mapping."""
    if canonical_site(source) not in INTERVENABLE:
        raise CaptureError(f"cannot intervene on {source!r}; choose from {INTERVENABLE}")
    adapter = get_adapter(model)
    n = adapter.n_layers(model)
    return adapter.site(model, source, resolve_layers(int(layer), n)[0])


def site_module(model: PreTrainedModel, source: str, layer: int) -> torch.nn.Module:
    """The module whose (first) output *is* ``source`` at ``layer`` (negative counts from the end)."""
    return site_point(model, source, layer).module


def _mask_from_call(args, kwargs) -> torch.Tensor | None:
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
        mask = args[1]
    return mask


def _columns(mask: torch.Tensor | None, n_rows: int, n_cols: int, positions: Positions
             ) -> list[torch.Tensor]:
    """Per batch row, the columns of the hidden tensor ``[B, n_cols, D]`` to edit.

    ``mask`` is the forward's attention mask; with a KV cache it is wider than the hidden tensor
    (the current tokens are its last ``n_cols`` columns)."""
    if mask is None:
        mask = torch.ones(n_rows, n_cols, dtype=torch.long)
    mask = mask.detach().cpu()
    if mask.dim() != 2 or mask.shape[0] != n_rows:
        raise CaptureError(f"attention mask of shape {tuple(mask.shape)} does not match a batch "
                           f"of {n_rows}; pass a 2-D [batch, tokens] mask")
    offset = mask.shape[1] - n_cols
    out = []
    for b in range(n_rows):
        valid = torch.nonzero(mask[b], as_tuple=False).flatten()
        if isinstance(positions, str) and positions == "all":
            if offset > 0:
                raise CaptureError("positions='all' with a KV cache: the cached tokens were "
                                   "computed without this intervention; run full forwards")
            cols = valid
        elif not isinstance(positions, str | int) and len(positions[b]) == 0:
            cols = valid[:0]  # no position of this row is edited (e.g. :func:`by_copy`)
        else:
            idx = readouts_for_item(positions, b, len(valid), 0)
            if any(isinstance(i, tuple) for i in idx):
                raise CaptureError("interventions take token indices, not (start, end) spans")
            cols = valid[torch.tensor(idx, dtype=torch.long)]
        cols = cols - offset
        if (cols < 0).any():
            raise CaptureError(f"item {b}: an edited position lies in the cached prefix; only the "
                               "tokens of this forward can be edited")
        out.append(cols)
    return out


@contextmanager
def edit(model: PreTrainedModel, source: str, layer: int, positions: Positions,
         fn: Callable[[torch.Tensor, list[int]], torch.Tensor]):
    """Replace ``source`` at ``layer`` at ``positions`` by ``fn(old_rows [n, D], row_counts)``,
    where ``row_counts[b]`` is the number of edited tokens of batch row ``b`` (rows in order).

    The generic mechanism behind :func:`patch` and :func:`ablate`; hooks removed on exit."""
    point = site_point(model, source, layer)
    state: dict = {}

    def remember_mask(_m, args, kwargs):
        state["mask"] = _mask_from_call(args, kwargs)

    def hook(hidden: torch.Tensor) -> torch.Tensor:
        cols = _columns(state.get("mask"), hidden.shape[0], hidden.shape[1], positions)
        rows = torch.cat([torch.full((len(c),), b, dtype=torch.long) for b, c in enumerate(cols)])
        rows, cols_t = rows.to(hidden.device), torch.cat(cols).to(hidden.device)
        new = hidden.clone()
        values = fn(hidden[rows, cols_t], [len(c) for c in cols])
        new[rows, cols_t] = values.to(device=new.device, dtype=new.dtype)
        return new

    with Hooks() as hooks:
        hooks.pre(model.base_model, remember_mask)
        hooks.edit(point, hook)
        yield


def _as_tensor(x) -> torch.Tensor:
    return x.detach().float().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(
        np.asarray(x, dtype=np.float32))


@contextmanager
def patch(model: PreTrainedModel, source: str, layer: int, values,
          positions: Positions = "last"):
    """Overwrite ``source`` at ``layer`` with given vectors at each item's ``positions``.

    ``values``: one vector ``[D]`` for every edited token; ``[B, D]`` (one edited token per
    item); ``[B, P, D]``; or a list of ``B`` arrays ``[P_b, D]`` (or ``[D]``), one per item.
    """
    if isinstance(values, list | tuple):
        per_item = [_as_tensor(v).reshape(-1, _as_tensor(v).shape[-1]) for v in values]
        flat = None
    else:
        arr = _as_tensor(values)
        if arr.dim() == 1:
            per_item, flat = None, arr
        elif arr.dim() in (2, 3):
            per_item, flat = [a.reshape(-1, arr.shape[-1]) for a in arr], None
        else:
            raise CaptureError(f"patch values must be [D], [B, D] or [B, P, D], got {tuple(arr.shape)}")

    def fn(old: torch.Tensor, counts: list[int]) -> torch.Tensor:
        if flat is not None:
            return flat.to(old.device).expand(old.shape[0], -1)
        items = cast(list[torch.Tensor], per_item)  # set whenever flat is None
        if len(items) != len(counts):
            raise CaptureError(f"patch has values for {len(items)} items but the batch has "
                               f"{len(counts)}")
        for b, (v, n) in enumerate(zip(items, counts, strict=True)):
            if v.shape[0] != n:
                raise CaptureError(f"item {b}: {v.shape[0]} patch vectors for {n} positions")
        return torch.cat(items).to(old.device)

    with edit(model, source, layer, positions, fn):
        yield


@contextmanager
def ablate(model: PreTrainedModel, source: str, layer: int, mode: str = "zero",
           positions: Positions = "last", mean_vector=None, seed: int = 0):
    """Ablate ``source`` at ``layer``: ``zero``; ``mean`` (replace by ``mean_vector`` [D]); or
    ``noise`` (Gaussian direction with the same L2 norm as each ablated vector; seeded, one fresh
    draw per edited token and forward)."""
    if mode not in ABLATIONS:
        raise CaptureError(f"unknown ablation mode {mode!r}; choose from {ABLATIONS}")
    if mode == "mean" and mean_vector is None:
        raise CaptureError("mode='mean' needs mean_vector (e.g. the mean activation over stimuli)")
    mean = None if mean_vector is None else _as_tensor(mean_vector).flatten()
    gen = torch.Generator().manual_seed(int(seed))

    def fn(old: torch.Tensor, _counts: list[int]) -> torch.Tensor:
        if mode == "zero":
            return torch.zeros_like(old)
        if mode == "mean":  # mean_vector was checked above
            return cast(torch.Tensor, mean).to(old.device).expand(old.shape[0], -1)
        noise = torch.randn(old.shape, generator=gen, dtype=torch.float32)
        norm = old.float().norm(dim=-1, keepdim=True).cpu()
        return (noise / noise.norm(dim=-1, keepdim=True) * norm).to(old.device)

    with edit(model, source, layer, positions, fn):
        yield


def by_copy(makers: Sequence[Callable[[Positions], object]], n_items: int,
            position: int = -1) -> Intervention:
    """Several interventions in one forward: one per copy of the items.

    For :class:`llmct.core.readout.PrefixCache` with ``copies=len(makers)``, whose virtual row
    ``c * n_items + i`` is copy ``c`` of item ``i``: copy ``c`` is edited by ``makers[c]``
    (called with per-row positions, e.g. ``lambda pos: ablate(model, "mlp_out", 7, "zero",
    positions=pos)``) at ``position`` of its own rows only; the other rows get no edit from it.
    Each maker's context sees the same rows, in the same order, as a one-at-a-time run, so
    seeded noise draws are the same; the logits equal one-at-a-time runs to float rounding
    (``tests/test_batched_interventions.py``). Rows are independent in a batch (attention never
    crosses rows), which is what makes the batching exact.
    """
    def intervention(rows: list[int]):
        return _entered([make([[position] if r // n_items == c else [] for r in rows])
                         for c, make in enumerate(makers)])

    return intervention


@contextmanager
def _entered(contexts: list):
    """Enter every context manager of ``contexts`` (in order) for the duration of the block."""
    with ExitStack() as stack:
        for ctx in contexts:
            stack.enter_context(ctx)
        yield


def spaced_layers(n_layers: int, k: int = 8) -> list[int]:
    """``k`` evenly spaced layers from the first to the last (the depths intervened at)."""
    return sorted({int(round(x)) for x in np.linspace(0, n_layers - 1, min(k, n_layers))})


def random_like_norm(vectors, seed: int = 0) -> np.ndarray:
    """Random Gaussian directions with the L2 norms of ``vectors [..., D]`` (a patch control)."""
    v = np.asarray(vectors, dtype=np.float32)
    g = np.random.default_rng(seed).standard_normal(v.shape).astype(np.float32)
    return g / np.linalg.norm(g, axis=-1, keepdims=True) * np.linalg.norm(v, axis=-1, keepdims=True)


__all__ = [
    "ABLATIONS",
    "INTERVENABLE",
    "Intervention",
    "Positions",
    "ablate",
    "by_copy",
    "edit",
    "patch",
    "random_like_norm",
    "site_module",
    "site_point",
    "spaced_layers",
]
