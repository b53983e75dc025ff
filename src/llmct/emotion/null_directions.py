"""Null directions for steering with emotion vectors.

:func:`span_directions`: seeded random directions in the span of the activations the vectors are
built from; :func:`shuffled_label_vectors`: the vectors rebuilt with the labels permuted. Both are
the matched nulls of experiment 11 (issue #16): a steering effect counts only where the emotion
vector beats directions of the same construction without the labels' meaning.
"""

from __future__ import annotations

import numpy as np

from llmct.emotion.vectors import NEUTRAL_VARIANCE, emotion_vectors, project_out
from llmct.errors import LLMCTError


def span_directions(rows, n: int, *, seed: int = 0, norm: float = 1.0,
                    remove=None) -> np.ndarray:
    """``[n, d]`` seeded random directions in the span of the centred ``rows`` ``[m, d]``.

    Direction ``k`` is ``sum_i g_ki (rows_i - mean(rows))`` with ``g_ki`` iid N(0, 1)
    (``np.random.default_rng(seed)``), so the directions follow the rows' covariance: they lie on
    the activation manifold the rows sample (e.g. per-story mean activations at one layer), unlike
    an isotropic :func:`random_direction`. ``remove`` ``[k, d]`` (orthonormal rows, e.g. the
    neutral principal components that the emotion vectors have projected out) is then projected
    out, and every direction is scaled to L2 norm ``norm`` (float64 arithmetic, float32 result).

    A null for steering vectors built from the same rows (the emotion vectors of
    :mod:`llmct.emotion.vectors` are label means of these rows, centred, same projection). Raises
    LLMCTError for fewer than 2 rows, ``n < 1``, a non-positive ``norm``, or a draw of norm 0
    (all rows equal, or their span inside ``remove``).
    """
    X = np.asarray(rows, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise LLMCTError(f"span_directions needs [m >= 2, d] rows, got shape {X.shape}")
    if n < 1 or not norm > 0:
        raise LLMCTError(f"need n >= 1 and norm > 0, got n={n}, norm={norm}")
    X = X - X.mean(axis=0, keepdims=True)
    dirs = np.random.default_rng(seed).standard_normal((n, len(X))) @ X
    if remove is not None:
        dirs = project_out(dirs, remove).astype(np.float64)
    lengths = np.linalg.norm(dirs, axis=1, keepdims=True)
    if not np.all(lengths > 1e-9 * max(1.0, float(np.abs(X).max()))):
        raise LLMCTError("a span direction has norm 0: the centred rows span nothing outside "
                         "the removed components")
    return (dirs / lengths * norm).astype(np.float32)


def shuffled_label_vectors(acts, labels, neutral=None, *, seed: int = 0,
                           order=None, variance: float = NEUTRAL_VARIANCE) -> np.ndarray:
    """``[E, d]`` emotion vectors rebuilt with the story labels permuted (seeded).

    ``acts`` ``[n, d]``: per-story pooled activations at one layer; ``labels`` ``[n]``;
    ``neutral`` ``[m, d]``: neutral texts' activations at the same layer (None: nothing projected
    out). The labels are shuffled with ``np.random.default_rng(seed).permutation``, then
    :func:`llmct.emotion.vectors.emotion_vectors` builds the vectors exactly as experiment 09 does (label
    means, minus their mean over labels, neutral PCs explaining ``variance`` projected out), in
    label ``order`` (default: first appearance in ``labels``). A label-permutation null: vectors
    of the same construction and the same activations, without the emotion labels' meaning.
    """
    acts = np.asarray(acts, dtype=np.float64)
    if acts.ndim != 2:
        raise LLMCTError(f"shuffled_label_vectors needs [n, d] activations, got {acts.shape}")
    labels = np.asarray(labels)
    order = list(order) if order is not None else list(dict.fromkeys(labels.tolist()))
    perm = np.random.default_rng(seed).permutation(len(labels))
    neu = None if neutral is None else np.asarray(neutral, dtype=np.float64)[:, None]
    ev = emotion_vectors(acts[:, None], labels[perm], neu, layers=[0], order=order,
                         variance=variance)
    return ev.projected[:, 0]


__all__ = ["shuffled_label_vectors", "span_directions"]
