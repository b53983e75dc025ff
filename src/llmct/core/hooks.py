"""One ordered hook registry: editing hooks run before reading hooks on the same site.

Every llmct hook (capture, patching, ablation, steering, the monitor, read-outs) goes through
:class:`Hooks`, a context manager that always removes its hooks (even on exceptions). Per module
and hook kind there is a single torch hook, a dispatcher that runs every *editing* callback first
(in the order they were entered, each seeing the previous one's result) and then every *reading*
callback on the final value. So a reader sees the edited value whatever the nesting of the
contexts that registered them: an ``EmotionMonitor`` entered outside ``steer(...)`` reads the
steered residual, exactly as one entered inside it (issue #13 item 5; the same design as
TransformerLens' hook points, where one HookPoint per site holds all hooks of that site,
github.com/TransformerLensOrg/TransformerLens).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable

import torch
import torch.nn as nn

_COUNTER = itertools.count()


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


def block_input(args, kwargs) -> torch.Tensor:
    """The residual stream entering a block, whether passed positionally or by keyword."""
    if args:
        return args[0]
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"]
    raise RuntimeError("block called without hidden_states; cannot read hidden_in")


def replace_block_input(args, kwargs, new: torch.Tensor) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of a block call with the residual stream replaced by ``new``."""
    if args:
        return (new, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": new}


class _Dispatch:
    """The single torch hook of one (module, kind): editors in entry order, then readers."""

    def __init__(self, module: nn.Module, kind: str) -> None:
        self.kind = kind
        self.editors: dict[int, Callable] = {}
        self.readers: dict[int, Callable] = {}
        if kind == "out":
            self.handle = module.register_forward_hook(self._run_out)
        else:
            self.handle = module.register_forward_pre_hook(self._run_pre, with_kwargs=True)

    def _run_out(self, module, args, output):
        changed = False
        for fn in list(self.editors.values()):
            new = fn(module, args, output)
            if new is not None:
                output, changed = new, True
        for fn in list(self.readers.values()):
            if fn(module, args, output) is not None:
                raise RuntimeError("a reading hook returned a value; register hooks that change "
                                   "the output with edits=True (llmct.core.hooks.Hooks)")
        return output if changed else None

    def _run_pre(self, module, args, kwargs):
        changed = False
        for fn in list(self.editors.values()):
            new = fn(module, args, kwargs)
            if new is not None:
                (args, kwargs), changed = new, True
        for fn in list(self.readers.values()):
            if fn(module, args, kwargs) is not None:
                raise RuntimeError("a reading pre-hook returned a value; register hooks that "
                                   "change the input with edits=True (llmct.core.hooks.Hooks)")
        return (args, kwargs) if changed else None

    def empty(self) -> bool:
        return not self.editors and not self.readers


# module -> {"out": _Dispatch, "pre": _Dispatch}; weak so that a deleted model leaves nothing
_REGISTRY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _dispatch(module: nn.Module, kind: str) -> _Dispatch:
    per_module = _REGISTRY.setdefault(module, {})
    if kind not in per_module:
        per_module[kind] = _Dispatch(module, kind)
    return per_module[kind]


class Hooks:
    """Collects hooks; ``with Hooks() as h: h.forward(m, fn)``; all removed on exit.

    ``forward(module, fn)``: ``fn(module, args, output)`` after ``module`` runs; ``pre(module,
    fn)``: ``fn(module, args, kwargs)`` before it (kwargs-aware: blocks may be called either way).
    With ``edits=True`` the callback may return a replacement (output, resp. ``(args, kwargs)``)
    and runs before every reading callback of that module, whenever either was registered.
    ``read(point, fn)`` / ``edit(point, fn)`` do the same for a :class:`llmct.core.arch.SitePoint`
    with the site's tensor (``fn(tensor)``, resp. ``fn(tensor) -> tensor``).
    """

    def __init__(self) -> None:
        self._entries: list[tuple[nn.Module, str, bool, int]] = []

    def _add(self, module: nn.Module, kind: str, fn: Callable, edits: bool) -> None:
        key = next(_COUNTER)
        d = _dispatch(module, kind)
        (d.editors if edits else d.readers)[key] = fn
        self._entries.append((module, kind, edits, key))

    def forward(self, module: nn.Module, fn: Callable, *, edits: bool = False) -> None:
        self._add(module, "out", fn, edits)

    def pre(self, module: nn.Module, fn: Callable, *, edits: bool = False) -> None:
        """Pre-hook ``fn(module, args, kwargs)``."""
        self._add(module, "pre", fn, edits)

    def read(self, point, fn: Callable[[torch.Tensor], None]) -> None:
        """Call ``fn(tensor)`` with the value of a site (after every edit of that site)."""
        if point.kind == "pre":
            self.pre(point.module, lambda m, a, k: fn(block_input(a, k)))
        else:
            self.forward(point.module, lambda m, a, o: fn(first_tensor(o)))

    def edit(self, point, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace the value of a site by ``fn(tensor)``."""
        if point.kind == "pre":
            self.pre(point.module,
                     lambda m, a, k: replace_block_input(a, k, fn(block_input(a, k))), edits=True)
        else:
            self.forward(point.module, lambda m, a, o: replace_first(o, fn(first_tensor(o))),
                         edits=True)

    def remove(self) -> None:
        while self._entries:
            module, kind, edits, key = self._entries.pop()
            per_module = _REGISTRY.get(module, {})
            d = per_module.get(kind)
            if d is None:
                continue
            (d.editors if edits else d.readers).pop(key, None)
            if d.empty():
                d.handle.remove()
                del per_module[kind]
                if not per_module:
                    _REGISTRY.pop(module, None)

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def has_llmct_hooks(module: nn.Module) -> bool:
    """Whether any module inside ``module`` (itself included) holds a hook registered through
    :class:`Hooks` (hooks that others installed, e.g. transformers' own output recorders, are
    not counted)."""
    return any(m in _REGISTRY for m in module.modules())


def count_hooks(model: nn.Module) -> int:
    """Number of forward hooks registered anywhere in ``model`` (used to prove cleanup)."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()
    )
