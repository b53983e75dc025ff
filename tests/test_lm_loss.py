"""``llmct.core.steering.lm_loss`` (the steering experiment's damage control) through the forward
runner equals cross-entropy computed by hand from a plain Hugging Face forward, and moves under an
active steering hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmct.core.steering import lm_loss, steer
from llmct.errors import CaptureError, LLMCTError
from tests.tiny_models import random_token_batches, tiny_model


@pytest.mark.parametrize("kind", ["llama", "gemma3", "gpt2"])
def test_lm_loss_equals_plain_forward(kind):
    model = tiny_model(kind)
    seqs = random_token_batches(n=4)
    total, count = 0.0, 0
    with torch.inference_mode():
        for s in seqs:
            x = torch.tensor([s])
            logits = model(input_ids=x).logits[0, :-1].float()
            total += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += len(s) - 1
    assert lm_loss(model, None, seqs) == pytest.approx(total / count, abs=1e-5)
    direction = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    with steer(model, direction, 1, alpha=200.0):
        assert abs(lm_loss(model, None, seqs) - total / count) > 1e-3


def test_lm_loss_errors():
    model = tiny_model("llama")
    with pytest.raises(LLMCTError, match="at least one text of 2"):
        lm_loss(model, None, [[5]])
    with pytest.raises(CaptureError):
        lm_loss(model, None, [[5, 10_000_000]])
