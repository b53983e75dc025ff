"""Pairwise preferences between activities, read from the answer-label logits, and their ratings.

For a pair (i, j) the model is asked, with its chat template, "Which would you rather do? (A) ...
(B) ... Answer with A or B." and the choice is the probability of the label tokens at the answer
position, P(A) / (P(A) + P(B)). Every pair is asked in both orders and the two answers averaged,
so a pure preference for one label cancels exactly. The soft outcomes are turned into ratings two
ways: sequential Elo (fixed K, averaged over random match orders, as in the source works) and
Bradley-Terry maximum likelihood (order-free); both on the Elo scale (400 log10 odds, mean 1500).
Uncertainty: a bootstrap over pairs, or (since pairs share activities) over activities resampled
within category, with the same resample for every condition so that differences between
conditions are paired.

Forwards are batched with shared prefixes: a prompt's tokens common to a batch (chat template,
question, option A) are run once and their KV cache reused; the rest is left-padded. Logits equal
independent forwards (tested); steering hooks (:mod:`llmct.core.steering`) apply unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from llmct.analysis.stats import bootstrap_indices, percentile_ci
from llmct.core.chat import render_chat
from llmct.core.runner import (
    check_token_ids,
    fresh_cache,
    model_device,
    pad_batch,
    sliding_window,
    vocab_size,
)
from llmct.core.runner import forward as run_forward
from llmct.errors import LLMCTError

PROMPT = "Which would you rather do?\n(A) {a}\n(B) {b}\nAnswer with A or B."
LABELS = ("A", "B")
ELO_SCALE = 400.0 / np.log(10.0)  # Elo points per natural-log odds unit
BASE_RATING = 1500.0


# --------------------------------------------------------------------------- asking the model


def preference_prompt_ids(tokenizer, a: str, b: str, template: str = PROMPT) -> list[int]:
    """Token ids of the chat prompt asking for a choice between ``a`` (A) and ``b`` (B)."""
    messages = [{"role": "user", "content": template.format(a=a, b=b)}]
    return render_chat(tokenizer, messages, add_generation_prompt=True).input_ids


def label_token_ids(tokenizer, labels: Sequence[str] = LABELS) -> list[list[int]]:
    """For each label, every single-token spelling of it ("A", " A"); an error if none exists
    or two labels share a token."""
    out = []
    for label in labels:
        ids = []
        for variant in (label, " " + label):
            toks = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(toks) == 1 and toks[0] not in ids:
                ids.append(toks[0])
        if not ids:
            raise LLMCTError(f"label {label!r} is not a single token in this tokenizer")
        out.append(ids)
    flat = [t for ids in out for t in ids]
    if len(set(flat)) != len(flat):
        raise LLMCTError(f"labels {labels} share token ids {out}")
    return out


def _prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the common prefix, leaving at least one token of every sequence to run."""
    n = min(len(s) for s in seqs) - 1
    first = seqs[0]
    for k in range(n):
        if any(s[k] != first[k] for s in seqs[1:]):
            return k
    return max(n, 0)


def _extend(model, cache, ids: Sequence[int], past_len: int):
    """Run ``ids`` (one sequence) after a cache of ``past_len`` tokens; returns the new cache."""
    device = model_device(model)
    x = torch.tensor([list(ids)], device=device)
    mask = torch.ones((1, past_len + len(ids)), dtype=torch.long, device=device)
    out = run_forward(model, x, mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.past_key_values


def _independent(model, batch: list[list[int]], pad_id: int) -> torch.Tensor:
    """Last-token logits of whole left-padded sequences, no shared cache (used where a
    sliding window makes a padding hole after a shared prefix inexact)."""
    device = model_device(model)
    ids, mask = pad_batch(batch, pad_id, "left")
    res = run_forward(model, ids.to(device), mask.to(device), logits_to_keep=1)
    return res.logits[:, -1].float().cpu()


#: rows of one group (e.g. one option A) that get batches of their own in :func:`last_token_logits`
MIN_GROUP = 4


def _by_copy(logits: torch.Tensor, copies: int, n: int) -> torch.Tensor:
    """``[copies, n, vocab]`` view of a forward's ``[copies * n, vocab]`` rows (copy-major)."""
    if logits.shape[0] != copies * n:
        raise LLMCTError(f"the forward returned {logits.shape[0]} rows for {copies} copies of "
                         f"{n} sequences")
    return logits.reshape(copies, n, -1)


def _plan_batches(groups: list, batch_size: int, min_group: int) -> list[list[int]]:
    """Row batches: a group of ``>= min_group`` rows gets batches of its own (they share a long
    prefix); smaller groups are packed together (fewer, fuller forwards)."""
    batches: list[list[int]] = []
    mixed: list[int] = []
    for g in dict.fromkeys(groups):
        rows = [i for i, h in enumerate(groups) if h == g]
        if len(rows) >= min_group:
            batches += [rows[k:k + batch_size] for k in range(0, len(rows), batch_size)]
            continue
        if len(mixed) + len(rows) > batch_size:
            batches.append(mixed)
            mixed = []
        mixed += rows
    return batches + ([mixed] if mixed else [])


def last_token_logits(model, seqs: Sequence[Sequence[int]], groups: Sequence | None = None, *,
                      batch_size: int = 32, min_group: int = MIN_GROUP, pad_id: int = 0,
                      progress: bool = False, copies: int = 1) -> torch.Tensor:
    """``[N, vocab]`` float32 next-token logits after each sequence, computed in batches that
    share prefixes; ``[copies, N, vocab]`` when ``copies > 1``, for forwards that return
    ``copies`` copies of their batch (copy-major, as inside
    :func:`llmct.core.steering.steer_copies` with ``copies`` conditions; LLMCTError otherwise).

    The prefix common to all sequences is run once. Sequences of one ``group`` with at least
    ``min_group`` members form their own batches, which extend that cache by their common prefix
    (e.g. the same option A), repeat it across the batch and run the left-padded remainders;
    smaller groups are packed into mixed batches. Equal to independent forwards up to float error.
    With sliding-window layers (Mistral, Gemma 2/3) a batch longer than the window is run as
    whole left-padded sequences instead: a padding hole after a shared prefix would shift the
    window. Raises LLMCTError for empty input, CaptureError for ids outside the vocabulary.
    """
    out = _copies_logits(model, seqs, groups, batch_size=batch_size, min_group=min_group,
                         pad_id=pad_id, progress=progress, copies=copies)
    return out if copies > 1 else out[0]


def _copies_logits(model, seqs: Sequence[Sequence[int]], groups: Sequence | None, *,
                   batch_size: int, min_group: int, pad_id: int, progress: bool,
                   copies: int) -> torch.Tensor:
    """:func:`last_token_logits`, always ``[copies, N, vocab]``."""
    seqs = [list(s) for s in seqs]
    if not seqs or min(len(s) for s in seqs) < 1:
        raise LLMCTError("need at least one non-empty sequence")
    groups = list(range(len(seqs))) if groups is None else list(groups)
    if len(groups) != len(seqs):
        raise LLMCTError(f"{len(groups)} groups for {len(seqs)} sequences")
    check_token_ids(seqs, vocab_size(model))
    device = model_device(model)
    batches = _plan_batches(groups, batch_size, min_group)
    out = torch.empty((copies, len(seqs), model.get_output_embeddings().weight.shape[0]))
    window = sliding_window(model)
    with torch.inference_mode():
        shared = _prefix_len(seqs)
        root = _extend(model, None, seqs[0][:shared], 0) if shared else None
        for rows in tqdm(batches, desc="preferences", disable=not progress, unit="batch"):
            batch = [seqs[i] for i in rows]
            common = max(_prefix_len(batch), shared) if len(batch) > 1 else shared
            if window and max(len(s) for s in batch) > window - 1:
                out[:, rows] = _by_copy(_independent(model, batch, pad_id), copies, len(rows))
                continue
            cache = fresh_cache(root)  # forwards append to a cache in place
            if common > shared:
                cache = _extend(model, cache, batch[0][shared:common], shared)
            if cache is not None and len(batch) > 1:
                cache.batch_repeat_interleave(len(batch))
            ids, mask = pad_batch([s[common:] for s in batch], pad_id, "left")
            full = torch.cat([torch.ones((len(batch), common), dtype=torch.long), mask], dim=1)
            res = run_forward(model, ids.to(device), full.to(device), past_key_values=cache,
                              use_cache=cache is not None, logits_to_keep=1)
            out[:, rows] = _by_copy(res.logits[:, -1].float().cpu(), copies, len(rows))
    return out


@dataclass
class Choices:
    """The model's answers for ``pairs`` [P, 2] of item indices.

    ``p_a[:, 0]``: P(A) when ``pairs[:, 0]`` is option A; ``p_a[:, 1]``: P(A) when the order is
    swapped (``pairs[:, 1]`` is A). ``mass``: total probability on the two labels (format check).
    """

    pairs: np.ndarray
    p_a: np.ndarray
    mass: np.ndarray

    @property
    def scores(self) -> np.ndarray:
        """Probability that ``pairs[:, 0]`` is chosen, averaged over both orders (bias-free)."""
        return combine_orders(self.p_a[:, 0], self.p_a[:, 1])

    @property
    def position_bias(self) -> float:
        """Mean P(A) - 0.5 over all prompts: the preference for the first-listed option."""
        return float(self.p_a.mean() - 0.5)

    def frame(self, items: Sequence[str] | None = None) -> pd.DataFrame:
        names = np.asarray(items, dtype=object) if items is not None else None
        df = pd.DataFrame({"i": self.pairs[:, 0], "j": self.pairs[:, 1],
                           "p_a_ij": self.p_a[:, 0], "p_a_ji": self.p_a[:, 1],
                           "mass_ij": self.mass[:, 0], "mass_ji": self.mass[:, 1],
                           "p_i": self.scores})
        if names is not None:
            df.insert(2, "item_i", names[self.pairs[:, 0]])
            df.insert(3, "item_j", names[self.pairs[:, 1]])
        return df


def combine_orders(p_a_ij, p_a_ji) -> np.ndarray:
    """P(i chosen) from P(A) with i first and P(A) with j first: a constant label bias cancels."""
    return (np.asarray(p_a_ij) + 1.0 - np.asarray(p_a_ji)) / 2.0


def ask_preferences(model, tokenizer, items: Sequence[str], pairs, *, template: str = PROMPT,
                    batch_size: int = 32, progress: bool = False) -> Choices:
    """Ask the model about every pair in both orders; read P(A) from the label logits."""
    return ask_preferences_copies(model, tokenizer, items, pairs, template=template,
                                  batch_size=batch_size, progress=progress)[0]


def ask_preferences_copies(model, tokenizer, items: Sequence[str], pairs, *, copies: int = 1,
                           template: str = PROMPT, batch_size: int = 32,
                           progress: bool = False) -> list[Choices]:
    """:func:`ask_preferences` for forwards that return ``copies`` copies of their batch (inside
    :func:`llmct.core.steering.steer_copies` with ``copies`` conditions): one :class:`Choices`
    per copy, in the order of the conditions, each equal to asking under that condition alone
    (to float rounding). Raises LLMCTError when the forwards return another number of rows."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    label_ids = label_token_ids(tokenizer)
    seqs, groups = [], []
    for swap in (0, 1):
        for i, j in pairs:
            a, b = (j, i) if swap else (i, j)
            seqs.append(preference_prompt_ids(tokenizer, items[a], items[b], template))
            groups.append(int(a))
    order = np.argsort(groups, kind="stable")  # one option A per batch: longest shared prefixes
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    logits = _copies_logits(model, [seqs[k] for k in order], [groups[k] for k in order],
                            batch_size=batch_size, min_group=MIN_GROUP, pad_id=pad_id,
                            progress=progress,
                            copies=copies)
    out = []
    for copy in logits:
        probs = torch.softmax(copy, dim=-1)
        label_p = torch.stack([probs[:, ids].sum(-1) for ids in label_ids], dim=1).numpy()
        label_p = label_p[np.argsort(order)].reshape(2, len(pairs), 2)  # [order, pair, label]
        mass = label_p.sum(-1)
        p_a = label_p[..., 0] / np.maximum(mass, 1e-30)
        out.append(Choices(pairs=pairs, p_a=p_a.T.astype(np.float64),
                           mass=mass.T.astype(np.float64)))
    return out


def sample_pairs(n_items: int, per_item: int | None = None, seed: int = 0) -> np.ndarray:
    """``[P, 2]`` pairs (i < j): all of them, or about ``per_item`` per item (union of seeded
    random matchings, so every item appears equally often)."""
    everything = np.array([(i, j) for i in range(n_items) for j in range(i + 1, n_items)])
    if per_item is None or per_item >= n_items - 1:
        return everything.reshape(-1, 2)
    if per_item < 1:
        raise LLMCTError(f"pairs per item must be >= 1, got {per_item}")
    rng = np.random.default_rng(seed)
    chosen: set[tuple[int, int]] = set()
    for _ in range(per_item):
        perm = rng.permutation(n_items)
        for a, b in zip(perm[0::2], perm[1::2], strict=False):
            chosen.add((int(min(a, b)), int(max(a, b))))
    return np.array(sorted(chosen), dtype=np.int64)


# --------------------------------------------------------------------------- ratings


def elo_ratings(pairs, scores, n_items: int, *, k: float = 32.0, n_orders: int = 20,
                seed: int = 0) -> np.ndarray:
    """Sequential Elo (start 1500, fixed ``k``) over the matches, averaged over ``n_orders``
    random match orders. ``scores`` [..., P] are soft outcomes for ``pairs[:, 0]`` (leading
    axes are independent runs, e.g. conditions, all played in the same orders); returns
    [..., n_items]."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64)
    lead = scores.shape[:-1]
    flat = scores.reshape(-1, len(pairs))
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(len(pairs)) for _ in range(n_orders)])
    runs = np.repeat(flat, n_orders, axis=0)
    ratings = _elo_runs(pairs, runs, np.tile(orders, (len(flat), 1)), n_items, k)
    return ratings.reshape(len(flat), n_orders, n_items).mean(1).reshape(*lead, n_items)


def _elo_runs(pairs: np.ndarray, scores: np.ndarray, schedule: np.ndarray, n_items: int,
              k: float) -> np.ndarray:
    """Independent sequential Elo runs, vectorised over runs: run ``r`` plays the pairs
    ``schedule[r]`` (indices into ``pairs``, in order; -1 = no game) with outcomes
    ``scores[r]`` [P]."""
    n_runs = len(schedule)
    ratings = np.full((n_runs, n_items), BASE_RATING)
    rows = np.arange(n_runs)
    for t in range(schedule.shape[1]):
        m = schedule[:, t]
        played = m >= 0  # -1 pads schedules of unequal length (activity bootstrap): no game
        m = np.where(played, m, 0)
        i, j = pairs[m, 0], pairs[m, 1]
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[rows, j] - ratings[rows, i]) / 400.0))
        step = k * (scores[rows, m] - expected) * played
        ratings[rows, i] += step
        ratings[rows, j] -= step
    return ratings


def _pair_cells(pairs: np.ndarray, n_items: int) -> np.ndarray:
    """[P, n*n] one-hot of cell (i, j) of each pair (to scatter pair values into matrices)."""
    cells = np.zeros((len(pairs), n_items * n_items))
    cells[np.arange(len(pairs)), pairs[:, 0] * n_items + pairs[:, 1]] = 1.0
    return cells


def bt_ratings(pairs, scores, n_items: int, *, weights=None, prior: float = 0.01,
               tol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """Bradley-Terry maximum likelihood on soft outcomes (Newton's method on the logistic
    log-likelihood), on the Elo scale with mean 1500. ``prior``: virtual games, half won,
    against a fixed reference of strength 0, which keeps ratings finite when an item wins or
    loses everything (0 for the plain MLE). ``weights`` [..., P]: how often each pair counts
    (bootstrap multiplicities); leading axes of ``scores``/``weights`` are independent fits.
    Returns [..., n_items]."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    scores, weights = np.broadcast_arrays(scores, weights)
    lead = scores.shape[:-1]
    s = scores.reshape(-1, len(pairs))
    w = weights.reshape(-1, len(pairs))
    cells = _pair_cells(pairs, n_items)
    shape = (len(s), n_items, n_items)
    wins = ((w * s) @ cells).reshape(shape)
    wins = wins + np.swapaxes(((w * (1.0 - s)) @ cells).reshape(shape), 1, 2)
    games = (w @ cells).reshape(shape)
    games = games + np.swapaxes(games, 1, 2)
    theta = np.zeros((len(s), n_items))
    eye = np.eye(n_items)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(theta[:, :, None] - theta[:, None, :])))
        p0 = 1.0 / (1.0 + np.exp(-theta))
        grad = (wins - games * p).sum(-1) + prior * (0.5 - p0)
        curv = games * p * (1.0 - p)
        hess = curv - eye * (curv.sum(-1) + prior * p0 * (1.0 - p0))[:, :, None]
        hess = hess - 1e-9 * eye  # the plain MLE is defined up to a shift: keep H invertible
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step = np.clip(step, -2.0, 2.0)
        theta = theta - step
        if prior == 0:
            theta -= theta.mean(-1, keepdims=True)
        if np.max(np.abs(step)) < tol:
            break
    ratings = BASE_RATING + ELO_SCALE * (theta - theta.mean(-1, keepdims=True))
    return ratings.reshape(*lead, n_items)


METHODS = ("elo", "bt", "elo-hard")


def hard_outcomes(scores) -> np.ndarray:
    """Soft outcomes rounded to a win (1), loss (0) or tie (0.5): what a sampled or argmax
    choice would record."""
    s = np.asarray(scores, dtype=np.float64)
    return np.where(s > 0.5, 1.0, np.where(s < 0.5, 0.0, 0.5))


def _check_method(method: str) -> tuple[str, bool]:
    """(rating model, whether outcomes are hardened) of a method name in :data:`METHODS`."""
    if method not in METHODS:
        raise LLMCTError(f"unknown rating method {method!r}; use one of {METHODS}")
    return method.removesuffix("-hard"), method.endswith("-hard")


def ratings(method: str, pairs, scores, n_items: int, *, seed: int = 0, elo_k: float = 32.0,
            elo_orders: int = 20) -> np.ndarray:
    """[..., P] scores -> [..., n_items] ratings by ``method``: 'elo' (:func:`elo_ratings`),
    'bt' (:func:`bt_ratings`), or 'elo-hard' (Elo of :func:`hard_outcomes`)."""
    model, hard = _check_method(method)
    scores = hard_outcomes(scores) if hard else scores
    if model == "bt":
        return bt_ratings(pairs, scores, n_items)
    return elo_ratings(pairs, scores, n_items, k=elo_k, n_orders=elo_orders, seed=seed)


def bootstrap_ratings(method: str, pairs, scores, n_items: int, *, n_boot: int = 500,
                      seed: int = 0, elo_k: float = 32.0, elo_orders: int = 5,
                      chunk: int = 50) -> np.ndarray:
    """``[n_boot, C, n_items]`` ratings with pairs resampled with replacement; ``scores`` [C, P]
    (conditions share each resample, so differences between conditions are paired). Elo plays
    each resample in ``elo_orders`` random orders and averages them."""
    model, hard = _check_method(method)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    scores = hard_outcomes(scores) if hard else scores
    n_cond, n_pairs = scores.shape
    idx = bootstrap_indices(n_pairs, n_boot, seed)
    out = np.empty((n_boot, n_cond, n_items))
    if model == "bt":
        counts = np.stack([np.bincount(r, minlength=n_pairs) for r in idx]).astype(float)
        for c in range(n_cond):
            out[:, c] = bt_ratings(pairs, scores[c], n_items, weights=counts)
        return out
    rng = np.random.default_rng(seed + 1)
    for b0 in range(0, n_boot, chunk):
        boots = idx[b0:b0 + chunk]
        sched = np.stack([r[rng.permutation(n_pairs)] for r in boots for _ in range(elo_orders)])
        sched = np.tile(sched, (n_cond, 1)).astype(np.int32)  # [C * boots * orders, P]
        runs = np.repeat(scores, len(sched) // n_cond, axis=0)
        r = _elo_runs(pairs, runs, sched, n_items, elo_k)
        out[b0:b0 + len(boots)] = r.reshape(n_cond, len(boots), elo_orders, n_items
                                            ).mean(2).transpose(1, 0, 2)
    return out


def activity_draws(groups: Sequence[str] | np.ndarray, n_boot: int = 500,
                   seed: int = 0) -> np.ndarray:
    """``[n_boot, n_items]`` draw counts of a bootstrap of the items (activities), stratified by
    ``groups``: each resample draws, within every group, as many of its items as it has, with
    replacement (a stratified cluster bootstrap; Davison & Hinkley 1997, *Bootstrap Methods*,
    sec. 3.8). Seeded by ``np.random.default_rng(seed)``."""
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, len(groups)), dtype=np.int64)
    for g in dict.fromkeys(groups.tolist()):
        members = np.flatnonzero(groups == g)
        k = len(members)
        counts[:, members] = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)
    return counts


def _padded_schedules(weights: np.ndarray, n_orders: int, rng) -> np.ndarray:
    """``[len(weights) * n_orders, L]`` Elo schedules: pair ``m`` played ``weights[b, m]`` times
    in a random order, ``n_orders`` orders per row of ``weights``, padded with -1 to one length."""
    seqs = [rng.permutation(np.repeat(np.arange(weights.shape[1]), w)) for w in weights
            for _ in range(n_orders)]
    out = np.full((len(seqs), max(1, max(len(q) for q in seqs))), -1, dtype=np.int32)
    for r, q in enumerate(seqs):
        out[r, :len(q)] = q
    return out


def activity_bootstrap_ratings(method: str, pairs, scores, groups: Sequence[str], *,
                               n_boot: int = 500, seed: int = 0, elo_k: float = 32.0,
                               elo_orders: int = 5, chunk: int = 50
                               ) -> tuple[np.ndarray, np.ndarray]:
    """``(ratings [n_boot, C, n_items], draws [n_boot, n_items])``: ratings refitted on resampled
    activities. ``scores`` [C, P] (conditions share each resample, so differences are paired).

    Pairs share activities, so the activity, not the pair, is the independent unit. Each resample
    draws activities within each of ``groups`` (:func:`activity_draws`); a pair counts
    ``draws[i] * draws[j]`` times (the "pigeonhole" weighting of Owen 2007, *Ann. Appl. Stat.*
    1(2), with one population on both sides). BT refits with these weights; Elo plays each pair
    that many times in ``elo_orders`` random orders (averaged). Ratings are re-centred to mean
    1500 over the drawn activities (weighted by draws); undrawn activities are meaningless and
    carry weight 0 in :func:`weighted_group_means`.
    """
    model, hard = _check_method(method)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    scores = hard_outcomes(scores) if hard else scores
    n_items = len(groups)
    draws = activity_draws(groups, n_boot, seed)
    weights = draws[:, pairs[:, 0]] * draws[:, pairs[:, 1]]  # [B, P]
    out = np.empty((n_boot, len(scores), n_items))
    if model == "bt":
        for c in range(len(scores)):
            out[:, c] = bt_ratings(pairs, scores[c], n_items, weights=weights.astype(float))
    else:
        rng = np.random.default_rng(seed + 1)
        for b0 in range(0, n_boot, chunk):
            sched = _padded_schedules(weights[b0:b0 + chunk], elo_orders, rng)
            nb = len(sched) // elo_orders
            runs = np.repeat(scores, len(sched), axis=0)
            r = _elo_runs(pairs, runs, np.tile(sched, (len(scores), 1)), n_items, elo_k)
            out[b0:b0 + nb] = r.reshape(len(scores), nb, elo_orders, n_items
                                        ).mean(2).transpose(1, 0, 2)
    centre = (out * draws[:, None]).sum(-1, keepdims=True) / draws.sum(-1)[:, None, None]
    return out - centre + BASE_RATING, draws


def weighted_group_means(values: np.ndarray, groups: Sequence[str] | np.ndarray,
                         weights: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Weighted mean of ``values`` [B, ..., n_items] within each group, weights [B, n_items]
    (e.g. bootstrap draw counts; a group must have positive total weight in every row)."""
    groups = np.asarray(groups)
    names = list(dict.fromkeys(groups.tolist()))
    w = np.asarray(weights, dtype=float).reshape(len(weights), *([1] * (values.ndim - 2)), -1)
    return names, np.stack([(values[..., groups == g] * w[..., groups == g]).sum(-1)
                            / w[..., groups == g].sum(-1) for g in names], axis=-1)


def group_means(values: np.ndarray, groups: Sequence[str] | np.ndarray
                ) -> tuple[list[str], np.ndarray]:
    """Mean of ``values`` [..., n_items] within each group (in order of first appearance)."""
    groups = np.asarray(groups)
    names = list(dict.fromkeys(groups.tolist()))
    return names, np.stack([values[..., groups == g].mean(-1) for g in names], axis=-1)


UNITS = ("pairs", "activities")


def _bootstrap_categories(method: str, pairs, mat: np.ndarray, categories: Sequence[str],
                          unit: str, n_boot: int, seed: int, elo_k: float) -> np.ndarray:
    """``[n_boot, C, G]`` bootstrap category ratings, resampling ``unit`` ('pairs' or
    'activities', see :func:`bootstrap_ratings` and :func:`activity_bootstrap_ratings`)."""
    if unit == "pairs":
        boot = bootstrap_ratings(method, pairs, mat, len(categories), n_boot=n_boot, seed=seed,
                                 elo_k=elo_k)
        return group_means(boot, categories)[1]
    if unit == "activities":
        boot, draws = activity_bootstrap_ratings(method, pairs, mat, categories, n_boot=n_boot,
                                                 seed=seed, elo_k=elo_k)
        return weighted_group_means(boot, categories, draws)[1]
    raise LLMCTError(f"unknown bootstrap unit {unit!r}; use one of {UNITS}")


def ci_unit_label(unit: str, n_pairs: int, n_items: int) -> str:
    """The ``ci_unit`` text of an interval from :func:`rating_table` with this ``unit``."""
    if unit == "pairs":
        return f"pairs (n={n_pairs}; activities held fixed)"
    return f"activities resampled within category (n={n_items}; pair weight = product of draws)"


def rating_table(pairs, scores: dict[str, np.ndarray], categories: Sequence[str], *,
                 baseline: str, controls: dict[str, Sequence[str]] | None = None,
                 methods: Sequence[str] = METHODS, n_boot: int = 500, ci: float = 0.95,
                 seed: int = 0, elo_k: float = 32.0, elo_orders: int = 20,
                 unit: str = "pairs") -> pd.DataFrame:
    """Category ratings per condition and their change vs ``baseline`` (``delta``), with paired
    bootstrap CIs that resample ``unit``: 'pairs' (activities fixed) or 'activities' (stratified
    by category; the independent unit, since pairs share activities). ``scores``: condition ->
    [P] soft outcomes; ``categories``: one per item. ``controls``: condition -> control
    conditions (e.g. random directions of the same norm); ``excess`` = the condition's rating
    minus the mean of its controls' (NaN if none). Column ``ci_unit`` names the resampled unit."""
    names = list(scores)
    controls = controls or {}
    for cond in [baseline, *controls, *(c for cs in controls.values() for c in cs)]:
        if cond not in scores:
            raise LLMCTError(f"condition {cond!r} is not among the conditions {names}")
    mat = np.stack([np.asarray(scores[c], dtype=float) for c in names])
    n_items = len(categories)
    b0 = names.index(baseline)
    ci_unit = ci_unit_label(unit, len(np.asarray(pairs).reshape(-1, 2)), n_items)
    rows = []
    for method in methods:
        point = ratings(method, pairs, mat, n_items, seed=seed, elo_k=elo_k, elo_orders=elo_orders)
        cats, point_c = group_means(point, categories)
        boot_c = _bootstrap_categories(method, pairs, mat, categories, unit, n_boot, seed, elo_k)
        for c, cond in enumerate(names):
            ctl = [names.index(k) for k in controls.get(cond, ())]
            for g, cat in enumerate(cats):
                row = dict(method=method, condition=cond, category=cat, rating=point_c[c, g])
                row["lo"], row["hi"] = percentile_ci(boot_c[:, c, g], ci)
                row["delta"] = point_c[c, g] - point_c[b0, g]
                row["delta_lo"], row["delta_hi"] = percentile_ci(
                    boot_c[:, c, g] - boot_c[:, b0, g], ci)
                row["excess"] = row["excess_lo"] = row["excess_hi"] = np.nan
                if ctl:
                    row["excess"] = point_c[c, g] - point_c[ctl, g].mean()
                    row["excess_lo"], row["excess_hi"] = percentile_ci(
                        boot_c[:, c, g] - boot_c[:, ctl, g].mean(-1), ci)
                row["ci_unit"] = ci_unit
                rows.append(row)
    return pd.DataFrame(rows)


__all__ = [
    "LABELS",
    "METHODS",
    "PROMPT",
    "UNITS",
    "Choices",
    "activity_bootstrap_ratings",
    "activity_draws",
    "ask_preferences",
    "ask_preferences_copies",
    "bootstrap_ratings",
    "bt_ratings",
    "ci_unit_label",
    "combine_orders",
    "elo_ratings",
    "group_means",
    "hard_outcomes",
    "label_token_ids",
    "last_token_logits",
    "preference_prompt_ids",
    "rating_table",
    "ratings",
    "sample_pairs",
    "weighted_group_means",
]
