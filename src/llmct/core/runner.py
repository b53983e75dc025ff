"""One forward runner: tokenise, check, pad, position ids, forward (with or without a KV cache).

Used by :func:`llmct.core.capture`, :func:`llmct.core.readout.readout_logits`,
:class:`llmct.core.readout.PrefixCache` and :func:`llmct.emotion.preferences.last_token_logits`, so that
every entry point validates token ids the same way (an out-of-vocabulary id is a
:class:`CaptureError` naming the item, the id and the valid range, never an IndexError from inside
torch) and derives position ids from the attention mask (left padding does not shift positions).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
import torch.nn as nn

from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class Tokenizer(Protocol):
    """What llmct calls a tokenizer with: ``tokenizer(text, add_special_tokens=...)["input_ids"]``
    (any Hugging Face tokenizer, or a bare callable); ``padding_side`` and the pad/EOS token ids
    are read with ``getattr`` where present."""

    def __call__(self, text: str, /, *, add_special_tokens: bool) -> Mapping[str, Any]: ...


def model_device(model: PreTrainedModel) -> torch.device:
    """Where inputs go: the device of the token embedding (also right with ``device_map``)."""
    return cast(nn.Embedding, model.get_input_embeddings()).weight.device


def vocab_size(model: PreTrainedModel) -> int:
    """Rows of the input embedding: token ids must lie in ``0 .. vocab_size - 1``."""
    return int(cast(nn.Embedding, model.get_input_embeddings()).num_embeddings)


def context_length(model: PreTrainedModel) -> int | None:
    """The model's maximum context from its config (None if it does not say)."""
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(cfg, name, None)
        if value:
            return int(value)
    return None


def _encode_text(tokenizer: Tokenizer, text: str, add_special_tokens: bool) -> list[int]:
    """Ids of ``text`` as text: Hugging Face tokenizers split special-token spellings."""
    from transformers import PreTrainedTokenizerBase

    if isinstance(tokenizer, PreTrainedTokenizerBase):
        return tokenizer(text, add_special_tokens=add_special_tokens,
                         split_special_tokens=True)["input_ids"]
    return tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]


def tokenize(tokenizer: Tokenizer | None, inputs: Sequence, add_special_tokens: bool = True
             ) -> list[list[int]]:
    """Strings are tokenised one by one (no padding); token-id lists pass through.

    A string is text: a special-token spelling inside it (``<|im_end|>``) is tokenised as plain
    text, never as the special token (``split_special_tokens``); the tokenizer's own BOS/EOS are
    still added when ``add_special_tokens``. To feed special tokens, pass token ids (e.g. from
    :func:`llmct.render_chat`)."""
    if isinstance(inputs, str):
        raise CaptureError("inputs must be a list of strings or token-id lists, not one string")
    ids: list[list[int]] = []
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            if tokenizer is None:
                raise CaptureError("string inputs need a tokenizer")
            toks = _encode_text(tokenizer, item, add_special_tokens)
        else:
            toks = [int(t) for t in item]
        if not toks:
            raise CaptureError(f"input {i} is empty after tokenisation")
        ids.append(list(toks))
    return ids


def check_token_ids(token_ids: Sequence[Sequence[int]], vocab: int) -> None:
    """CaptureError naming the first item holding an id outside ``0 .. vocab - 1``."""
    for i, toks in enumerate(token_ids):
        if toks and (min(toks) < 0 or max(toks) >= vocab):
            j, bad = next((j, t) for j, t in enumerate(toks) if not 0 <= t < vocab)
            raise CaptureError(
                f"item {i}: token id {bad} (position {j}) is outside the model's vocabulary "
                f"(valid ids 0..{vocab - 1})"
            )


def check_id_tensor(ids: torch.Tensor | None, vocab: int) -> None:
    """:func:`check_token_ids` for a ``[B, T]`` tensor of a forward in flight (rows = items)."""
    if ids is None or ids.dtype.is_floating_point or ids.numel() == 0:
        return
    bad = (ids < 0) | (ids >= vocab)
    if bool(bad.any()):
        i, j = (int(v) for v in torch.nonzero(bad, as_tuple=False)[0])
        raise CaptureError(
            f"item {i}: token id {int(ids[i, j])} (position {j}) is outside the model's "
            f"vocabulary (valid ids 0..{vocab - 1})"
        )


def prepare(model: PreTrainedModel, tokenizer: Tokenizer | None, inputs: Sequence,
            add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of ``inputs``, checked against the model's vocabulary and context length."""
    token_ids = tokenize(tokenizer, inputs, add_special_tokens)
    check_token_ids(token_ids, vocab_size(model))
    limit = context_length(model)
    for i, toks in enumerate(token_ids):
        if limit and len(toks) > limit:
            raise CaptureError(f"input {i} has {len(toks)} tokens; the model's context is {limit}")
    return token_ids


def pad_batch(seqs: list[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to a rectangle; returns ``input_ids`` and ``attention_mask`` ([B, T] long)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, s in enumerate(seqs):
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[b, sl] = torch.tensor(s, dtype=torch.long)
        mask[b, sl] = 1
    return ids, mask


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift absolute positions."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def pad_id(tokenizer: Tokenizer | None, model: PreTrainedModel) -> int:
    """An in-vocabulary id to pad with (padded positions are masked out, so any works)."""
    for cand in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
        getattr(model.config, "pad_token_id", None),
        getattr(model.config, "eos_token_id", None),
    ):
        if isinstance(cand, list | tuple):
            cand = cand[0] if cand else None
        if cand is not None and 0 <= int(cand) < vocab_size(model):
            return int(cand)
    return 0


def forward(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, *,
            logits: bool = True, past_key_values=None, use_cache: bool = False,
            logits_to_keep: int = 0):
    """One forward of ``ids [B, n]`` whose mask ``[B, past + n]`` covers the cached tokens too;
    position ids come from the mask. The LM head is skipped when ``logits`` is False."""
    check_id_tensor(ids, vocab_size(model))
    positions = position_ids_from_mask(mask)[:, -ids.shape[1]:]
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=positions,
                  past_key_values=past_key_values, use_cache=use_cache)
    if not logits:
        return model.base_model(**kwargs)
    if logits_to_keep:
        kwargs["logits_to_keep"] = logits_to_keep
    return model(**kwargs)


def prefill(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor):
    """The KV cache of a forward of ``ids [B, n]`` (mask ``[B, n]``; LM head skipped, no grad).

    Raises:
        CaptureError: the model returned no cache.
    """
    with torch.inference_mode():
        out = forward(model, ids, mask, logits=False, use_cache=True)
    if out.past_key_values is None:
        raise CaptureError(f"{type(model).__name__} returned no KV cache")
    return out.past_key_values


def cache_is_croppable(cache) -> bool:
    """True when every layer of ``cache`` keeps all its past keys/values (a plain dynamic
    layer), so cropping it back restores the prefix exactly. Sliding-window and chunked layers
    drop old states: they must never be cropped (transformers refuses or corrupts them)."""
    layers = getattr(cache, "layers", None)
    if not layers:
        return False
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in layers)


def sliding_window(model: PreTrainedModel) -> int | None:
    """The smallest attention window of any sliding-window layer of ``model`` (None if every
    layer attends to the whole context). With such layers a padding *hole* between a cached
    prefix and new tokens shifts key distances, so prefix sharing is exact only while the
    padded sequence fits in the window."""
    cfg = getattr(model, "config", None)
    window = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None)
    if types is not None:
        sliding = any(t != "full_attention" for t in types)
    else:
        sliding = window is not None and getattr(cfg, "use_sliding_window", True) is not False
    if not sliding:
        return None
    chunk = getattr(cfg, "attention_chunk_size", None)
    sizes = [int(v) for v in (window, chunk) if v]
    return min(sizes) if sizes else 1


def fresh_cache(cache):
    """A copy of ``cache`` that a forward may extend without touching the original.

    A cache made of dynamic layers (full or sliding-window: ``DynamicLayer``,
    ``DynamicSlidingWindowLayer``) is copied layer by layer *shallowly*: their ``update`` binds
    new tensors (``torch.cat``, slicing) and an ``int`` length, never writing a stored tensor in
    place, so the copy may share the original's tensors. This is O(layers), where a deep copy
    costs the whole cache (hundreds of MB per batch on Gemma 3 with a few hundred tokens). Any
    other cache (static, quantized, offloaded) is deep-copied."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers: Any = getattr(cache, "layers", None)  # checked before it is iterated
    shallow_ok = bool(layers) and all(
        type(layer) in (DynamicLayer, DynamicSlidingWindowLayer)
        and isinstance(getattr(layer, "cumulative_length", 0), int) for layer in layers)
    if not shallow_ok:
        return copy.deepcopy(cache)
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in layers]
    return out


def expanded_cache(cache, batch: int):
    """A :func:`fresh_cache` copy of a one-row ``cache`` repeated to ``batch`` rows, for a batch
    of continuations of one prefix; ``cache`` itself is left exactly as it was (the repeat binds
    new tensors in the copy's layers)."""
    out = fresh_cache(cache)
    if batch > 1:
        out.batch_repeat_interleave(batch)
    return out


__all__ = [
    "cache_is_croppable",
    "check_id_tensor",
    "check_token_ids",
    "context_length",
    "expanded_cache",
    "forward",
    "fresh_cache",
    "model_device",
    "pad_batch",
    "pad_id",
    "sliding_window",
    "position_ids_from_mask",
    "prefill",
    "prepare",
    "tokenize",
    "vocab_size",
]
