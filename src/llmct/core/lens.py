"""Logit lens: read a residual-stream vector through the model's final norm and unembedding.

The final norm must be applied (as the model itself does before its head), and a final logit
soft-cap where the model has one (Gemma2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from llmct.core.arch import get_adapter, get_submodule

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def head_logits(model: PreTrainedModel, final: torch.Tensor) -> torch.Tensor:
    """The model's own logits from its *final-normed* last hidden state ``final [..., D]`` (the
    base model's ``last_hidden_state``): the unembedding, then the final logit soft-cap where the
    model has one (Gemma 2/3), in the model's dtype; ``[..., V]`` returned as float32 on the
    model's device, equal to the logits of a full forward at those positions."""
    adapter = get_adapter(model)
    logits = adapter.unembed(model)(final)
    cap = getattr(model.config, adapter.logit_softcap_attr or "", None)
    if cap:  # in the model's dtype, as its own forward does
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def lens_logits(model: PreTrainedModel, hidden: np.ndarray, *,
                apply_norm: bool = True) -> np.ndarray:
    """``hidden [..., D]`` -> logits ``[..., V]`` (fp32)."""
    adapter = get_adapter(model)
    norm = get_submodule(model, adapter.final_norm)
    head = adapter.unembed(model)
    x = torch.as_tensor(np.asarray(hidden), dtype=head.weight.dtype, device=head.weight.device)
    with torch.inference_mode():
        return head_logits(model, norm(x) if apply_norm else x).cpu().numpy()


def top_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, hidden: np.ndarray,
               k: int = 5, *, bottom: bool = False, softmax: bool = True
               ) -> list[list[tuple[str, float]]]:
    """For each row of ``hidden [N, D]``: the top (or bottom) ``k`` tokens with probability
    (or raw logit when ``softmax=False``)."""
    logits = torch.from_numpy(lens_logits(model, hidden))
    scores = torch.softmax(logits, -1) if softmax else logits
    vals, idx = torch.topk(scores, k, dim=-1, largest=not bottom)
    # decode() of one id list is a str (transformers annotates it str | list[str], for batches)
    return [
        [(cast(str, tokenizer.decode([int(t)])), float(v)) for t, v in zip(ti, vi, strict=True)]
        for ti, vi in zip(idx.tolist(), vals.tolist(), strict=True)
    ]
