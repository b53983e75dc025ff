"""Similarity of snapshot vectors to reference vectors, vectorised over layers and sources.

Inputs are float arrays ``[..., D]``; every function compares each snapshot with each reference.
"""

from __future__ import annotations

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a [S, ..., D]``, ``b [R, ..., D]`` -> ``[S, R, ...]`` cosine similarity."""
    an = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return np.einsum("s...d,r...d->sr...", an, bn)


def mae(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference over hidden dims, ``[S, R, ...]``.

    One reference at a time: the same numbers as ``np.abs(a[:, None] - b[None]).mean(-1)``
    without its ``[S, R, ..., D]`` temporaries (50 MB each for a 20-message scan)."""
    first = np.abs(a - b[0][None]).mean(-1)
    out = np.empty((a.shape[0], b.shape[0], *first.shape[1:]), dtype=first.dtype)
    out[:, 0] = first
    for r in range(1, b.shape[0]):
        out[:, r] = np.abs(a - b[r][None]).mean(-1)
    return out


def top_k(d_model: int, fraction: float = 0.01) -> int:
    """Number of dims in the 'top 1%' (at least one)."""
    return max(1, int(d_model * fraction))


def topk_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` dims of largest ``|x|`` along the last axis."""
    idx = np.argpartition(-np.abs(x), k - 1, axis=-1)[..., :k]
    mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=-1)
    return mask


def jaccard_topk(a: np.ndarray, b: np.ndarray, fraction: float = 0.01) -> np.ndarray:
    """Jaccard overlap of the top-``fraction`` dims by magnitude, ``[S, R, ...]``."""
    k = top_k(a.shape[-1], fraction)
    ma, mb = topk_mask(a, k), topk_mask(b, k)
    inter = np.einsum("s...d,r...d->sr...", ma.astype(np.float32), mb.astype(np.float32))
    return inter / (2 * k - inter)


def spread(values: np.ndarray, axis: int = 1) -> np.ndarray:
    """Max minus min over references (the seed's 'discrimination spread')."""
    return values.max(axis=axis) - values.min(axis=axis)


def all_metrics(snaps: np.ndarray, refs: np.ndarray, centre: np.ndarray) -> dict[str, np.ndarray]:
    """cosine, centred cosine (both minus ``centre``), MAE and top-1% Jaccard, each ``[S, R, ...]``."""
    return {
        "cosine": cosine(snaps, refs),
        "cosine_centered": cosine(snaps - centre, refs - centre),
        "mae": mae(snaps, refs),
        "jaccard": jaccard_topk(snaps, refs),
    }
