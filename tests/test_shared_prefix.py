"""Shared-prefix capture (issue #17 item 1): a prompt prefix's KV cache computed once and reused
for every item equals full forwards -- every source, every read-out rule extraction uses (and
spans / tokens inside the prefix), every architecture (sliding-window and hybrid caches with a
prefix longer than the window), batched with uneven lengths, fp32 within 1e-5 -- and the stored
prefix cache is never changed by a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import llmct
from llmct.core.capture import capture
from llmct.core.prefix import SharedPrefix
from llmct.errors import CaptureError
from tests.tiny_models import CONFIGS, VOCAB, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ATOL = 1e-5
PREFIX = [5, 9, 17, 33, 2, 8, 71, 100, 12, 13, 40, 41]  # 12 tokens: 3x the window of 4
# Read-out rules: extraction's ("last"; chat's explicit content index; "mean" for raw text),
# plus "mean" starting inside the prefix / at its boundary, and explicit tokens and spans that
# lie inside the prefix or straddle its end.
RULES = [("last", 0), ("mean", 0), ("mean", 7), ("mean", 12), (-2, 0), ("explicit", 0)]


def items(seed: int = 1) -> list[list[int]]:
    """Items after the prefix with uneven suffixes (1..9 tokens), plus two that do not split:
    another start and the prefix with its last token changed."""
    g = torch.Generator().manual_seed(seed)
    lengths = [1, 9, 4, 7, 2, 5, 3]
    out = [PREFIX + torch.randint(3, VOCAB, (k,), generator=g).tolist() for k in lengths]
    return out + [[7, 3, 99, *PREFIX], [*PREFIX[:-1], 77, 8, 9]]


def explicit(seqs: list[list[int]]) -> list[list]:
    """Per item: a suffix token, a prefix token, a span inside the prefix, one straddling the
    boundary, and a chat-like 'last token of the content' index."""
    return [[len(s) - 1, 3, (2, 6), (10, len(s)), len(s) - 2 if len(s) > 13 else 0] for s in seqs]


def run(model, seqs, rule, mean_from, prefix=None, **kw):
    position = explicit(seqs) if rule == "explicit" else rule
    return capture(model, None, seqs, position=position, mean_from=mean_from, batch_size=3,
                   shared_prefix=prefix, **kw)


def snapshot(cache) -> list[tuple]:
    """Every layer's key/value tensors (identity and value) and length fields."""
    return [(layer.keys, layer.keys.clone(), layer.values, layer.values.clone(),
             getattr(layer, "cumulative_length", None)) for layer in cache.layers]


def assert_unchanged(cache, before: list[tuple]) -> None:
    for layer, (k, k_copy, v, v_copy, length) in zip(cache.layers, before, strict=True):
        assert layer.keys is k and layer.values is v
        assert torch.equal(k, k_copy) and torch.equal(v, v_copy)
        assert getattr(layer, "cumulative_length", None) == length


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_shared_prefix_equals_full_forwards(kind):
    model = tiny_model(kind)
    seqs = items()
    prefix = SharedPrefix.build(model, None, PREFIX)
    before = snapshot(prefix.cache)
    if kind in ("mistral_sw", "gemma3"):  # the rotating layers really drop prefix states
        assert min(layer.keys.shape[-2] for layer in prefix.cache.layers) < len(PREFIX)
    worst = 0.0
    for rule, mean_from in RULES:
        for side in ("left", "right"):  # the padding side of the items that fall back
            ref = run(model, seqs, rule, mean_from, padding_side=side)
            got = run(model, seqs, rule, mean_from, prefix, padding_side=side)
            assert got.meta["shared_prefix"] == {"tokens": 12, "shared": 7, "fallback": 2}
            np.testing.assert_array_equal(got.row_item, ref.row_item)
            for source in llmct.SOURCES:
                diff = float(np.abs(got[source] - ref[source]).max())
                assert diff <= ATOL, (rule, mean_from, source, diff)
                worst = max(worst, diff)
    print(f"{kind}: max abs difference {worst:.2e}")
    assert_unchanged(prefix.cache, before)
    # the memoised per-token prefix activations serve the next call unchanged
    assert len(prefix.token_acts) == 1


@pytest.mark.parametrize("kind", ["gemma3", "mistral_sw", "llama"])
def test_logits_and_attention_fall_back_where_they_must(kind):
    """Logits at suffix read-outs come from the shared path; items reading a prefix token with
    logits, and every item with attention weights, run whole -- same numbers either way."""
    model = tiny_model(kind)
    seqs = items(seed=2)
    prefix = SharedPrefix.build(model, None, PREFIX)
    before = snapshot(prefix.cache)
    ref = capture(model, None, seqs, logits=True, batch_size=4)
    got = capture(model, None, seqs, logits=True, batch_size=4, shared_prefix=prefix)
    assert got.meta["shared_prefix"]["shared"] == 7
    assert np.abs(got.logits - ref.logits).max() <= ATOL
    pos = [[3, len(s) - 1] for s in seqs]  # a prefix token: no logits kept for it
    got = capture(model, None, seqs, position=pos, logits=True, shared_prefix=prefix)
    assert got.meta["shared_prefix"]["shared"] == 0
    ref = capture(model, None, seqs, sources=["hidden_out"], attention=True)
    got = capture(model, None, seqs, sources=["hidden_out"], attention=True, shared_prefix=prefix)
    assert np.abs(got["hidden_out"] - ref["hidden_out"]).max() <= ATOL
    assert_unchanged(prefix.cache, before)
    if kind != "llama":  # the 12-token prefix is longer than the window of 4: keys were dropped
        assert not prefix.keeps_every_key()
        assert got.meta["shared_prefix"] == {"tokens": 12, "shared": 0, "fallback": 9}


@pytest.mark.parametrize("kind", [k for k in CONFIGS if k not in ("mistral_sw", "gemma3")])
@pytest.mark.parametrize("position", ["last", "mean", "explicit"])
def test_attention_weights_after_the_shared_prefix_equal_full_forwards(kind, position):
    """Eager attention weights of read-outs after the prefix span the cached prefix keys and the
    item's own: the same [layers, heads, tokens] rows as a full forward's, every item's real
    keys only; read-outs inside the prefix (explicit tokens, a mean from token 0) run whole."""
    model = tiny_model(kind, attn_implementation="eager")
    seqs = items(seed=3)
    prefix = SharedPrefix.build(model, None, PREFIX)
    assert prefix.keeps_every_key()
    pos = [[len(s) - 1, (13, len(s))] if len(s) > 13 else [len(s) - 1] for s in seqs] \
        if position == "explicit" else position
    ref = capture(model, None, seqs, sources=["attn_out"], attention=True, position=pos,
                  batch_size=3)
    got = capture(model, None, seqs, sources=["attn_out"], attention=True, position=pos,
                  batch_size=3, shared_prefix=prefix)
    shared = got.meta["shared_prefix"]["shared"]
    assert shared == (0 if position == "mean" else 7)  # a mean from token 0 reads the prefix
    assert ref.attention is not None and got.attention is not None
    assert len(got.attention) == len(ref.attention)
    for a, b in zip(got.attention, ref.attention, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= ATOL
    assert np.abs(got["attn_out"] - ref["attn_out"]).max() <= ATOL


def test_prefix_of_another_model_is_refused():
    prefix = SharedPrefix.build(tiny_model("llama"), None, PREFIX)
    with pytest.raises(CaptureError, match="another model"):
        capture(tiny_model("llama"), None, items(), shared_prefix=prefix)


def test_split_check_and_plan_weights():
    prefix = SharedPrefix(model=None, token_ids=[1, 2, 3], cache=None)  # type: ignore[arg-type]
    assert prefix.splits([1, 2, 3, 4]) and not prefix.splits([1, 2, 3])
    assert not prefix.splits([1, 2, 4, 4]) and not prefix.splits([0, 1, 2, 3, 4])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    plan = prefix.plan(mask, [[(0, 5)], [1, (2, 6)]])
    # a mean over 5 tokens: 3 in the prefix (coef 1/5 each), 2 in the suffix (1/5 each)
    assert torch.allclose(plan.suffix.weights.sum(1), torch.tensor([0.4, 0.0, 0.75]))
    assert plan.coef is not None
    assert torch.allclose(plan.coef, torch.tensor([[0.2, 0.2, 0.2], [0, 1, 0], [0, 0, 0.25]]))


# ------------------------------------------------------------- the embedded model, real prompt


@pytest.mark.integration
def test_embedded_fewshot_extraction_uses_the_shared_prefix(embedded, tmp_path):
    """The real few-shot prompt on SmolLM2: every item splits at the template's prefix, and the
    stored activations equal full forwards' to float rounding: within 2e-6 of the residual
    stream's largest value (SmolLM2's reaches ~800, where an fp32 ulp is 6e-5; full forwards
    batched differently differ from each other by as much)."""
    from llmct.emotion import extract as ex
    from llmct.io.stimuli import load_sets

    model, tok = embedded
    stimuli = load_sets("set_a", "set_b")[::17]
    opts = dict(prompt="fewshot", sources=llmct.SOURCES, progress=False, model_name="default",
                batch_size=4)
    shared = ex.extract(model, tok, stimuli, tmp_path / "shared", **opts)
    full = ex.extract(model, tok, stimuli, tmp_path / "full", shared_prefix=False, **opts)
    assert (shared.n_shared_prefix, shared.n_prefix_fallback) == (len(stimuli), 0)
    assert (full.n_shared_prefix, full.n_prefix_fallback) == (0, 0)
    got = ex.load_extraction(tmp_path / "shared", stimuli)
    want = ex.load_extraction(tmp_path / "full", stimuli)
    assert got.manifest["shared_prefix"] == {"tokens": 102, "shared": len(stimuli), "fallback": 0}
    assert want.manifest["shared_prefix"] is None
    np.testing.assert_array_equal(got.n_tokens, want.n_tokens)
    scale = float(np.abs(want.acts["hidden_out"]).max())
    for source in llmct.SOURCES:
        diff = float(np.abs(got.acts[source] - want.acts[source]).max())
        print(f"embedded {source}: max abs difference {diff:.2e} (residual max {scale:.0f})")
        assert diff <= 2e-6 * scale, (source, diff, scale)


def test_template_prefix_is_where_every_prompt_starts():
    from llmct.emotion.prompts import fewshot_prompt, template_prefix, zeroshot_prompt

    for mode, wrap in (("fewshot", fewshot_prompt), ("zeroshot", zeroshot_prompt)):
        head = template_prefix(None, mode)
        assert isinstance(head, str) and head.endswith("Passage:")
        for text in ("A calm day.", "  leading space"):
            assert wrap(text).startswith(head + " ")  # the space goes with the stimulus
    assert template_prefix(None, "raw") is None and template_prefix(None, "mean") is None
    with pytest.raises(CaptureError, match="unknown prompt mode"):
        template_prefix(None, "nope")
