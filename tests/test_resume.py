"""llmct.core.resume: a forward resumed at block L from a stored clean resid_pre equals the whole
forward bit for bit under any intervention at or above L, on every architecture family, and
refuses what it cannot do exactly (hooks below L, a residual of another batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmct.core import interventions as iv
from llmct.core.arch import get_adapter
from llmct.core.hooks import Hooks, count_hooks
from llmct.core.readout import PrefixCache
from llmct.core.resume import can_resume, resume_at
from llmct.errors import CaptureError
from tests.tiny_models import CONFIGS, random_token_batches, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KINDS = sorted(k for k in CONFIGS if k != "gpt_neox_seq")


def _ids(n: int = 3, length: int = 7) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(5).integers(3, 120, size=(n, length)))


def _clean_resid_pre(model, ids: torch.Tensor, layer: int) -> torch.Tensor:
    got = {}
    adapter = get_adapter(model)
    with Hooks() as hooks, torch.inference_mode():
        hooks.read(adapter.site(model, "hidden_in", layer),
                   lambda h: got.__setitem__("h", h.clone()))
        model(ids)
    return got["h"]


@pytest.mark.parametrize("kind", KINDS)
def test_resumed_forward_equals_the_whole_forward_under_an_edit(kind):
    model = tiny_model(kind)
    assert can_resume(model)
    ids = _ids()
    n_layers = get_adapter(model).n_layers(model)
    for layer in range(n_layers):
        resid = _clean_resid_pre(model, ids, layer)
        with torch.inference_mode(), iv.ablate(model, "mlp_out", layer, "zero", positions="all"):
            whole = model(ids).logits
        with torch.inference_mode(), resume_at(model, layer, resid), iv.ablate(
                model, "mlp_out", layer, "zero", positions="all"):
            resumed = model(ids).logits
        assert torch.equal(whole, resumed), (kind, layer)
    assert count_hooks(model) == 0
    assert not any("forward" in vars(b) for b in get_adapter(model).block_list(model))


def test_the_resumed_forward_skips_the_blocks_below():
    model = tiny_model("llama")
    ids = _ids()
    resid = _clean_resid_pre(model, ids, 2)
    calls = []
    with Hooks() as hooks:  # count the attention modules that run
        for la, block in enumerate(get_adapter(model).block_list(model)):
            hooks.forward(block.self_attn, lambda m, a, o, la=la: calls.append(la))
        with torch.inference_mode():
            model(ids)
        assert calls == [0, 1, 2]
        calls.clear()
    with resume_at(model, 2, resid), torch.inference_mode():
        model(ids)
    assert calls == []  # the hooks were gone; now count again with hooks above the resume layer
    with Hooks() as hooks, resume_at(model, 2, resid), torch.inference_mode():
        hooks.forward(get_adapter(model).block_list(model)[2].self_attn,
                      lambda m, a, o: calls.append(2))
        model(ids)
    assert calls == [2]


def test_a_hook_below_the_resume_layer_is_refused_and_everything_is_restored():
    model = tiny_model("llama")
    ids = _ids()
    resid = _clean_resid_pre(model, ids, 2)
    with pytest.raises(CaptureError, match="block 1, below the layer"):
        with resume_at(model, 2, resid), iv.ablate(model, "attn_out", 1, "zero"), \
                torch.inference_mode():
            model(ids)
    assert count_hooks(model) == 0
    assert not any("forward" in vars(b) for b in get_adapter(model).block_list(model))


def test_a_residual_of_another_batch_or_a_bad_layer_is_refused():
    model = tiny_model("llama")
    resid = _clean_resid_pre(model, _ids(n=2), 1)
    with pytest.raises(CaptureError, match="not the same batch"):
        with resume_at(model, 1, resid), torch.inference_mode():
            model(_ids(n=3))
    with pytest.raises(CaptureError, match="out of range"):
        with resume_at(model, 3, resid):
            pass


def test_a_model_whose_blocks_have_a_replaced_forward_cannot_resume():
    model = tiny_model("llama")
    block = get_adapter(model).block_list(model)[0]
    block.forward = block.forward  # what accelerate's dispatch hooks do under device_map
    try:
        assert not can_resume(model)
        with pytest.raises(CaptureError, match="cannot resume"):
            with resume_at(model, 1, torch.zeros(1)):
                pass
    finally:
        del block.forward


@pytest.mark.parametrize("kind", KINDS)
def test_prefix_cache_resumed_runs_equal_whole_runs(kind):
    """PrefixCache.run(start_layer=L) under a knockout at L: bit-identical to start_layer=0, with
    copies (one condition per copy) and on sliding-window caches, which are copied, not cropped."""
    model = tiny_model(kind)
    seqs = random_token_batches(n=5)
    d_model = model.get_input_embeddings().weight.shape[1]
    mean = np.random.default_rng(3).standard_normal(d_model).astype(np.float32)
    cache = PrefixCache(model, None, seqs, batch_size=2, copies=3)
    for source, layer in (("attn_out", 0), ("mlp_out", 1), ("attn_out", 2), ("hidden_out", 2)):
        makers = [lambda pos, m=m, s=source, la=layer: iv.ablate(
            model, s, la, m, positions=pos, mean_vector=mean, seed=7) for m in iv.ABLATIONS]
        whole = cache.run(iv.by_copy(makers, 5), hidden_layers=[-1])
        resumed = cache.run(iv.by_copy(makers, 5), hidden_layers=[-1], start_layer=layer)
        assert torch.equal(whole.logits, resumed.logits), (kind, source, layer)
        assert torch.equal(whole.hidden[2], resumed.hidden[2])
    again = cache.run(hidden_layers=[-1])  # the stored prefixes are untouched
    torch.testing.assert_close(again.logits, cache.run(start_layer=2).logits, atol=0, rtol=0)
    with pytest.raises(CaptureError, match="below start_layer"):
        cache.run(hidden_layers=[0], start_layer=1)
    assert count_hooks(model) == 0


@pytest.mark.parametrize("kind", ["llama", "gemma3", "gpt2"])
def test_transformers_own_output_recorders_do_not_block_resuming(kind):
    """Regression: after a forward with output_hidden_states=True, transformers 5 keeps its
    output-recording hooks on every block; they are not llmct's and must not be refused."""
    model = tiny_model(kind)
    ids = _ids()
    with torch.inference_mode():
        model(ids, output_hidden_states=True)
    resid = _clean_resid_pre(model, ids, 2)
    with torch.inference_mode(), iv.ablate(model, "mlp_out", 2, "zero", positions="all"):
        whole = model(ids).logits
    with torch.inference_mode(), resume_at(model, 2, resid), iv.ablate(
            model, "mlp_out", 2, "zero", positions="all"):
        resumed = model(ids).logits
    assert torch.equal(whole, resumed)
