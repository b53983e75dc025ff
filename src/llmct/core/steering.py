"""Activation steering: add ``alpha x scale x unit(direction)`` to the residual stream at one layer.

The vector is added to ``hidden_out`` of block ``layer`` (the residual leaving it) at every real
token whose position, counted over real tokens only, is ``>= start``. Positions come from the
attention mask, so the same token is steered identically whether the sequence is run in one pass,
token by token with a KV cache (prefill steers the prompt, each decoding step only its new token),
or left-padded in a batch (padding is never steered). ``scale`` is usually
:func:`mean_residual_norm` at that layer, which makes ``alpha`` a fraction of a typical residual.

    with steer(model, direction, layer=20, alpha=0.1, scale=norm):
        out = model.generate(...)

Several conditions at once: :func:`steer_copies` (every forward returns one copy of its batch per
condition; the blocks up to ``layer`` run once for all of them) and :func:`steer_rows` (one
condition per batch row, e.g. for one ``generate``).

Hooks are removed on exit, even on exceptions. Steering is an *editing* hook in the ordered
registry of :mod:`llmct.core.hooks`: any reader of the same site (a capture, an ``EmotionMonitor``)
sees the steered ``hidden_out``, whether it was entered inside or outside the ``steer`` block.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llmct.core.arch import get_adapter
from llmct.core.capture import capture, resolve_layers
from llmct.core.hooks import Hooks
from llmct.core.runner import Tokenizer, check_id_tensor, model_device, prepare, vocab_size
from llmct.core.runner import forward as run_forward
from llmct.errors import LLMCTError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def unit(direction) -> torch.Tensor:
    """``direction`` as a float32 unit vector (an error for a zero or non-finite vector)."""
    vec = torch.as_tensor(np.asarray(direction, dtype=np.float32)).flatten()
    norm = float(vec.norm())
    if not np.isfinite(norm) or norm == 0.0:
        raise LLMCTError(f"steering direction has norm {norm}; need a finite non-zero vector")
    return vec / norm


def random_direction(d_model: int, seed: int = 0) -> np.ndarray:
    """A seeded isotropic random unit vector (the same-norm control for a steering vector)."""
    vec = np.random.default_rng(seed).standard_normal(d_model).astype(np.float32)
    return vec / np.linalg.norm(vec)


def steer_positions(attention_mask: torch.Tensor | None, n_new: int, past_len: int,
                    start: int = 0) -> torch.Tensor | None:
    """``[B, n_new]`` bool: which of the forward's new tokens are steered (None: all of them).

    With a 2-D mask covering past + new tokens, a token's position is its count among real tokens
    (left padding and padding holes do not shift it); padded tokens are never steered. Without a
    mask every token is real and the new tokens sit at ``past_len ..``.
    """
    if attention_mask is None:
        if start <= past_len:
            return None
        pos = torch.arange(past_len, past_len + n_new)
        return (pos >= start).unsqueeze(0)
    if attention_mask.dim() != 2:
        raise LLMCTError(
            f"steering needs a 2-D [batch, tokens] attention mask, got shape "
            f"{tuple(attention_mask.shape)}; pass the padding mask, not a prepared 4-D one"
        )
    mask = attention_mask.bool()
    pos = mask.long().cumsum(-1) - 1
    return (mask & (pos >= start))[:, -n_new:]


def _checked_vector(model, direction, start: int) -> torch.Tensor:
    """``unit(direction)``, checked against the model's residual width and ``start >= 0``."""
    vec = unit(direction)
    if vec.numel() != model.config.hidden_size:
        raise LLMCTError(
            f"steering direction has {vec.numel()} dims; the model's residual has "
            f"{model.config.hidden_size}"
        )
    if start < 0:
        raise LLMCTError(f"start must be >= 0, got {start}")
    return vec


def _mask_reader(model, start: int, state: dict):
    """A pre-hook for ``model.base_model`` that stores in ``state["where"]`` which of the
    forward's new tokens are steered (:func:`steer_positions`), checking the token ids."""
    base = model.base_model
    signature = inspect.signature(base.forward)
    var_kw = next((p.name for p in signature.parameters.values()
                   if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    vocab = vocab_size(model)

    def read_mask(module, args, kwargs):
        bound = signature.bind_partial(*args, **kwargs).arguments
        bound = {**bound.pop(var_kw, {}), **bound} if var_kw else dict(bound)
        tokens = bound.get("input_ids")
        if tokens is None:
            tokens = bound.get("inputs_embeds")
        if tokens is None:
            raise LLMCTError("steering: the forward got neither input_ids nor inputs_embeds")
        check_id_tensor(bound.get("input_ids"), vocab)
        past: Any = bound.get("past_key_values")
        past_len = int(past.get_seq_length()) if hasattr(past, "get_seq_length") else 0
        state["where"] = steer_positions(bound.get("attention_mask"), tokens.shape[1], past_len,
                                         start)
        state.pop("rows", None)

    return read_mask


def _steered_where(state: dict, hidden: torch.Tensor) -> torch.Tensor | None:
    """``[B, n, 1]`` 0/1 of the steered tokens of ``hidden [B, n, d]`` (None: every token)."""
    where = state.get("where")
    if where is None:
        return None
    if tuple(where.shape) != tuple(hidden.shape[:2]):
        raise LLMCTError(
            f"steering: block output {tuple(hidden.shape)} does not match the mask's "
            f"{tuple(where.shape)} new tokens"
        )
    return where.to(hidden.device).unsqueeze(-1).to(hidden.dtype)


@contextmanager
def _add_to_hidden_out(model, layer: int, start: int,
                       delta_for: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Add ``delta_for(hidden)`` (broadcast to ``hidden [B, n, d]``) to ``hidden_out`` of the
    (resolved) ``layer`` at the tokens from ``start`` on, while inside."""
    state: dict = {}

    def add(hidden: torch.Tensor) -> torch.Tensor:
        delta = delta_for(hidden)
        where = _steered_where(state, hidden)
        return hidden + delta if where is None else hidden + where * delta

    with Hooks() as hooks:
        hooks.pre(model.base_model, _mask_reader(model, start, state))
        hooks.edit(get_adapter(model).site(model, "hidden_out", layer), add)
        yield


@contextmanager
def steer(model, direction, layer: int, alpha: float, scale: float = 1.0, start: int = 0):
    """Add ``alpha * scale * unit(direction)`` to ``hidden_out`` of ``layer`` while inside.

    ``start``: first steered position (in real-token coordinates; 0 = every token). ``alpha=0`` is
    an exact identity. Yields the added vector (float32, norm ``|alpha| * scale``).
    """
    (layer,) = resolve_layers([layer], get_adapter(model).n_layers(model))
    added = _checked_vector(model, direction, start) * float(alpha) * float(scale)
    with _add_to_hidden_out(model, layer, start,
                            lambda h: added.to(device=h.device, dtype=h.dtype)):
        yield added


@contextmanager
def steer_rows(model, directions, layer: int, alphas: Sequence[float], scale: float = 1.0,
               start: int = 0):
    """One steering condition per batch row: row ``r`` of every forward inside is steered as by
    ``steer(model, directions[r], layer, alphas[r], scale, start)`` (e.g. one ``generate`` of
    the same prompt repeated ``len(directions)`` times, one condition per row). Rows never
    attend to each other, so each row equals its own :func:`steer` run to float rounding. Yields
    the ``[B, d]`` added vectors. Raises LLMCTError as :func:`steer_copies`, and when a forward
    has another number of rows than ``len(directions)``."""
    (layer,) = resolve_layers([layer], get_adapter(model).n_layers(model))
    added = _stacked(model, directions, alphas, scale, start)

    def rows(hidden: torch.Tensor) -> torch.Tensor:
        if hidden.shape[0] != added.shape[0]:
            raise LLMCTError(f"steer_rows: a forward of {hidden.shape[0]} rows for "
                             f"{added.shape[0]} conditions")
        return added.to(device=hidden.device, dtype=hidden.dtype)[:, None]

    with _add_to_hidden_out(model, layer, start, rows):
        yield added


def _stacked(model, directions, alphas: Sequence[float], scale: float, start: int
             ) -> torch.Tensor:
    """``[C, d]``: ``alphas[c] * scale * unit(directions[c])``, each direction checked."""
    if len(directions) == 0 or len(alphas) != len(directions):
        raise LLMCTError(f"need one alpha per direction, got {len(directions)} directions and "
                         f"{len(alphas)} alphas")
    return torch.stack([_checked_vector(model, d, start) * float(a) * float(scale)
                        for d, a in zip(directions, alphas, strict=True)])


def _repeat_rows(value, n: int, copies: int):
    """``value`` (a tensor, or tuples / lists / dicts of them) with every tensor of >= 2 dims and
    ``n`` rows repeated ``copies`` times along dim 0 (row ``c * n + i`` = copy ``c`` of row
    ``i``); anything else (1-D cache positions, flags, the cache object) unchanged."""
    if isinstance(value, torch.Tensor):
        if value.dim() >= 2 and value.shape[0] == n:
            return value.repeat(copies, *([1] * (value.dim() - 1)))
        return value
    if isinstance(value, tuple | list):
        return type(value)(_repeat_rows(v, n, copies) for v in value)
    if isinstance(value, dict):
        return {k: _repeat_rows(v, n, copies) for k, v in value.items()}
    return value


@contextmanager
def steer_copies(model, directions, layer: int, alphas: Sequence[float], scale: float = 1.0,
                 start: int = 0):
    """Several steering conditions in one forward: every forward inside returns ``C =
    len(directions)`` copies of its batch, copy ``c`` steered as by ``steer(model,
    directions[c], layer, alphas[c], scale, start)``.

    The blocks up to ``layer`` do not depend on the steering, so they run once on the ``n`` input
    rows; the block output of ``layer`` is repeated to ``C * n`` rows (row ``c * n + i`` is copy
    ``c`` of input row ``i``), copy ``c`` gets its own added vector, and the later blocks, the
    final norm and the LM head run on all copies (their batch-sized arguments -- attention mask,
    position ids and embeddings -- are repeated alike). The logits and the last hidden state have
    ``C * n`` rows (per-layer hidden states: ``n`` rows up to ``layer``, ``C * n`` after). A KV
    cache built inside has ``n`` rows at blocks ``<= layer`` and ``C * n`` after it; continue it only inside a ``steer_copies`` with the same conditions (its
    ``batch_repeat_interleave(k)`` keeps the copy-major order of the repeated batch). Equal to
    ``C`` separate :func:`steer` forwards to float rounding (``alpha=0`` copies are the unsteered
    model). Not for ``generate`` (its token bookkeeping has ``n`` rows). Yields the ``[C, d]``
    added vectors. Raises LLMCTError for no directions, ``len(alphas) != len(directions)``, a
    direction of the wrong width or zero norm, ``start < 0``; CaptureError for a layer out of
    range."""
    adapter = get_adapter(model)
    (layer,) = resolve_layers([layer], adapter.n_layers(model))
    added = _stacked(model, directions, alphas, scale, start)
    copies = added.shape[0]
    state: dict = {}

    def fan_out(hidden: torch.Tensor) -> torch.Tensor:
        n = hidden.shape[0]
        where = _steered_where(state, hidden)
        delta = added.to(device=hidden.device, dtype=hidden.dtype).repeat_interleave(n, 0)
        rep = hidden.repeat(copies, 1, 1)
        state["rows"] = n
        return rep + delta[:, None] if where is None else rep + where.repeat(copies, 1, 1) * (
            delta[:, None])

    def expand(module, args, kwargs):
        n = state.get("rows")
        if n is None or copies == 1:
            return None
        return (args[:1] + _repeat_rows(args[1:], n, copies),
                {k: v if k == "hidden_states" else _repeat_rows(v, n, copies)
                 for k, v in kwargs.items()})

    with Hooks() as hooks:
        hooks.pre(model.base_model, _mask_reader(model, start, state))
        hooks.edit(adapter.site(model, "hidden_out", layer), fan_out)
        for block in adapter.block_list(model)[layer + 1:]:
            hooks.pre(block, expand, edits=True)
        yield added


def mean_residual_norm(model, tokenizer, texts: Sequence, layer: int | Sequence[int], *,
                       mean_from: int = 0, batch_size: int = 8):
    """Mean L2 norm of ``hidden_out`` at ``layer`` over every real token from ``mean_from`` on.

    The mean of per-token norms (not the norm of the mean activation). A float for one layer, an
    array (one value per layer, in the order given) for a list of layers.
    """
    ids = prepare(model, tokenizer, texts)
    positions = []
    for i, toks in enumerate(ids):
        if mean_from >= len(toks):
            raise LLMCTError(f"text {i} has {len(toks)} tokens; mean_from={mean_from}")
        positions.append(list(range(mean_from, len(toks))))
    layers = [layer] if isinstance(layer, int | np.integer) else list(layer)
    cap = capture(model, tokenizer, ids, sources=("hidden_out",), layers=layers,
                  position=positions, batch_size=batch_size)
    norms = np.linalg.norm(cap["hidden_out"].astype(np.float64), axis=-1).mean(axis=0)
    return float(norms[0]) if len(layers) == 1 and isinstance(layer, int | np.integer) else norms


def lm_loss(model: PreTrainedModel, tokenizer: Tokenizer | None, texts: Sequence) -> float:
    """Mean next-token cross-entropy (nats per predicted token) of ``model`` on ``texts``, one
    unpadded forward per text through the forward runner (ids checked, position ids from the
    mask). The control for steering: a direction that raises it damages the language model as a
    whole. Runs under any active hooks (e.g. :func:`steer`). Raises CaptureError for ids outside
    the vocabulary or a text longer than the context; LLMCTError when no text has 2 tokens."""
    return float(lm_losses(model, tokenizer, texts)[0])


def lm_losses(model: PreTrainedModel, tokenizer: Tokenizer | None, texts: Sequence,
              copies: int = 1) -> np.ndarray:
    """:func:`lm_loss` of each of the ``copies`` outputs of a forward (``[copies]`` float64, nats
    per predicted token): inside :func:`steer_copies` every forward returns ``copies`` steered
    copies of its row, copy ``c`` being row ``c``. Raises as :func:`lm_loss`, and LLMCTError
    when the forward returns another number of rows than ``copies``."""
    total, count = np.zeros(copies), 0
    device = model_device(model)
    with torch.inference_mode():
        for ids in prepare(model, tokenizer, list(texts)):
            if len(ids) < 2:
                continue
            x = torch.tensor([ids], device=device)
            logits = run_forward(model, x, torch.ones_like(x)).logits[:, :-1].float()
            if logits.shape[0] != copies:
                raise LLMCTError(f"the forward returned {logits.shape[0]} rows for {copies} "
                                 "copies")
            for c in range(copies):
                total[c] += float(torch.nn.functional.cross_entropy(logits[c], x[0, 1:],
                                                                    reduction="sum"))
            count += len(ids) - 1
    if not count:
        raise LLMCTError("lm_loss needs at least one text of 2 or more tokens")
    return total / count


__all__ = ["lm_loss", "lm_losses", "mean_residual_norm", "random_direction", "steer", "steer_copies",
           "steer_positions", "steer_rows", "unit"]
