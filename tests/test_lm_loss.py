"""``llmct.core.steering.lm_loss`` (the steering experiment's damage control) through the forward
runner equals cross-entropy computed by hand from a plain Hugging Face forward, and moves under an
active steering hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmct.core.steering import lm_loss, lm_losses, random_direction, steer, steer_copies
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


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_lm_losses_of_steered_copies_equal_one_condition_at_a_time(kind):
    model = tiny_model(kind)
    seqs = random_token_batches(n=3)
    dirs = [random_direction(64, seed) for seed in (1, 2, 3)]
    alphas = [0.0, 2.0, 5.0]
    refs = []
    for direction, alpha in zip(dirs, alphas, strict=True):
        with steer(model, direction, 1, alpha=alpha, scale=4.0):
            refs.append(lm_loss(model, None, seqs))
    with steer_copies(model, dirs, 1, alphas, scale=4.0):
        got = lm_losses(model, None, seqs, copies=3)
        with pytest.raises(LLMCTError, match="3 rows for 2 copies"):
            lm_losses(model, None, seqs, copies=2)
    np.testing.assert_allclose(got, refs, rtol=1e-5, atol=1e-6)
    assert refs[0] == lm_loss(model, None, seqs) and abs(refs[2] - refs[0]) > 1e-3
    assert lm_losses(model, None, seqs).tolist() == [refs[0]]
