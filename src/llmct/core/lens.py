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


def lens_logits(model: PreTrainedModel, hidden: np.ndarray, *,
                apply_norm: bool = True) -> np.ndarray:
    """``hidden [..., D]`` -> logits ``[..., V]`` (fp32)."""
    adapter = get_adapter(model)
    norm = get_submodule(model, adapter.final_norm)
    head = adapter.unembed(model)
    dev = head.weight.device
    x = torch.as_tensor(np.asarray(hidden), dtype=head.weight.dtype, device=dev)
    with torch.inference_mode():
        h = norm(x) if apply_norm else x
        logits = head(h).float()
        cap = getattr(model.config, adapter.logit_softcap_attr or "", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
    return logits.cpu().numpy()


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
