"""llmct.core.readout: next-token logits at each item's read-out under an intervention (equal to
plain Hugging Face forwards whatever the padding), block outputs at the read-out, and the
prefix-cache shortcut for interventions at the last token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmct.core import interventions as iv
from llmct.core.hooks import Hooks, count_hooks
from llmct.core.readout import PrefixCache, readout_logits
from llmct.errors import CaptureError
from tests.tiny_models import CONFIGS, random_token_batches, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KINDS = sorted(k for k in CONFIGS if k != "gpt_neox_seq")


def logits_of(model, seqs, intervention=None):
    return readout_logits(model, None, seqs, intervention).logits


def _hf(model, ids: list[int]):
    with torch.no_grad():
        return model(torch.tensor([ids]), output_hidden_states=True)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("kind", KINDS)
def test_readout_logits_equal_plain_forwards(kind, side):
    model = tiny_model(kind)
    seqs = random_token_batches(n=5)
    got = readout_logits(model, None, seqs, batch_size=3, padding_side=side, hidden_layers=[0])
    assert got.logits.shape == (5, 128) and got.logits.dtype == torch.float32
    for i, ids in enumerate(seqs):
        out = _hf(model, ids)
        torch.testing.assert_close(got.logits[i], out.logits[0, -1], atol=1e-5, rtol=0)
        torch.testing.assert_close(got.hidden[0][i], out.hidden_states[1][0, -1], atol=1e-5,
                                   rtol=0)


def test_a_token_index_reads_that_token():
    model = tiny_model("llama")
    seqs = [[5, 9, 17, 33], [40, 8, 99]]
    got = readout_logits(model, None, seqs, position=1, padding_side="left").logits
    for i, ids in enumerate(seqs):
        torch.testing.assert_close(got[i], _hf(model, ids).logits[0, 1], atol=1e-5, rtol=0)
    explicit = readout_logits(model, None, seqs, position=[[0], [-1]]).logits
    torch.testing.assert_close(explicit[0], _hf(model, seqs[0]).logits[0, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(explicit[1], _hf(model, seqs[1]).logits[0, -1], atol=1e-5, rtol=0)


def test_the_intervention_gets_each_batch_s_items_and_its_hooks_go():
    model = tiny_model("llama")
    seqs = random_token_batches(n=5)
    seen = []

    def record(items):
        seen.append(list(items))

    readout_logits(model, None, seqs, record, batch_size=2)
    assert seen == [[0, 1], [2, 3], [4]] and count_hooks(model) == 0


def test_readout_refuses_spans_and_bad_ids():
    model = tiny_model("llama")
    with pytest.raises(CaptureError, match="reads one token per item"):
        readout_logits(model, None, [[5, 6, 7]], position="mean")
    with pytest.raises(CaptureError, match=r"item 1: token id 128"):
        readout_logits(model, None, [[5, 6], [7, 128]])


def test_prefix_cache_refuses_short_inputs_and_no_copies():
    model = tiny_model("llama")
    with pytest.raises(CaptureError, match="at least 2 tokens"):
        PrefixCache(model, None, [[5, 6], [7]])
    with pytest.raises(CaptureError, match="copies must be >= 1, got 0"):
        PrefixCache(model, None, [[5, 6]], copies=0)
    assert len(PrefixCache(model, None, [[5, 6], [7, 8, 9]], copies=3)) == 6


def test_prefix_cache_is_rebuilt_after_a_failed_run():
    """An error in the middle of a forward (block 0 has extended its cache layer, blocks 1-2 have
    not) leaves the stored prefix unknown: it is rebuilt, and the next run gives the full
    forwards' numbers (without the rebuild it fails on mismatched cache lengths)."""
    model = tiny_model("llama")
    seqs = random_token_batches(n=3)
    cache = PrefixCache(model, None, seqs, batch_size=3)

    def boom(*_):
        raise RuntimeError("entering block 1")

    def fail(_rows):
        hooks = Hooks()
        hooks.pre(model.model.layers[1], boom)
        return hooks

    with pytest.raises(RuntimeError, match="entering block 1"):
        cache.run(fail)
    torch.testing.assert_close(cache.run().logits, logits_of(model, seqs), atol=1e-4, rtol=0)
    assert count_hooks(model) == 0


@pytest.mark.parametrize("kind", ["llama", "gemma2"])
def test_prefix_cache_equals_full_forwards(kind):
    model = tiny_model(kind)
    seqs = random_token_batches(n=5)
    cache = PrefixCache(model, None, seqs, batch_size=2)
    vals = np.random.default_rng(2).standard_normal((5, 64)).astype(np.float32)

    def patch_last(items):
        return iv.patch(model, "mlp_out", 1, vals[items], positions="last")

    for fn in (None, patch_last, lambda items: iv.ablate(model, "attn_out", 2, "zero")):
        full = readout_logits(model, None, seqs, fn, hidden_layers=[-1])
        fast = cache.run(fn, hidden_layers=[-1])
        torch.testing.assert_close(fast.logits, full.logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(fast.hidden[2], full.hidden[2], atol=1e-4, rtol=0)
    # copies: one forward, a different intervention per copy, same numbers as separate runs
    two = PrefixCache(model, None, seqs, batch_size=2, copies=2)
    both = np.concatenate([vals, np.zeros_like(vals)])
    res = two.run(lambda rows: iv.patch(model, "mlp_out", 1, both[rows], positions="last"))
    torch.testing.assert_close(res.logits[:5], logits_of(model, seqs, patch_last),
                               atol=1e-4, rtol=0)
    zero = logits_of(model, seqs, lambda items: iv.ablate(model, "mlp_out", 1))
    torch.testing.assert_close(res.logits[5:], zero, atol=1e-4, rtol=0)
    # an intervention outside the last token is refused; the cache stays usable afterwards
    with pytest.raises(CaptureError, match="cached"):
        cache.run(lambda items: iv.ablate(model, "attn_out", 0, "zero", positions="all"))
    torch.testing.assert_close(cache.run().logits, logits_of(model, seqs), atol=1e-4, rtol=0)
    assert count_hooks(model) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_full_forwards_resumed_from_kept_resid_pre_are_bit_identical(kind):
    """06's every-token knockouts: a clean call keeps resid_pre at the ablated layers, and each
    ablated call resumes there; logits and block outputs equal the whole forwards bit for bit,
    seeded noise included (the noise is drawn on the same [B, T, D] tensor)."""
    model = tiny_model(kind)
    seqs = random_token_batches(n=5)
    clean = readout_logits(model, None, seqs, batch_size=2, hidden_layers=[2],
                           keep_resid_pre=[1, 2])
    assert [t.shape[0] for t in clean.resid_pre[1]] == [2, 2, 1]
    for layer in (1, 2):
        for mode in ("zero", "noise"):
            def knock(rows, la=layer, m=mode):
                return iv.ablate(model, "mlp_out", la, m, positions="all", seed=3)
            whole = readout_logits(model, None, seqs, knock, batch_size=2, hidden_layers=[2])
            resumed = readout_logits(model, None, seqs, knock, batch_size=2, hidden_layers=[2],
                                     start_layer=layer, clean=clean)
            assert torch.equal(whole.logits, resumed.logits), (kind, layer, mode)
            assert torch.equal(whole.hidden[2], resumed.hidden[2])
    assert count_hooks(model) == 0


def test_resuming_without_the_kept_layer_or_reading_below_it_is_refused():
    model = tiny_model("llama")
    seqs = random_token_batches(n=3)
    clean = readout_logits(model, None, seqs, keep_resid_pre=[1])
    with pytest.raises(CaptureError, match="keep_resid_pre including 2"):
        readout_logits(model, None, seqs, start_layer=2, clean=clean)
    with pytest.raises(CaptureError, match="below start_layer"):
        readout_logits(model, None, seqs, start_layer=1, clean=clean, hidden_layers=[0])
    with pytest.raises(CaptureError, match="not the same batch"):
        readout_logits(model, None, seqs, batch_size=2, start_layer=1, clean=clean)
    with pytest.raises(CaptureError, match="kept 1 batches; this call has more"):
        readout_logits(model, None, seqs * 2, batch_size=3, start_layer=1, clean=clean)


@pytest.mark.parametrize("kind", KINDS)
def test_prefix_cache_after_a_shared_prefix_equals_whole_prompts(kind):
    """Prompts that continue one shared prefix: its cache once, then each prompt's body
    (right-padded, a masked hole before the last token); equal to the left-padded whole
    prompts within 1e-5, with copies and an intervention, and the prefix's cache untouched."""
    from llmct.core.prefix import SharedPrefix

    model = tiny_model(kind)
    prefix = [7, 19, 23, 5, 88, 41]
    seqs = [prefix + s for s in random_token_batches(n=5, lo=2, hi=9)]
    shared = SharedPrefix.build(model, None, prefix)
    keys = [layer.keys.clone() for layer in shared.cache.layers]
    whole = PrefixCache(model, None, seqs, batch_size=2, copies=2)
    fast = PrefixCache(model, None, seqs, batch_size=2, copies=2, shared_prefix=shared)
    window = getattr(model.config, "sliding_window", None)
    uses_window = any(t != "full_attention" for t in getattr(model.config, "layer_types", None)
                      or ["sliding"] * (window is not None))
    assert fast.n_shared == (0 if uses_window and window < 16 else 3)

    def knock(rows):
        return iv.ablate(model, "mlp_out", 1, "zero", positions="last")

    for intervention in (None, knock):
        a, b = whole.run(intervention, hidden_layers=[2]), fast.run(intervention, hidden_layers=[2])
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.hidden[2], b.hidden[2], atol=1e-5, rtol=0)
    assert all(torch.equal(k, layer.keys) for k, layer in zip(keys, shared.cache.layers,
                                                               strict=True))


def test_a_prompt_that_does_not_continue_the_shared_prefix_runs_whole():
    from llmct.core.prefix import SharedPrefix

    model = tiny_model("llama")
    prefix = [7, 19, 23]
    seqs = [prefix + [40, 41, 42], [7, 19, 24, 40, 41], prefix + [5, 6]]
    cache = PrefixCache(model, None, seqs, batch_size=2,
                        shared_prefix=SharedPrefix.build(model, None, prefix))
    assert cache.n_shared == 1  # the batch holding [7, 19, 24, ...] ran whole
    whole = PrefixCache(model, None, seqs, batch_size=2)
    torch.testing.assert_close(cache.run().logits, whole.run().logits, atol=1e-5, rtol=0)
