"""Capture semantics checked against plain Hugging Face forwards on every adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import llmct
from llmct.core.arch import get_submodule
from llmct.core.hooks import count_hooks
from tests.tiny_models import CONFIGS, random_token_batches, tiny_model

KINDS = list(CONFIGS)
ATOL = 1e-5


def hf_hidden_states(model, ids: list[int]) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    return [h[0].float().numpy() for h in out.hidden_states]


@pytest.fixture(scope="module", params=KINDS)
def model(request):
    return tiny_model(request.param)


def test_residual_identities_against_hf(model):
    seqs = random_token_batches(n=3)
    cap = llmct.capture(model, None, seqs, position="last", batch_size=1)
    adapter = llmct.get_adapter(model)
    final_norm = get_submodule(model, adapter.final_norm)
    for i, ids in enumerate(seqs):
        hs = hf_hidden_states(model, ids)
        last = len(ids) - 1
        # hidden_in[0] is the embedding output HF reports as hidden_states[0]
        np.testing.assert_allclose(cap["hidden_in"][i, 0], hs[0][last], atol=ATOL)
        for layer in range(3):
            if layer < 2:
                np.testing.assert_allclose(cap["hidden_out"][i, layer], hs[layer + 1][last], atol=ATOL)
                # hidden_out[l] == hidden_in[l+1]
                np.testing.assert_array_equal(cap["hidden_out"][i, layer], cap["hidden_in"][i, layer + 1])
            # block output = input + attention + MLP contributions (sequential and parallel alike)
            summed = cap["hidden_in"][i, layer] + cap["attn_out"][i, layer] + cap["mlp_out"][i, layer]
            np.testing.assert_allclose(cap["hidden_out"][i, layer], summed, atol=1e-4)
        # HF's last hidden state has the final norm applied: it is NOT the last block's output
        with torch.no_grad():
            normed = final_norm(torch.from_numpy(cap["hidden_out"][i, 2])).numpy()
        np.testing.assert_allclose(normed, hs[3][last], atol=ATOL)
        assert not np.allclose(cap["hidden_out"][i, 2], hs[3][last], atol=1e-3)


@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_padding_equals_unbatched(model, side):
    seqs = random_token_batches(n=5)
    one = llmct.capture(model, None, seqs, position="last", batch_size=1)
    many = llmct.capture(model, None, seqs, position="last", batch_size=5, padding_side=side)
    for s in llmct.SOURCES:
        assert np.abs(one[s] - many[s]).max() <= ATOL, s
    mean_one = llmct.capture(model, None, seqs, position="mean", mean_from=2, batch_size=1)
    mean_many = llmct.capture(model, None, seqs, position="mean", mean_from=2, batch_size=4,
                              padding_side=side)
    for s in llmct.SOURCES:
        assert np.abs(mean_one[s] - mean_many[s]).max() <= ATOL, s


def test_logits_match_hf(model):
    seqs = random_token_batches(n=3)
    cap = llmct.capture(model, None, seqs, sources=["hidden_out"], layers=[-1], logits=True,
                        batch_size=3, padding_side="left")
    for i, ids in enumerate(seqs):
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0, -1].numpy()
        np.testing.assert_allclose(cap.logits[i], ref, atol=1e-4)


def test_explicit_positions_and_spans(model):
    seqs = random_token_batches(n=2, lo=8, hi=12)
    spec = [[0, 3, -1, (1, 4)], [2, (0, 8)]]
    cap = llmct.capture(model, None, seqs, position=spec, batch_size=2, padding_side="left")
    assert cap["hidden_out"].shape[0] == 6
    assert cap.row_item.tolist() == [0, 0, 0, 0, 1, 1]
    full = llmct.capture(model, None, [seqs[0][:4]], position="mean", mean_from=1)
    np.testing.assert_allclose(cap["hidden_out"][3], full["hidden_out"][0], atol=ATOL)
    last = llmct.capture(model, None, [seqs[0]], position="last")
    np.testing.assert_allclose(cap["hidden_out"][2], last["hidden_out"][0], atol=ATOL)


def test_attention_rows_are_distributions(model):
    seqs = random_token_batches(n=3)
    cap = llmct.capture(model, None, seqs, sources=["hidden_out"], attention=True, batch_size=3,
                        padding_side="left")
    n_heads = model.config.num_attention_heads
    for i, a in enumerate(cap.attention):
        assert a.shape == (3, n_heads, len(seqs[i]))
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-4)


def test_hooks_removed_after_exception(model):
    before = count_hooks(model)
    with pytest.raises(llmct.CaptureError):
        llmct.capture(model, None, [[1, 2, 3]], position=[[5]])
    adapter = llmct.get_adapter(model)
    block = adapter.block_list(model)[1]

    def boom(*_):
        raise RuntimeError("boom")

    handle = block.register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            llmct.capture(model, None, [[1, 2, 3]])
    finally:
        handle.remove()
    assert count_hooks(model) == before
