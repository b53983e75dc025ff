"""llmct.core.lens: the logit lens is the final norm and the unembedding applied by hand (and the
final soft-cap where the model has one), so the last block's output reads as the model's own
logits; top_tokens ranks the lens' probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import llmct
from llmct.core.lens import lens_logits, top_tokens
from tests.tiny_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IDS = [[5, 9, 17, 33, 2, 8], [40, 8, 99, 12]]


class NumberTokenizer:
    """decode([i]) -> 't<i>'."""

    def decode(self, ids):
        return "".join(f"t{i}" for i in ids)


def _by_hand(model, hidden: np.ndarray, norm) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(hidden)
        return (norm(x) @ model.lm_head.weight.T).numpy()


def test_lens_is_final_norm_then_unembedding_by_hand():
    model = tiny_model("llama")
    hidden = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32) * 4
    got = lens_logits(model, hidden)
    assert got.shape == (3, 128) and got.dtype == np.float32
    np.testing.assert_allclose(got, _by_hand(model, hidden, model.model.norm), atol=1e-5)
    raw = lens_logits(model, hidden, apply_norm=False)
    np.testing.assert_allclose(raw, _by_hand(model, hidden, torch.nn.Identity()), atol=1e-5)
    assert not np.allclose(raw, got, atol=1e-2)  # the (perturbed) final norm matters


def test_gemma2_lens_applies_the_final_soft_cap():
    model = tiny_model("gemma2")  # final_logit_softcapping = 30
    hidden = np.random.default_rng(1).normal(size=(2, 64)).astype(np.float32) * 50
    uncapped = _by_hand(model, hidden, model.model.norm)
    np.testing.assert_allclose(lens_logits(model, hidden), np.tanh(uncapped / 30.0) * 30.0,
                               atol=1e-4)
    assert np.abs(lens_logits(model, hidden)).max() < 30.0


@pytest.mark.parametrize("kind", ["llama", "gemma2", "gpt2", "gpt_neox", "olmo2"])
def test_lens_of_the_last_block_is_the_models_logits(kind):
    model = tiny_model(kind)
    cap = llmct.capture(model, None, IDS, sources=["hidden_out"], layers=[-1], batch_size=1)
    lens = lens_logits(model, cap["hidden_out"][:, 0])
    for i, ids in enumerate(IDS):
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0, -1].numpy()
        np.testing.assert_allclose(lens[i], ref, atol=1e-4)


def test_top_tokens_rank_the_lens_probabilities():
    model = tiny_model("llama")
    hidden = np.random.default_rng(2).normal(size=(2, 64)).astype(np.float32)
    logits = lens_logits(model, hidden)
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    top = top_tokens(model, NumberTokenizer(), hidden, k=3)
    assert len(top) == 2 and all(len(row) == 3 for row in top)
    for row, p in zip(top, probs, strict=True):
        order = np.argsort(-p)[:3]
        assert [t for t, _ in row] == [f"t{i}" for i in order]
        np.testing.assert_allclose([v for _, v in row], p[order], rtol=1e-5)
    bottom = top_tokens(model, NumberTokenizer(), hidden, k=2, bottom=True, softmax=False)
    order = np.argsort(logits[0])[:2]
    assert [t for t, _ in bottom[0]] == [f"t{i}" for i in order]
    np.testing.assert_allclose([v for _, v in bottom[0]], logits[0][order], rtol=1e-5)
