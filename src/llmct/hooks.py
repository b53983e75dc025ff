"""Hook registration as a context manager that always removes its hooks (even on exceptions)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


def first_tensor(output) -> torch.Tensor:
    """The hidden-state tensor of a module output (modules return a tensor or a tuple)."""
    return output[0] if isinstance(output, tuple | list) else output


def replace_first(output, new: torch.Tensor):
    """``output`` with its hidden-state tensor replaced (keeps tuple structure)."""
    if isinstance(output, tuple):
        return (new, *output[1:])
    if isinstance(output, list):
        return [new, *output[1:]]
    return new


class Hooks:
    """Collects forward (pre-)hooks; ``with Hooks() as h: h.forward(m, fn)``; removed on exit."""

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def forward(self, module: nn.Module, fn: Callable) -> None:
        self._handles.append(module.register_forward_hook(fn))

    def pre(self, module: nn.Module, fn: Callable) -> None:
        """Pre-hook ``fn(module, args, kwargs)`` (kwargs-aware: blocks may be called either way)."""
        self._handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def block_input(args, kwargs) -> torch.Tensor:
    """The residual stream entering a block, whether passed positionally or by keyword."""
    if args:
        return args[0]
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"]
    raise RuntimeError("block called without hidden_states; cannot read hidden_in")


def count_hooks(model: nn.Module) -> int:
    """Number of forward hooks registered anywhere in ``model`` (used to prove cleanup)."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()
    )
