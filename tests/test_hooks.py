"""llmct.core.hooks: one ordered registry per module -- editors before readers whatever the order
the contexts were entered, editors composed in entry order, pre-hooks for positional and keyword
block calls, and every hook removed on exit, also after an exception."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from llmct.core.arch import SitePoint
from llmct.core.hooks import (
    Hooks,
    block_input,
    count_hooks,
    first_tensor,
    has_llmct_hooks,
    replace_block_input,
    replace_first,
)


class Block(nn.Module):
    """A block called like a transformer block: the residual positionally or as a keyword."""

    def forward(self, hidden_states, scale=1.0):
        return (hidden_states * scale + 1, "extra")


def test_hook_registry_orders_editors_before_readers():
    """The registry itself: readers see every edit of their site whatever the entry order;
    editors compose in entry order; a reader that returns a value is an error; all removed."""
    lin = torch.nn.Linear(2, 2)
    seen = []
    with Hooks() as outer:
        outer.forward(lin, lambda m, a, o: seen.append(o.clone()))
        with Hooks() as inner:
            inner.forward(lin, lambda m, a, o: o * 0 + 1, edits=True)
            inner.forward(lin, lambda m, a, o: o * 3, edits=True)
            out = lin(torch.zeros(1, 2))
        assert torch.equal(out, torch.full((1, 2), 3.0)) and torch.equal(seen[-1], out)
        lin(torch.zeros(1, 2))  # editors gone: the reader sees the plain output again
        assert torch.equal(seen[-1], lin.bias.detach().reshape(1, 2))
        with Hooks() as bad:
            bad.forward(lin, lambda m, a, o: o)
            with pytest.raises(RuntimeError, match="edits=True"):
                lin(torch.zeros(1, 2))
    assert count_hooks(lin) == 0


def test_hooks_are_removed_after_an_exception():
    lin = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="boom"), Hooks() as hooks:
        hooks.forward(lin, lambda m, a, o: None)
        hooks.pre(lin, lambda m, a, k: None)
        hooks.forward(lin, lambda m, a, o: o, edits=True)
        assert count_hooks(lin) == 2  # one dispatcher per (module, kind), whatever the callbacks
        raise RuntimeError("boom")
    assert count_hooks(lin) == 0 and not lin._forward_hooks and not lin._forward_pre_hooks


def test_hooks_raising_inside_the_forward_are_removed_too():
    lin = torch.nn.Linear(2, 2)

    def fail(m, a, o):
        raise ValueError("inside the forward")

    with pytest.raises(ValueError, match="inside the forward"), Hooks() as hooks:
        hooks.forward(lin, fail)
        lin(torch.zeros(1, 2))
    assert count_hooks(lin) == 0
    assert torch.equal(lin(torch.zeros(1, 2)), lin.bias.detach()[None])  # nothing left behind


def test_leaving_an_inner_context_keeps_the_outer_hooks():
    lin = torch.nn.Linear(2, 2)
    seen = []
    with Hooks() as outer:
        outer.forward(lin, lambda m, a, o: seen.append("outer"))
        with Hooks() as inner:
            inner.forward(lin, lambda m, a, o: seen.append("inner"))
            lin(torch.zeros(1, 2))
        lin(torch.zeros(1, 2))
        assert count_hooks(lin) == 1
    assert seen == ["outer", "inner", "outer"] and count_hooks(lin) == 0


@pytest.mark.parametrize("call", ["positional", "keyword"])
def test_site_edit_of_a_block_input_before_a_reader_entered_first(call):
    """A ``pre`` site (a block's hidden_in): the reader registered first still sees the edit, and
    the block computes on the edited input, whether the residual comes positionally or by name."""
    block = Block()
    point = SitePoint(block, "pre", "block")
    x = torch.tensor([[1.0, 2.0]])
    seen = []
    with Hooks() as reader:
        reader.read(point, seen.append)
        with Hooks() as editor:
            editor.edit(point, lambda h: h * 10)
            out = block(x, scale=2.0) if call == "positional" else block(hidden_states=x, scale=2.0)
    assert torch.equal(seen[0], x * 10)
    assert torch.equal(out[0], x * 10 * 2 + 1) and out[1] == "extra"  # the tuple is kept
    assert count_hooks(block) == 0


def test_site_edit_of_a_block_output_keeps_the_rest_of_the_tuple():
    block = Block()
    point = SitePoint(block, "out", "block")
    seen = []
    with Hooks() as hooks:
        hooks.edit(point, lambda h: -h)
        hooks.read(point, seen.append)
        out = block(torch.ones(1, 2))
    assert torch.equal(out[0], torch.full((1, 2), -2.0)) and out[1] == "extra"
    assert torch.equal(seen[0], out[0])


def test_a_reading_pre_hook_that_returns_a_value_is_an_error():
    block = Block()
    with Hooks() as hooks:
        hooks.pre(block, lambda m, a, k: (a, k))
        with pytest.raises(RuntimeError, match="reading pre-hook returned a value.*edits=True"):
            block(torch.ones(1, 2))
    assert count_hooks(block) == 0


def test_output_and_input_helpers():
    t, u = torch.zeros(1), torch.ones(1)
    assert first_tensor((t, "a")) is t and first_tensor([t]) is t and first_tensor(t) is t
    assert replace_first((t, "a"), u) == (u, "a")
    assert replace_first([t, "a"], u) == [u, "a"] and replace_first(t, u) is u
    assert block_input((t,), {}) is t and block_input((), {"hidden_states": u}) is u
    with pytest.raises(RuntimeError, match="without hidden_states"):
        block_input((), {"mask": t})
    assert replace_block_input((t, 3), {"k": 1}, u) == ((u, 3), {"k": 1})
    assert replace_block_input((), {"hidden_states": t, "k": 1}, u) == (
        (), {"hidden_states": u, "k": 1})


def test_has_llmct_hooks_counts_only_hooks_of_the_registry():
    outer = nn.Sequential(Block(), Block())
    handle = outer[1].register_forward_hook(lambda m, a, o: None)  # someone else's hook
    assert not has_llmct_hooks(outer)
    with Hooks() as hooks:
        hooks.forward(outer[1], lambda m, a, o: None)
        assert has_llmct_hooks(outer) and has_llmct_hooks(outer[1])
        assert not has_llmct_hooks(outer[0])
    assert not has_llmct_hooks(outer)
    handle.remove()
