"""The embedded models (SmolLM2-135M-Instruct, Gemma 3 270M) on their real weights: the registry
matches the loaded model, cache records, and the capture parity suite against plain Hugging Face
forwards (the registry without a model: test_models.py)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

import llmct
from llmct.core import models
from llmct.core.arch import get_submodule
from llmct.core.lens import lens_logits

EMBEDDED = list(models.EMBEDDED_MODELS)
PROMPTS = [
    "I finally got the job I wanted, and I could not stop smiling.",
    "The funeral was quiet.",
    "She opened the letter and her hands began to shake as she read it twice.",
]


# ---------------------------------------------------------------- real weights


@pytest.fixture(scope="module", params=EMBEDDED)
def loaded(request):
    """(spec, model, tokenizer) for each embedded model in fp32 on CPU (converted on first use)."""
    spec = models.EMBEDDED_MODELS[request.param]
    if spec.aliases and models.DEFAULT in spec.aliases:
        model, tok = request.getfixturevalue("embedded")  # the session's default model
    else:
        model, tok = llmct.load_model(spec.name, dtype="float32", device="cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield spec, model, tok
    torch.set_num_threads(before)


def _scale(x: np.ndarray) -> float:
    return max(1.0, float(np.abs(x).max()))


def _hf(model, ids: list[int]) -> tuple[list[np.ndarray], np.ndarray]:
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    return [h[0, -1].float().numpy() for h in out.hidden_states], out.logits[0, -1].float().numpy()


@pytest.mark.integration
def test_registry_matches_the_loaded_model(loaded):
    spec, model, tok = loaded
    assert sum(p.numel() for p in model.parameters()) == spec.n_params
    info = llmct.describe(model)
    assert (info["n_layers"], info["d_model"], info["family"]) == (
        spec.n_layers, spec.d_model, spec.adapter)
    folder = models.cache_dir() / spec.cache_name
    source = json.loads((folder / "SOURCE.json").read_text())
    assert source["gguf_sha256"] == models._expected_gguf_sha256(spec)
    assert source["chat_template"] == spec.chat_template
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    hashes = models.recorded_weight_hashes(folder)
    assert hashes and re.fullmatch(r"[0-9a-f]{64}", hashes["model.safetensors"])
    for rel in spec.licence_files:
        assert (folder / rel.split("/")[-1]).stat().st_size > 0
    if spec.chat_template == "none":  # a base model: loading must not invent a template
        assert tok.chat_template is None
        assert model.config.model_type == "gemma3_text"
    else:
        assert "<|im_start|>" in tok.chat_template


@pytest.mark.integration
def test_capture_matches_hf_hidden_states_and_residual_identity(loaded):
    spec, model, tok = loaded
    seqs = [tok(p).input_ids for p in PROMPTS]
    cap = llmct.capture(model, tok, seqs, position="last", batch_size=1)
    last = spec.n_layers - 1
    final_norm = get_submodule(model, llmct.get_adapter(model).final_norm)
    embed = model.get_input_embeddings().weight.detach().numpy()
    # Gemma scales its embedding by sqrt(d_model) inside the embedding module; HF's
    # hidden_states[0] and llmct's hidden_in[0] are both the scaled vector.
    embed_scale = math.sqrt(spec.d_model) if spec.family == "Gemma 3" else 1.0
    for i, ids in enumerate(seqs):
        hs, _ = _hf(model, ids)
        np.testing.assert_allclose(cap["hidden_in"][i, 0], hs[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(hs[0], embed[ids[-1]] * embed_scale, rtol=1e-5, atol=1e-6)
        for layer in range(spec.n_layers):
            out = cap["hidden_out"][i, layer]
            tol = 1e-5 * _scale(out)
            if layer < last:
                assert np.abs(out - hs[layer + 1]).max() <= tol, layer
                np.testing.assert_array_equal(out, cap["hidden_in"][i, layer + 1])
            summed = cap["hidden_in"][i, layer] + cap["attn_out"][i, layer] + cap["mlp_out"][i, layer]
            assert np.abs(out - summed).max() <= tol, layer
        with torch.no_grad():
            normed = final_norm(torch.from_numpy(cap["hidden_out"][i, last])).numpy()
        assert np.abs(normed - hs[-1]).max() <= 1e-5 * _scale(hs[-1])
        assert not np.allclose(cap["hidden_out"][i, last], hs[-1], atol=1e-2)


@pytest.mark.integration
def test_batched_left_padded_equals_unbatched(loaded):
    spec, model, tok = loaded
    one = llmct.capture(model, tok, PROMPTS, position="last", batch_size=1)
    many = llmct.capture(model, tok, PROMPTS, position="last", batch_size=3, padding_side="left")
    for source in llmct.SOURCES:
        for layer in range(spec.n_layers):
            ref = one[source][:, layer]
            diff = np.abs(ref - many[source][:, layer]).max()
            # fp32 with different padding changes summation order: relative to the activations'
            # size (Gemma's residual reaches ~3e4)
            assert diff <= 2e-5 * _scale(ref), (source, layer, diff, _scale(ref))


@pytest.mark.integration
def test_logit_lens_of_last_layer_is_the_models_logits(loaded):
    spec, model, tok = loaded
    cap = llmct.capture(model, tok, PROMPTS, sources=["hidden_out"], layers=[-1], logits=True,
                        batch_size=3, padding_side="left")
    lens = lens_logits(model, cap["hidden_out"][:, 0])
    assert lens.shape == cap.logits.shape == (len(PROMPTS), model.config.vocab_size)
    for i, prompt in enumerate(PROMPTS):
        _, ref = _hf(model, tok(prompt).input_ids)
        assert np.abs(lens[i] - ref).max() <= 1e-4 * _scale(ref)
        assert np.abs(cap.logits[i] - ref).max() <= 1e-4 * _scale(ref)
        assert lens[i].argmax() == ref.argmax()


@pytest.mark.integration
def test_readout_paths_of_05_and_06_on_real_weights(loaded):
    """The read-out prefix cache after the few-shot prompt's shared start (used by every batch,
    Gemma 3's sliding-window layers included) equals whole prompts to float rounding, resumed
    knockouts equal whole ones bit for bit, and read-out logits equal the model's own."""
    from llmct.core import interventions as iv
    from llmct.core.readout import PrefixCache, readout_logits
    from llmct.emotion.prompts import build_inputs, shared_prefix_cache

    spec, model, tok = loaded
    inputs, _ = build_inputs(tok, PROMPTS, "fewshot")
    whole = PrefixCache(model, tok, inputs, batch_size=3)
    fast = PrefixCache(model, tok, inputs, batch_size=3,
                       shared_prefix=shared_prefix_cache(model, tok, "fewshot"))
    assert fast.n_shared == 1
    layer = spec.n_layers // 2

    def knock(rows):
        return iv.ablate(model, "mlp_out", layer, "zero", positions="last")

    a, b = whole.run(knock).logits, fast.run(knock, start_layer=layer).logits
    assert torch.equal(a, whole.run(knock, start_layer=layer).logits)
    assert (a - b).abs().max() <= 1e-4 * _scale(a.numpy())
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    got = readout_logits(model, tok, inputs[:1]).logits[0].numpy()
    _, ref = _hf(model, tok(inputs[0]).input_ids)
    assert np.abs(got - ref).max() <= 1e-4 * _scale(ref)


@pytest.mark.integration
def test_attention_weights_after_the_shared_prefix_on_real_weights(loaded):
    """07's extraction on real weights, Gemma 3's sliding-window layers included: the read-out
    token's eager attention weights (and attn_out) with the few-shot prompt's shared prefix run
    once equal those of whole prompts, every key of the item kept."""
    from llmct.core.capture import capture
    from llmct.emotion.prompts import build_inputs, shared_prefix_cache

    spec, model, tok = loaded
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        inputs, _ = build_inputs(tok, PROMPTS, "fewshot")
        prefix = shared_prefix_cache(model, tok, "fewshot")
        kw = dict(sources=["attn_out"], attention=True, batch_size=3)
        ref = capture(model, tok, inputs, **kw)
        got = capture(model, tok, inputs, shared_prefix=prefix, **kw)
    finally:
        model.set_attn_implementation(before)
    assert got.meta["shared_prefix"]["shared"] == len(PROMPTS)
    assert ref.attention is not None and got.attention is not None
    for a, b in zip(got.attention, ref.attention, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-5
    assert np.abs(got["attn_out"] - ref["attn_out"]).max() <= 1e-5 * _scale(ref["attn_out"])
