"""Causal interventions: overwrite (patch) or ablate one source at one layer, and read the answer.

``patch`` and ``ablate`` are context managers whose hooks are removed on exit, even when the
forward raises. A source is what a block writes: ``hidden_out`` (the block output -- replacing it
changes everything downstream, because the next block reads it), ``attn_out`` or ``mlp_out``
(what attention / the MLP adds to the residual, via the architecture adapter). Positions are
token indices into each item's *unpadded* tokens (negative counts from the end, ``"last"``, or
``"all"`` real tokens) and are mapped through the attention mask of the forward in flight, so
left- and right-padded batches edit exactly the tokens an unbatched run edits.

Reading the effect: :func:`readout_logits` runs batched forwards under a per-batch intervention
and returns next-token logits at each item's read-out; :class:`PrefixCache` stores the key/value
cache of every token but the last, so an intervention *at the read-out token* costs one token of
compute per item (the earlier tokens cannot see the last one, so their keys and values are
unchanged). :class:`AnswerWords` maps an answer token to an emotion
(``stimuli/emotion_words.json``) and sums probability mass per emotion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from .arch import SitePoint, canonical_site, get_adapter
from .capture import resolve_layers
from .errors import CaptureError
from .hooks import Hooks
from .positions import batch_readout, readouts_for_item
from .runner import (
    Tokenizer,
    cache_is_croppable,
    fresh_cache,
    model_device,
    pad_batch,
    pad_id,
    prepare,
)
from .runner import forward as run_forward

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

INTERVENABLE = ("hidden_out", "attn_out", "mlp_out")
ABLATIONS = ("zero", "mean", "noise")

#: ``positions``: "last", "all" (every real token), one int for every item, or one list of ints
#: per item (unpadded coordinates; negative counts from the end).
Positions = str | int | Sequence[Sequence[int]]
#: A per-batch intervention: called with the batch's item indices (in row order), returns a
#: context manager (e.g. ``patch(...)``) or None.
Intervention = Callable[[list[int]], object] | None


def site_point(model: PreTrainedModel, source: str, layer: int) -> SitePoint:
    """Where an intervenable ``source`` (or its alias) lives at ``layer`` (negative counts from
    the end), from the architecture adapter's one site mapping."""
    if canonical_site(source) not in INTERVENABLE:
        raise CaptureError(f"cannot intervene on {source!r}; choose from {INTERVENABLE}")
    adapter = get_adapter(model)
    n = adapter.n_layers(model)
    return adapter.site(model, source, resolve_layers(int(layer), n)[0])


def site_module(model: PreTrainedModel, source: str, layer: int) -> torch.nn.Module:
    """The module whose (first) output *is* ``source`` at ``layer`` (negative counts from the end)."""
    return site_point(model, source, layer).module


def _mask_from_call(args, kwargs) -> torch.Tensor | None:
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
        mask = args[1]
    return mask


def _columns(mask: torch.Tensor | None, n_rows: int, n_cols: int, positions: Positions
             ) -> list[torch.Tensor]:
    """Per batch row, the columns of the hidden tensor ``[B, n_cols, D]`` to edit.

    ``mask`` is the forward's attention mask; with a KV cache it is wider than the hidden tensor
    (the current tokens are its last ``n_cols`` columns)."""
    if mask is None:
        mask = torch.ones(n_rows, n_cols, dtype=torch.long)
    mask = mask.detach().cpu()
    if mask.dim() != 2 or mask.shape[0] != n_rows:
        raise CaptureError(f"attention mask of shape {tuple(mask.shape)} does not match a batch "
                           f"of {n_rows}; pass a 2-D [batch, tokens] mask")
    offset = mask.shape[1] - n_cols
    out = []
    for b in range(n_rows):
        valid = torch.nonzero(mask[b], as_tuple=False).flatten()
        if isinstance(positions, str) and positions == "all":
            if offset > 0:
                raise CaptureError("positions='all' with a KV cache: the cached tokens were "
                                   "computed without this intervention; run full forwards")
            cols = valid
        else:
            idx = readouts_for_item(positions, b, len(valid), 0)
            if any(isinstance(i, tuple) for i in idx):
                raise CaptureError("interventions take token indices, not (start, end) spans")
            cols = valid[torch.tensor(idx, dtype=torch.long)]
        cols = cols - offset
        if (cols < 0).any():
            raise CaptureError(f"item {b}: an edited position lies in the cached prefix; only the "
                               "tokens of this forward can be edited")
        out.append(cols)
    return out


@contextmanager
def edit(model: PreTrainedModel, source: str, layer: int, positions: Positions,
         fn: Callable[[torch.Tensor, list[int]], torch.Tensor]):
    """Replace ``source`` at ``layer`` at ``positions`` by ``fn(old_rows [n, D], row_counts)``,
    where ``row_counts[b]`` is the number of edited tokens of batch row ``b`` (rows in order).

    The generic mechanism behind :func:`patch` and :func:`ablate`; hooks removed on exit."""
    point = site_point(model, source, layer)
    state: dict = {}

    def remember_mask(_m, args, kwargs):
        state["mask"] = _mask_from_call(args, kwargs)

    def hook(hidden: torch.Tensor) -> torch.Tensor:
        cols = _columns(state.get("mask"), hidden.shape[0], hidden.shape[1], positions)
        rows = torch.cat([torch.full((len(c),), b, dtype=torch.long) for b, c in enumerate(cols)])
        rows, cols_t = rows.to(hidden.device), torch.cat(cols).to(hidden.device)
        new = hidden.clone()
        values = fn(hidden[rows, cols_t], [len(c) for c in cols])
        new[rows, cols_t] = values.to(device=new.device, dtype=new.dtype)
        return new

    with Hooks() as hooks:
        hooks.pre(model.base_model, remember_mask)
        hooks.edit(point, hook)
        yield


def _as_tensor(x) -> torch.Tensor:
    return x.detach().float().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(
        np.asarray(x, dtype=np.float32))


@contextmanager
def patch(model: PreTrainedModel, source: str, layer: int, values,
          positions: Positions = "last"):
    """Overwrite ``source`` at ``layer`` with given vectors at each item's ``positions``.

    ``values``: one vector ``[D]`` for every edited token; ``[B, D]`` (one edited token per
    item); ``[B, P, D]``; or a list of ``B`` arrays ``[P_b, D]`` (or ``[D]``), one per item.
    """
    if isinstance(values, list | tuple):
        per_item = [_as_tensor(v).reshape(-1, _as_tensor(v).shape[-1]) for v in values]
        flat = None
    else:
        arr = _as_tensor(values)
        if arr.dim() == 1:
            per_item, flat = None, arr
        elif arr.dim() in (2, 3):
            per_item, flat = [a.reshape(-1, arr.shape[-1]) for a in arr], None
        else:
            raise CaptureError(f"patch values must be [D], [B, D] or [B, P, D], got {tuple(arr.shape)}")

    def fn(old: torch.Tensor, counts: list[int]) -> torch.Tensor:
        if flat is not None:
            return flat.to(old.device).expand(old.shape[0], -1)
        items = cast(list[torch.Tensor], per_item)  # set whenever flat is None
        if len(items) != len(counts):
            raise CaptureError(f"patch has values for {len(items)} items but the batch has "
                               f"{len(counts)}")
        for b, (v, n) in enumerate(zip(items, counts, strict=True)):
            if v.shape[0] != n:
                raise CaptureError(f"item {b}: {v.shape[0]} patch vectors for {n} positions")
        return torch.cat(items).to(old.device)

    with edit(model, source, layer, positions, fn):
        yield


@contextmanager
def ablate(model: PreTrainedModel, source: str, layer: int, mode: str = "zero",
           positions: Positions = "last", mean_vector=None, seed: int = 0):
    """Ablate ``source`` at ``layer``: ``zero``; ``mean`` (replace by ``mean_vector`` [D]); or
    ``noise`` (Gaussian direction with the same L2 norm as each ablated vector; seeded, one fresh
    draw per edited token and forward)."""
    if mode not in ABLATIONS:
        raise CaptureError(f"unknown ablation mode {mode!r}; choose from {ABLATIONS}")
    if mode == "mean" and mean_vector is None:
        raise CaptureError("mode='mean' needs mean_vector (e.g. the mean activation over stimuli)")
    mean = None if mean_vector is None else _as_tensor(mean_vector).flatten()
    gen = torch.Generator().manual_seed(int(seed))

    def fn(old: torch.Tensor, _counts: list[int]) -> torch.Tensor:
        if mode == "zero":
            return torch.zeros_like(old)
        if mode == "mean":  # mean_vector was checked above
            return cast(torch.Tensor, mean).to(old.device).expand(old.shape[0], -1)
        noise = torch.randn(old.shape, generator=gen, dtype=torch.float32)
        norm = old.float().norm(dim=-1, keepdim=True).cpu()
        return (noise / noise.norm(dim=-1, keepdim=True) * norm).to(old.device)

    with edit(model, source, layer, positions, fn):
        yield


def spaced_layers(n_layers: int, k: int = 8) -> list[int]:
    """``k`` evenly spaced layers from the first to the last (the depths intervened at)."""
    return sorted({int(round(x)) for x in np.linspace(0, n_layers - 1, min(k, n_layers))})


def random_like_norm(vectors, seed: int = 0) -> np.ndarray:
    """Random Gaussian directions with the L2 norms of ``vectors [..., D]`` (a patch control)."""
    v = np.asarray(vectors, dtype=np.float32)
    g = np.random.default_rng(seed).standard_normal(v.shape).astype(np.float32)
    return g / np.linalg.norm(g, axis=-1, keepdims=True) * np.linalg.norm(v, axis=-1, keepdims=True)


# -- running forwards under an intervention ------------------------------------------------------

@dataclass
class Readout:
    """Next-token logits at each item's read-out (``[N, V]`` float32, CPU) and, for the layers
    asked for, the block output at the read-out after all interventions (``hidden[l]`` [N, D])."""

    logits: torch.Tensor
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)


def _enter(intervention: Intervention, items: list[int]):
    ctx = intervention(items) if intervention is not None else None
    return ctx if ctx is not None else nullcontext()


def readout_logits(model: PreTrainedModel, tokenizer: Tokenizer | None, inputs: Sequence,
                   intervention: Intervention = None, *,
                   position: str | int | Sequence[Sequence[int]] = "last", batch_size: int = 8,
                   padding_side: str | None = None, hidden_layers: Sequence[int] = (),
                   add_special_tokens: bool = True) -> Readout:
    """Batched full forwards of ``inputs`` under ``intervention(items)`` (items in row order);
    next-token logits at each item's read-out (one token index per item, mapped via the mask)."""
    token_ids = prepare(model, tokenizer, inputs, add_special_tokens)
    readouts = [readouts_for_item(position, i, len(t), 0) for i, t in enumerate(token_ids)]
    if any(len(r) != 1 or isinstance(r[0], tuple) for r in readouts):
        raise CaptureError("readout_logits reads one token per item")
    side = padding_side or getattr(tokenizer, "padding_side", None) or "right"
    adapter = get_adapter(model)
    n_layers = adapter.n_layers(model)
    layers = resolve_layers(list(hidden_layers), n_layers) if len(hidden_layers) else []
    pad, device = pad_id(tokenizer, model), model_device(model)
    logits: list[torch.Tensor | None] = [None] * len(token_ids)
    hidden: dict[int, list[torch.Tensor | None]] = {la: [None] * len(token_ids) for la in layers}
    for start in range(0, len(token_ids), batch_size):
        items = list(range(start, min(start + batch_size, len(token_ids))))
        ids, mask = pad_batch([token_ids[i] for i in items], pad, side)
        plan = batch_readout(mask, [readouts[i] for i in items]).to(device)
        got: dict[int, torch.Tensor] = {}
        with Hooks() as hooks, _enter(intervention, items), torch.inference_mode():
            for la in layers:  # readers run after every edit of the same site
                def keep(h: torch.Tensor, la: int = la, got: dict = got, plan=plan) -> None:
                    got[la] = plan.reduce(h).cpu()
                hooks.read(adapter.site(model, "hidden_out", la), keep)
            out = run_forward(model, ids.to(device), mask.to(device))
        batch_logits = plan.reduce(out.logits).cpu()
        for r, i in enumerate(items):
            logits[i] = batch_logits[r]
            for la in layers:
                hidden[la][i] = got[la][r]
    # every slot was filled by its batch
    return Readout(torch.stack(cast(list[torch.Tensor], logits)),
                   {la: torch.stack(cast(list[torch.Tensor], v)) for la, v in hidden.items()})


class PrefixCache:
    """Key/value caches of every input's tokens but the last, for interventions at the read-out.

    ``run(intervention)`` re-runs only each item's final token against its cached prefix and
    returns a :class:`Readout` at that token -- the same numbers as a full forward (to float
    tolerance) for any intervention confined to the last token, at a fraction of the cost.
    Batches are left-padded (the last token is the last column); ``intervention`` receives the
    batch's row indices and may use positions "last" / -1 only.

    The stored prefix is never changed by a run: a cache whose every layer keeps all its past
    states is extended and cropped back; any other cache (sliding-window or hybrid layers, as in
    Mistral or Gemma 3, whose rotating layers cannot be rolled back) is copied for each run and
    the copy extended. ``copy_cache=True`` forces copying.

    ``copies``: each prefix is computed once and its cache repeated, so that one forward can run
    ``copies`` different interventions per item (the fixed cost of a forward is paid once).
    Rows are then *virtual*: row ``c * n + i`` is copy ``c`` of item ``i``; ``run`` returns
    ``copies * n`` logits in that order and passes virtual row indices to ``intervention``.
    Raises CaptureError for inputs shorter than 2 tokens or ids outside the vocabulary.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: Tokenizer | None, inputs: Sequence, *,
                 batch_size: int = 8, copies: int = 1, add_special_tokens: bool = True,
                 copy_cache: bool = False) -> None:
        self.model = model
        self.token_ids = prepare(model, tokenizer, inputs, add_special_tokens)
        if any(len(t) < 2 for t in self.token_ids):
            raise CaptureError("PrefixCache needs inputs of at least 2 tokens")
        if copies < 1:
            raise CaptureError(f"copies must be >= 1, got {copies}")
        self.copies = int(copies)
        self.copy_cache = bool(copy_cache)
        self.pad, self.device = pad_id(tokenizer, model), model_device(model)
        self.adapter = get_adapter(model)
        self.blocks = self.adapter.block_list(model)
        order = sorted(range(len(self.token_ids)), key=lambda i: -len(self.token_ids[i]))
        self.batches = [order[k: k + batch_size] for k in range(0, len(order), batch_size)]
        self._state: list[dict | None] = [None] * len(self.batches)
        for k in range(len(self.batches)):
            self._build(k)

    def __len__(self) -> int:
        return len(self.token_ids) * self.copies

    def _build(self, k: int) -> None:
        items = self.batches[k]
        ids, mask = pad_batch([self.token_ids[i] for i in items], self.pad, "left")
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.inference_mode():
            out = run_forward(self.model, ids[:, :-1], mask[:, :-1], logits=False, use_cache=True)
        cache = out.past_key_values
        if cache is None:
            raise CaptureError(f"{type(self.model).__name__} returned no KV cache")
        c = self.copies
        if c > 1:  # row r of the repeated batch is copy r % c of item r // c
            cache.batch_repeat_interleave(c)
            ids, mask = (t.repeat_interleave(c, dim=0) for t in (ids, mask))
        rows = [cp * len(self.token_ids) + i for i in items for cp in range(c)]
        self._state[k] = {"ids": ids, "mask": mask, "cache": cache, "rows": rows,
                          "length": ids.shape[1] - 1,
                          "crop": cache_is_croppable(cache) and not self.copy_cache}

    def _last_token(self, st: dict, cache):
        return run_forward(self.model, st["ids"][:, -1:], st["mask"], past_key_values=cache,
                           use_cache=True)

    def run(self, intervention: Intervention = None, *, hidden_layers: Sequence[int] = ()
            ) -> Readout:
        """Logits (and block outputs at ``hidden_layers``) at every row's last token under
        ``intervention(rows)``; the cached prefixes are left as they were."""
        layers = resolve_layers(list(hidden_layers), len(self.blocks)) if len(hidden_layers) else []
        n = len(self)
        logits: list[torch.Tensor | None] = [None] * n
        hidden: dict[int, list[torch.Tensor | None]] = {la: [None] * n for la in layers}
        for k in range(len(self.batches)):
            st = cast(dict, self._state[k])  # every batch is built in __init__
            items = st["rows"]
            got: dict[int, torch.Tensor] = {}
            cache = st["cache"] if st["crop"] else fresh_cache(st["cache"])
            ok = False
            try:
                with Hooks() as hooks, _enter(intervention, items), torch.inference_mode():
                    for la in layers:
                        def keep(h: torch.Tensor, la: int = la, got: dict = got) -> None:
                            got[la] = h[:, -1].float().cpu()
                        hooks.read(self.adapter.site(self.model, "hidden_out", la), keep)
                    out = self._last_token(st, cache)
                ok = True
            finally:
                if st["crop"]:
                    if ok:
                        st["cache"].crop(-1)
                    if not ok or st["cache"].get_seq_length() != st["length"]:
                        self._build(k)  # a failed or unexpected forward left the cache unknown
            batch_logits = out.logits[:, -1].float().cpu()
            for r, i in enumerate(items):
                logits[i] = batch_logits[r]
                for la in layers:
                    hidden[la][i] = got[la][r]
        # every slot was filled by its batch
        return Readout(torch.stack(cast(list[torch.Tensor], logits)),
                       {la: torch.stack(cast(list[torch.Tensor], v)) for la, v in hidden.items()})


# -- scoring the answer ---------------------------------------------------------------------------

def default_words_path() -> Path:
    from .stimuli import STIMULI_DIR

    return STIMULI_DIR / "emotion_words.json"


@dataclass
class AnswerWords:
    """Answer words per emotion and the rule that maps an answer token to an emotion.

    A token matches an emotion when its stripped, lower-cased text has >= ``min_prefix``
    characters and is a prefix of one of that emotion's words; a token matching several emotions
    is ambiguous and maps to none. :meth:`bind` precomputes, per emotion, the first tokens of its
    words (in ``forms``) that match it unambiguously: the tokens whose probability is its mass.
    """

    words: dict[str, tuple[str, ...]]
    min_prefix: int = 3
    forms: tuple[str, ...] = (" {word}", " {Word}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> AnswerWords:
        path = Path(path) if path else default_words_path()
        doc = json.loads(path.read_text(encoding="utf-8"))
        words = {e: tuple(w.strip().lower() for w in ws) for e, ws in doc["words"].items()}
        empty = [e for e, ws in words.items() if not ws]
        if empty:
            raise ValueError(f"{path}: no answer words for {empty}")
        return cls(words, int(doc.get("min_prefix", 3)), tuple(doc.get("forms", cls.forms)))

    @property
    def emotions(self) -> list[str]:
        return list(self.words)

    def matches(self, text: str) -> set[str]:
        t = text.strip().lower()
        if len(t) < self.min_prefix:
            return set()
        return {e for e, ws in self.words.items() if any(w.startswith(t) for w in ws)}

    def classify(self, text: str) -> str | None:
        """The emotion a token names, or None (no match, or ambiguous)."""
        found = self.matches(text)
        return next(iter(found)) if len(found) == 1 else None

    def bind(self, tokenizer: PreTrainedTokenizerBase) -> AnswerScorer:
        ids: dict[str, set[int]] = {e: set() for e in self.words}
        for e, ws in self.words.items():
            for w in ws:
                for form in self.forms:
                    toks = tokenizer(form.format(word=w, Word=w.capitalize()),
                                     add_special_tokens=False)["input_ids"]
                    # decode() of one id list is a str (annotated str | list[str], for batches)
                    if toks and self.classify(cast(str, tokenizer.decode([toks[0]]))) == e:
                        ids[e].add(int(toks[0]))
        missing = [e for e, s in ids.items() if not s]
        if missing:
            raise ValueError(f"no word of {missing} has a first token that names the emotion")
        return AnswerScorer(self, tokenizer, {e: sorted(s) for e, s in ids.items()})


@dataclass
class AnswerScorer:
    """:class:`AnswerWords` bound to a tokenizer: greedy answers and per-emotion mass of logits."""

    words: AnswerWords
    tokenizer: PreTrainedTokenizerBase
    mass_ids: dict[str, list[int]]
    _cache: dict[int, str | None] = field(default_factory=dict)

    @property
    def emotions(self) -> list[str]:
        return self.words.emotions

    def token_emotion(self, token_id: int) -> str | None:
        if token_id not in self._cache:
            text = cast(str, self.tokenizer.decode([int(token_id)]))  # one id list: a str
            self._cache[token_id] = self.words.classify(text)
        return self._cache[token_id]

    def greedy(self, logits: torch.Tensor) -> np.ndarray:
        return torch.as_tensor(logits).argmax(-1).cpu().numpy()

    def answers(self, logits: torch.Tensor) -> list[str | None]:
        """The emotion named by each row's greedy next token (None: no / ambiguous match)."""
        return [self.token_emotion(int(t)) for t in self.greedy(logits)]

    def mass(self, logits: torch.Tensor) -> np.ndarray:
        """``[N, n_emotions]``: softmax probability on each emotion's first tokens."""
        p = torch.softmax(torch.as_tensor(logits).float(), dim=-1)
        return torch.stack([p[:, self.mass_ids[e]].sum(-1) for e in self.emotions], 1).numpy()


__all__ = [
    "ABLATIONS",
    "INTERVENABLE",
    "AnswerScorer",
    "AnswerWords",
    "PrefixCache",
    "Readout",
    "ablate",
    "edit",
    "patch",
    "random_like_norm",
    "readout_logits",
    "site_module",
    "spaced_layers",
]
