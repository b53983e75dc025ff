"""Interventions: identity patches, exact reproduction of another input, cleanup after errors,
batched == unbatched, zero ablation vs a hand computation, norm-matched noise, and each causal
experiment's main() end to end (the prefix-cache shortcut: test_readout.py; answer words:
test_answers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import llmct
from llmct.core import interventions as iv
from llmct.core.hooks import count_hooks
from llmct.core.readout import readout_logits
from llmct.errors import CaptureError
from tests.tiny_models import random_token_batches, tiny_model

ATOL = 1e-5
KINDS = ["llama", "gemma2", "gpt2", "gpt_neox"]


def logits_of(model, seqs, side="right", intervention=None, batch_size=8):
    return readout_logits(model, None, seqs, intervention, batch_size=batch_size,
                             padding_side=side).logits


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("source", iv.INTERVENABLE)
def test_patching_own_activation_changes_nothing(kind, source):
    model = tiny_model(kind)
    seqs = random_token_batches(n=4)
    cap = llmct.capture(model, None, seqs, sources=(source,), layers=[1], position="last")
    clean = logits_of(model, seqs)
    patched = logits_of(model, seqs, intervention=lambda items: iv.patch(
        model, source, 1, cap[source][items, 0], positions="last"))
    torch.testing.assert_close(patched, clean, atol=ATOL, rtol=0)
    assert count_hooks(model) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_patching_every_position_of_last_layer_reproduces_the_other_input(kind):
    model = tiny_model(kind)
    x, y = [5, 9, 17, 33, 2, 60, 71], [40, 8, 99, 12, 3, 57, 21]
    cap = llmct.capture(model, None, [y], sources=("hidden_out",), layers=[-1],
                        position=[list(range(len(y)))])
    with torch.no_grad():
        want = model(torch.tensor([y])).logits
        with iv.patch(model, "hidden_out", -1, [cap["hidden_out"][:, 0]], positions=[range(7)]):
            got = model(torch.tensor([x])).logits
        clean = model(torch.tensor([x])).logits
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    assert not torch.allclose(clean, want, atol=1e-3)


def test_hidden_out_patch_propagates_to_later_layers():
    model = tiny_model("llama")
    seqs = random_token_batches(n=2)
    vec = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    with iv.patch(model, "hidden_out", 0, vec, positions="last"):
        cap = llmct.capture(model, None, seqs, sources=("hidden_in", "hidden_out"), layers=[0, 1])
    np.testing.assert_allclose(cap["hidden_out"][:, 0], np.stack([vec, vec]), atol=1e-6)
    np.testing.assert_allclose(cap["hidden_in"][:, 1], np.stack([vec, vec]), atol=1e-6)
    clean = llmct.capture(model, None, seqs, sources=("hidden_out",), layers=[1])
    assert not np.allclose(clean["hidden_out"][:, 0], cap["hidden_out"][:, 1], atol=1e-3)


def test_hooks_removed_after_exceptions():
    model = tiny_model("llama")
    seqs = random_token_batches(n=3)
    assert count_hooks(model) == 0
    with pytest.raises(RuntimeError, match="boom"), iv.ablate(model, "mlp_out", 1, "zero"):
        assert count_hooks(model) == 2
        raise RuntimeError("boom")
    assert count_hooks(model) == 0
    # an error raised inside the forward (wrong number of patch vectors) also cleans up
    with pytest.raises(CaptureError, match="patch vectors"):
        logits_of(model, seqs, intervention=lambda items: iv.patch(
            model, "attn_out", 0, [np.zeros((2, 64))] * len(items), positions="last"))
    assert count_hooks(model) == 0
    with pytest.raises(CaptureError, match="mean_vector"), iv.ablate(model, "attn_out", 0, "mean"):
        pass
    assert count_hooks(model) == 0


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_batched_interventions_equal_unbatched(kind, side):
    model = tiny_model(kind)
    seqs = random_token_batches(n=5)
    rng = np.random.default_rng(1)
    values = rng.standard_normal((5, 2, 64)).astype(np.float32)
    mean = rng.standard_normal(64).astype(np.float32)

    def patch_two(items):  # positions 1 and the last, item-specific vectors
        return iv.patch(model, "hidden_out", 0, values[items], positions=[[1, -1]] * len(items))

    def ablate_all(items):
        return iv.ablate(model, "attn_out", 1, "mean", positions="all", mean_vector=mean)

    for fn in (patch_two, ablate_all):
        batched = readout_logits(model, None, seqs, fn, batch_size=5, padding_side=side)
        single = readout_logits(model, None, seqs, fn, batch_size=1)
        torch.testing.assert_close(batched.logits, single.logits, atol=ATOL, rtol=0)
        assert not torch.allclose(batched.logits, logits_of(model, seqs), atol=1e-3)


def test_zero_ablation_of_attn_out_equals_manual_computation():
    model = tiny_model("llama")
    seqs = random_token_batches(n=3)
    block = llmct.get_adapter(model).block_list(model)[1]
    for positions in ("all", "last"):
        with iv.ablate(model, "attn_out", 1, "zero", positions=positions):
            for ids in seqs:
                cap = llmct.capture(model, None, [ids], sources=("hidden_in", "hidden_out"),
                                    layers=[1], position=[list(range(len(ids)))])
                h_in = torch.from_numpy(cap["hidden_in"][:, 0])
                with torch.no_grad():  # Llama block without attention: h + MLP(norm(h))
                    manual = h_in + block.mlp(block.post_attention_layernorm(h_in))
                got = torch.from_numpy(cap["hidden_out"][:, 0])
                edited = slice(None) if positions == "all" else slice(-1, None)
                torch.testing.assert_close(got[edited], manual[edited], atol=ATOL, rtol=0)
                if positions == "last":  # earlier tokens keep their attention output
                    assert not torch.allclose(got[:-1], manual[:-1], atol=1e-3)


def test_noise_ablation_keeps_the_norm_and_mean_ablation_sets_the_mean():
    model = tiny_model("llama")
    seqs = random_token_batches(n=3)
    clean = llmct.capture(model, None, seqs, sources=("attn_out",), layers=[0])
    with iv.ablate(model, "attn_out", 0, "noise", seed=3):
        noisy = llmct.capture(model, None, seqs, sources=("attn_out",), layers=[0])
    a, b = clean["attn_out"][:, 0], noisy["attn_out"][:, 0]
    np.testing.assert_allclose(np.linalg.norm(b, axis=-1), np.linalg.norm(a, axis=-1), rtol=1e-5)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert np.all(np.abs(cos) < 0.9)
    mean = np.full(64, 0.5, dtype=np.float32)
    with iv.ablate(model, "mlp_out", 2, "mean", mean_vector=mean):
        cap = llmct.capture(model, None, seqs, sources=("mlp_out",), layers=[2])
    np.testing.assert_allclose(cap["mlp_out"][:, 0], np.tile(mean, (3, 1)))
    v = np.random.default_rng(0).standard_normal((4, 64))
    np.testing.assert_allclose(np.linalg.norm(iv.random_like_norm(v), axis=-1),
                               np.linalg.norm(v, axis=-1), rtol=1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["05_patching", "06_knockout", "07_attention"])
def test_causal_experiments_run_end_to_end(embedded, tmp_path, name):
    from tests.test_extract import load_experiment, tiny_file

    data = tiny_file(tmp_path)
    args = ["--stimuli", str(data), "--activations", str(tmp_path / "acts"), "--limit", "2",
            "--no-progress", "--out", str(tmp_path / name), *QUICK[name]]
    assert load_experiment(name).main(args) == 0
    out = tmp_path / name
    assert list(out.glob("*.csv")) and list(out.glob("*.png")) and list(out.glob("*.svg"))


QUICK = {
    "05_patching": ["--exemplars", "1", "--layers", "-1", "--pairings", "set_a:set_b"],
    "06_knockout": ["--layers", "-1", "--modes", "zero", "noise", "--all-positions-layers", "-1"],
    "07_attention": ["--n-perm", "200"],
}
