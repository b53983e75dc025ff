"""llmct.core.positions: read-out rules normalised to unpadded token indices and spans, and the
gather/average plan of a padded batch built from its attention mask (left == right == unpadded)."""

from __future__ import annotations

import pytest
import torch

from llmct.core.positions import batch_readout, describe_position, readouts_for_item
from llmct.core.runner import pad_batch
from llmct.errors import CaptureError

SEQS = [[11, 12, 13, 14, 15], [21, 22], [31, 32, 33]]


def test_describe_position():
    assert describe_position("last") == "last" and describe_position(-2) == "-2"
    assert describe_position("mean") == "mean" and describe_position("mean", 3) == "mean(from=3)"
    assert describe_position([[0, (1, 3)]]) == "explicit"


def test_readouts_for_item_normalise_indices_and_spans():
    assert readouts_for_item("last", 0, 5, 0) == [4]
    assert readouts_for_item("mean", 0, 5, 2) == [(2, 5)]
    assert readouts_for_item(-2, 0, 5, 0) == [3]
    assert readouts_for_item([[9], [0, -1, (1, 3), [2, 5]]], 1, 5, 0) == [0, 4, (1, 3), (2, 5)]


@pytest.mark.parametrize(("position", "item", "match"), [
    ("first", 0, "unknown position 'first'; use 'last', 'mean', an int or a list"),
    (5, 0, r"item 0: position 5 is outside its 5 tokens"),
    (-6, 0, r"item 0: position -6 is outside its 5 tokens"),
    ([[0], [(3, 3)]], 1, r"item 1: span \(3, 3\) is not inside its 5 tokens"),
    ([[0], [(2, 6)]], 1, r"item 1: span \(2, 6\) is not inside its 5 tokens"),
    ([[0], []], 1, "item 1: no read-out positions given"),
])
def test_bad_read_outs_name_the_item_and_the_problem(position, item, match):
    with pytest.raises(CaptureError, match=match):
        readouts_for_item(position, item, 5, 0)


def test_mean_from_beyond_the_item_is_an_error():
    with pytest.raises(CaptureError, match="item 2: mean_from=4 but the item has only 4 tokens"):
        readouts_for_item("mean", 2, 4, 4)


def _hidden(ids: torch.Tensor) -> torch.Tensor:
    """``[B, T, 2]`` whose vector at a real token is (token id, 10 x token id)."""
    return torch.stack([ids.float(), 10 * ids.float()], -1)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_read_outs_equal_the_unpadded_ones(side):
    spec = [[0, -1, (1, 4)], [-1, (0, 2)], [1]]
    readouts = [readouts_for_item(spec, i, len(s), 0) for i, s in enumerate(SEQS)]
    ids, mask = pad_batch(SEQS, 0, side)
    plan = batch_readout(mask, readouts)
    got = plan.reduce(_hidden(ids))
    expected = [[11, 110], [15, 150], [13, 130],  # item 0: first, last, mean of 12..14
                [22, 220], [21.5, 215],  # item 1: last, mean of both
                [32, 320]]  # item 2: its second token
    torch.testing.assert_close(got, torch.tensor(expected), rtol=0, atol=1e-6)
    assert plan.row_items == [0, 0, 0, 1, 1, 2]
    unpadded = torch.cat([batch_readout(torch.ones(1, len(s), dtype=torch.long), [r]).reduce(
        _hidden(torch.tensor([s]))) for s, r in zip(SEQS, readouts, strict=True)])
    torch.testing.assert_close(got, unpadded, rtol=0, atol=0)


def test_padded_positions_never_reach_the_result():
    """Only the needed tokens are gathered: NaN or huge values at padding change nothing."""
    ids, mask = pad_batch(SEQS, 0, "left")
    hidden = _hidden(ids)
    hidden[mask == 0] = float("nan")
    plan = batch_readout(mask, [[(0, 5)], [(0, 2)], [(0, 3)]])
    got = plan.reduce(hidden)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[:, 0], torch.tensor([13.0, 21.5, 32.0]))
    assert plan.token_rows.tolist() == sorted(set(plan.token_rows.tolist()))  # each token once
    assert len(plan.token_rows) == int(mask.sum())
