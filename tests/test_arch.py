"""llmct.core.arch: the adapter of every family, its sites (and their aliases) mapped to the
modules that add to the residual, refusal of unknown or mis-laid-out models, verify_adapter, and
the layer map of ``llmct layers``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import llmct
from llmct.core import arch
from llmct.core.arch import ADAPTERS, canonical_site, get_adapter, get_submodule, head_dim
from llmct.core.interventions import patch
from llmct.errors import CaptureError, UnsupportedArchitectureError
from tests.tiny_models import CONFIGS, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KINDS = list(CONFIGS)


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_found_and_map(kind):
    model = tiny_model(kind)
    info = llmct.describe(model)
    assert info["n_layers"] == 3 and info["d_model"] == 64
    assert info["head_dim"] == llmct.head_dim(model.config)


def test_olmo2_has_its_own_adapter():
    assert get_adapter(tiny_model("olmo2")).family == "olmo2"


def test_unsupported_architecture():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, vocab_size=50))
    with pytest.raises(llmct.UnsupportedArchitectureError, match="bert"):
        llmct.get_adapter(bert)


def test_site_aliases_are_the_canonical_sites():
    """Sites declared once in the adapters: resid_pre = hidden_in, resid_post = hidden_out, for
    capture and interventions alike."""
    model = tiny_model("olmo2")
    ids = [[5, 9, 17, 33]]
    a = llmct.capture(model, None, ids, sources=["resid_pre", "resid_post"], layers=[1])
    b = llmct.capture(model, None, ids, sources=["hidden_in", "hidden_out"], layers=[1])
    assert sorted(a.acts) == ["hidden_in", "hidden_out"]
    np.testing.assert_array_equal(a["hidden_out"], b["hidden_out"])
    vec = torch.ones(64)
    with patch(model, "resid_post", 1, vec):
        c = llmct.capture(model, None, ids, sources=["hidden_in"], layers=[2])
    np.testing.assert_allclose(c["hidden_in"][0, 0], vec.numpy(), atol=1e-6)
    with pytest.raises(CaptureError, match="resid_mid"):
        llmct.capture(model, None, ids, sources=["resid_mid"])
    with pytest.raises(CaptureError, match="twice"):
        llmct.capture(model, None, ids, sources=["resid_post", "hidden_out"])


def test_verify_adapter_catches_a_mis_mapped_norm(monkeypatch):
    """Not vacuous: an OLMo-2 adapter that forgets the post-sublayer norms fails the check."""
    import dataclasses

    wrong = tuple(dataclasses.replace(a, attn_post_norm=None, mlp_post_norm=None)
                  if a.family == "olmo2" else a for a in ADAPTERS)
    monkeypatch.setattr(arch, "ADAPTERS", wrong)
    with pytest.raises(UnsupportedArchitectureError, match="residual identity off by"):
        arch.verify_adapter(tiny_model("olmo2"))


@pytest.mark.integration
def test_embedded_model_passes_verify_adapter(embedded):
    """The residual identity and HF hidden states on real weights (SmolLM2, llama adapter)."""
    model, tok = embedded
    ids = tok("I can't stop smiling today, everything went right!")["input_ids"]
    report = arch.verify_adapter(model, ids)
    assert report["family"] == "llama"
    assert report["max_abs_error"] <= 2e-5 * max(1.0, report["max_abs_value"])


def test_canonical_sites_and_their_aliases():
    assert [canonical_site(s) for s in ("resid_pre", "resid_post", "attn_out", "mlp_out")] == [
        "hidden_in", "hidden_out", "attn_out", "mlp_out"]
    with pytest.raises(CaptureError, match=r"unknown site 'resid_mid'; choose from .*hidden_in.*"
                       r"\(aliases: resid_pre=hidden_in, resid_post=hidden_out\)"):
        canonical_site("resid_mid")


@pytest.mark.parametrize(("kind", "attn", "mlp"), [
    ("llama", "self_attn", "mlp"),
    ("gemma2", "post_attention_layernorm", "post_feedforward_layernorm"),  # sandwich norms
    ("olmo2", "post_attention_layernorm", "post_feedforward_layernorm"),  # post-sublayer norms
    ("gpt2", "attn", "mlp"),
])
def test_sites_map_to_what_the_block_adds(kind, attn, mlp):
    model = tiny_model(kind)
    adapter = get_adapter(model)
    block = adapter.block_list(model)[2]
    pre, out = adapter.site(model, "resid_pre", 2), adapter.site(model, "hidden_out", 2)
    assert (pre.module, pre.kind) == (block, "pre") and (out.module, out.kind) == (block, "out")
    a, m = adapter.site(model, "attn_out", 2), adapter.site(model, "mlp_out", 2)
    assert a.module is getattr(block, attn) and m.module is getattr(block, mlp)
    assert a.kind == m.kind == "out" and a.path == f"{adapter.blocks}[2].{attn}"
    with pytest.raises(CaptureError, match="layer 3 is out of range for a model with 3 layers"):
        adapter.site(model, "hidden_out", 3)


def test_get_submodule_names_the_missing_attribute():
    model = tiny_model("llama")
    assert get_submodule(model, "model.norm") is model.model.norm
    with pytest.raises(UnsupportedArchitectureError,
                       match="has no attribute 'ln_f' \\(looking for 'model.ln_f'\\)"):
        get_submodule(model, "model.ln_f")


def test_a_model_type_with_no_adapter_is_refused_with_the_supported_list():
    model = tiny_model("llama")
    model.config.model_type = "falcon"
    with pytest.raises(UnsupportedArchitectureError,
                       match=r"no llmct adapter for model_type='falcon'.*Supported: .*gpt2.*llama"):
        get_adapter(model)


def test_head_dim_explicit_wins_over_hidden_over_heads():
    assert head_dim(CONFIGS["llama"]()) == 64 // 4
    assert head_dim(CONFIGS["qwen3"]()) == 16  # explicit head_dim
    cfg = CONFIGS["llama"]()
    cfg.head_dim = 32
    assert head_dim(cfg) == 32


def test_layer_map_of_parallel_and_sandwich_blocks():
    neox = llmct.describe(tiny_model("gpt_neox"))
    assert neox["block_kind"] == "parallel" and neox["family"] == "gpt_neox"
    assert llmct.describe(tiny_model("gpt_neox_seq"))["block_kind"] == "sequential"
    gemma = llmct.describe(tiny_model("gemma2"))
    assert gemma["attn_out"] == "model.layers[i].post_attention_layernorm"
    assert gemma["mlp_out"] == "model.layers[i].post_feedforward_layernorm"
    assert gemma["logit_softcap"] == 30.0 and gemma["n_kv_heads"] == 2
    assert gemma["embed"] == "model.embed_tokens" and gemma["unembed"] == "lm_head"
    assert llmct.describe(tiny_model("llama"))["logit_softcap"] is None


@pytest.mark.parametrize("kind", ["llama", "gpt2", "gemma3"])
def test_verify_adapter_reports_a_small_error(kind):
    report = arch.verify_adapter(tiny_model(kind))
    assert report["family"] == get_adapter(tiny_model(kind)).family
    assert 0 <= report["max_abs_error"] <= 2e-5 * max(1.0, report["max_abs_value"])
