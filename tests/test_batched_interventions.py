"""Batched interventions (issue #17, item 2): several conditions per forward, one per copy of the
items (:func:`llmct.core.interventions.by_copy` with a ``PrefixCache(copies=k)``), equal to
one-at-a-time runs within 1e-5 in fp32, seeded noise included, on every architecture family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmct.core import interventions as iv
from llmct.core.hooks import count_hooks
from llmct.core.readout import PrefixCache
from tests.tiny_models import CONFIGS, random_token_batches, tiny_model

KINDS = sorted(k for k in CONFIGS if k != "gpt_neox_seq")


def _conditions(model, d_model: int):
    """(source, layer, mode) knockouts as 06 runs them, each a positions -> context maker."""
    mean = np.random.default_rng(3).standard_normal(d_model).astype(np.float32)
    out = []
    for source, layer in (("mlp_out", 1), ("attn_out", 2)):
        for mode in iv.ABLATIONS:
            out.append(lambda pos, s=source, la=layer, m=mode: iv.ablate(
                model, s, la, m, positions=pos, mean_vector=mean, seed=11 + la))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_by_copy_equals_one_condition_at_a_time(kind):
    model = tiny_model(kind)
    seqs = random_token_batches(n=5)
    d_model = model.get_input_embeddings().weight.shape[1]
    makers = _conditions(model, d_model)
    single = PrefixCache(model, None, seqs, batch_size=2)
    alone = [single.run(lambda rows, mk=mk: mk("last"), hidden_layers=[-1]) for mk in makers]
    for k in (3, len(makers)):  # conditions in chunks of k copies, as 06 does per (source, layer)
        cache = PrefixCache(model, None, seqs, batch_size=2, copies=k)
        for start in range(0, len(makers), k):
            chunk = makers[start: start + k]
            chunk = chunk + [chunk[0]] * (k - len(chunk))  # pad a short last chunk
            res = cache.run(iv.by_copy(chunk, len(seqs)), hidden_layers=[-1])
            for c in range(min(k, len(makers) - start)):
                ref = alone[start + c]
                rows = slice(c * len(seqs), (c + 1) * len(seqs))
                torch.testing.assert_close(res.logits[rows], ref.logits, atol=1e-5, rtol=0)
                last = max(res.hidden)
                torch.testing.assert_close(res.hidden[last][rows], ref.hidden[last], atol=1e-5,
                                           rtol=0)
    assert count_hooks(model) == 0


def test_by_copy_edits_only_its_own_rows():
    model = tiny_model("llama")
    seqs = random_token_batches(n=4)
    cache = PrefixCache(model, None, seqs, batch_size=4, copies=2)
    clean = cache.run().logits
    identity = [lambda pos: iv.ablate(model, "mlp_out", 1, "zero", positions=pos),
                lambda pos: iv.patch(model, "mlp_out", 1, np.zeros(64, np.float32),
                                     positions=[[] for _ in pos])]  # the second copy: no edit
    res = cache.run(iv.by_copy(identity, len(seqs))).logits
    torch.testing.assert_close(res[4:], clean[4:], atol=1e-6, rtol=0)
    assert not torch.allclose(res[:4], clean[:4], atol=1e-3)
