"""Resume a forward at block ``L`` from a stored residual stream: the blocks below ``L`` are skipped.

An intervention at block ``L`` (its ``attn_out``, ``mlp_out`` or ``hidden_out``, or any site of a
later block) leaves every computation below ``L`` unchanged: the residual stream entering block
``L`` (``resid_pre``) is the clean one. So a forward under such an intervention may start at ``L``
from a ``resid_pre`` kept from a clean forward of the *same batch* (same rows, same padding),
skipping ``L`` blocks of compute; the result is the full forward's, bit for bit, because block
``L`` and everything after it receive identical inputs. This is TransformerLens's
``start_at_layer`` (github.com/TransformerLensOrg/TransformerLens, ``HookedTransformer.forward``)
done on an unmodified Hugging Face model: each skipped block's ``forward`` is swapped, for the
duration of the context, for a pass-through, and a pre-hook on block ``L`` substitutes the stored
residual.

Key/value caches: a skipped block does not extend its layer of a KV cache, so a cache used in a
resumed forward must be a throw-away copy (:func:`llmct.core.runner.fresh_cache`), never cropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from llmct.core.arch import get_adapter
from llmct.core.hooks import Hooks, block_input, has_llmct_hooks, replace_block_input
from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _pass_through(block: torch.nn.Module, layer: int):
    """A replacement ``forward`` for a skipped block: returns its input residual unchanged.
    Raises CaptureError when an llmct hook sits on the block (a reader or an edit below the
    resume layer would silently see or change nothing). Hooks installed by others are left to
    run on the pass-through: transformers 5 keeps output recorders on every block once
    ``output_hidden_states`` has been asked for, and they record nothing unless asked again."""

    def forward(*args, **kwargs) -> torch.Tensor:
        if has_llmct_hooks(block):
            raise CaptureError(f"an llmct hook is registered on block {layer}, below the layer "
                               "the forward resumes at: it would not run")
        return block_input(args, kwargs)

    return forward


def can_resume(model: PreTrainedModel) -> bool:
    """Whether a forward of ``model`` can resume at a layer: its blocks return the residual
    stream as a bare tensor (transformers >= 5, where the decoder loop of every supported family
    assigns ``hidden_states = block(...)``) and no block's ``forward`` is already replaced on
    the instance (as accelerate's dispatch hooks do under ``device_map``). Callers fall back to
    full forwards otherwise: the numbers are the same, only slower."""
    import transformers

    blocks = get_adapter(model).block_list(model)
    return int(transformers.__version__.split(".")[0]) >= 5 and bool(blocks) and not any(
        "forward" in vars(b) for b in blocks)


@contextmanager
def resume_at(model: PreTrainedModel, layer: int, resid_pre: torch.Tensor) -> Iterator[None]:
    """Within the context, a forward of ``model`` skips blocks ``0 .. layer-1`` and feeds block
    ``layer`` with ``resid_pre`` (``[B, T, D]``, the shape and dtype of that block's input in
    the forward: the same batch as the clean forward it was read from).

    Enter it *before* any intervention on block ``layer`` so that edits of that block's input
    see the stored residual. ``layer == 0`` only substitutes the input.

    Raises:
        CaptureError: ``layer`` out of range; blocks that do not return a bare tensor (see
            :func:`can_resume`); at forward time, a ``resid_pre`` whose shape differs
            from the block input's, or a hook on a skipped block.
    """
    blocks = get_adapter(model).block_list(model)
    if not 0 <= layer < len(blocks):
        raise CaptureError(f"resume layer {layer} is out of range for {len(blocks)} layers")
    if layer and not can_resume(model):
        raise CaptureError("this model cannot resume at a layer (blocks that do not return a "
                           "tensor, or whose forward is already replaced): see can_resume")

    def substitute(module, args, kwargs):
        seen = block_input(args, kwargs)
        if tuple(seen.shape) != tuple(resid_pre.shape):
            raise CaptureError(f"stored resid_pre has shape {tuple(resid_pre.shape)}, block "
                               f"{layer} receives {tuple(seen.shape)}: not the same batch")
        return replace_block_input(args, kwargs, resid_pre.to(seen.device, seen.dtype))

    skipped = list(blocks[:layer])
    for k, block in enumerate(skipped):
        block.forward = _pass_through(block, k)
    try:
        with Hooks() as hooks:
            hooks.pre(blocks[layer], substitute, edits=True)
            yield
    finally:
        for block in skipped:
            vars(block).pop("forward", None)


__all__ = ["can_resume", "resume_at"]
