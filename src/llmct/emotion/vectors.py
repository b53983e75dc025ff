"""Emotion vectors from stories (the method of Anthropic's "Emotion Concepts" paper, seed 003).

For every story the residual stream leaving each block (``hidden_out``) is averaged over the
story's tokens from index ``mean_from`` (default 50, 0-based, in the tokenizer's own tokens) to
the end, where the emotional context is established. The story means are averaged per emotion,
the mean over emotions is subtracted (*centred*), and the top principal components of neutral
dialogues' activations (same pooling, PCA on *centred* neutral activations) that together explain
50% of their variance are projected out (*projected*). Both versions are returned, per layer.

Activations are cached in a resumable store readable by :func:`llmct.emotion.extract.load_extraction`,
and vectors are saved as a small safetensors *vector library* with provenance, the format that
steering and the monitor load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmct.analysis.geometry import pca
from llmct.core.arch import get_adapter
from llmct.core.capture import capture, resolve_layers, tokenize
from llmct.core.models import model_fingerprint
from llmct.core.positions import describe_position
from llmct.emotion.extract import Extraction, load_extraction, stores_in, text_digest
from llmct.errors import CaptureError, StoreError
from llmct.files import atomic_write
from llmct.io.store import ChunkedStore, base_manifest

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from llmct.core.runner import Tokenizer

MEAN_FROM = 50
NEUTRAL_VARIANCE = 0.5
SOURCE = "hidden_out"
LIBRARY_FORMAT = "llmct-vector-library/1"
LIBRARY_META = ("model", "model_fingerprint", "layers", "method", "language", "pooling")


def default_layer(n_layers: int) -> int:
    """The layer about two thirds of the way through (``round(2/3 * (n_layers - 1))``; depth as in
    :func:`llmct.analysis.probes.depth`): 19 of 0..29 for the embedded model."""
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    return int(round(2 * (n_layers - 1) / 3))


def pooling_description(mean_from: int = MEAN_FROM) -> str:
    return f"{SOURCE} mean over tokens [{mean_from}:] of each text, then mean per label"


# ----------------------------------------------------------------------------- activations


def pooled_activations(model: PreTrainedModel, tokenizer: Tokenizer | None, texts: Sequence, *,
                       mean_from: int = MEAN_FROM, layers="all", batch_size: int = 4,
                       names: Sequence[str] | None = None, progress: bool = False
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``([n, L, d] hidden_out means over tokens [mean_from:], token counts [n])``.

    ``texts``: strings or token-id lists. A text with ``<= mean_from`` tokens is an error naming
    it (its mean would be empty or silently come from a different span).
    """
    ids = tokenize(tokenizer, texts)
    names = list(names) if names is not None else [f"item {i}" for i in range(len(ids))]
    short = [(n, len(t)) for n, t in zip(names, ids, strict=True) if len(t) <= mean_from]
    if short:
        listed = ", ".join(f"{n} ({k} tokens)" for n, k in short[:5])
        raise CaptureError(
            f"{len(short)} text(s) too short for mean_from={mean_from}: need more than "
            f"{mean_from} tokens, got {listed}. Use longer stories or a smaller mean_from.")
    cap = capture(model, tokenizer, ids, sources=(SOURCE,), layers=layers, position="mean",
                  mean_from=mean_from, batch_size=batch_size, progress=progress)
    return cap.acts[SOURCE], np.array([len(t) for t in ids], dtype=np.int64)


def _pairs(stimuli) -> list[tuple[str, str]]:
    out = [(str(s.id), str(s.text)) if not isinstance(s, tuple) else (str(s[0]), str(s[1]))
           for s in stimuli]
    if len({i for i, _ in out}) != len(out):
        raise StoreError("duplicate stimulus ids; ids must be unique to be stored")
    return out


def _stored(folder: Path) -> set[tuple[str, str]]:
    done: set[tuple[str, str]] = set()
    for store in stores_in(folder):
        for chunk in store.chunks():
            with np.load(chunk, allow_pickle=False) as data:
                done.update(zip(map(str, data["ids"]), map(str, data["text_sha"]), strict=True))
    return done


def check_story_store(folder: Path, model_name: str | None, mean_from: int) -> None:
    """Refuse a story-activation folder whose chunks were made by other weights or pooled by
    another rule (the weights' fingerprint is computed from their files, without loading)."""
    from llmct.core.models import weights_fingerprint
    from llmct.emotion.extract import check_store

    if not folder.is_dir():
        return
    check_store(folder, {"model": model_name,
                         "model_fingerprint": weights_fingerprint(model_name) if model_name
                         else None,
                         "position": describe_position("mean", mean_from), "prompt": "text"})


def story_activations(folder: str | Path, stimuli, *, load: Callable[[], tuple] | None,
                      mean_from: int = MEAN_FROM, batch_size: int = 4, chunk_size: int = 32,
                      model_name: str | None = None, progress: bool = True) -> Extraction:
    """Pooled ``hidden_out`` activations of ``stimuli`` (objects with ``id``/``text`` or
    ``(id, text)`` tuples), cached under ``folder``; only what is missing is computed.

    ``load()`` returns ``(model, tokenizer)`` and is called only if something must be extracted.
    Each finished chunk is written atomically with a manifest (model, fingerprint, pooling), so an
    interrupted run resumes; the result is an :class:`llmct.emotion.extract.Extraction` in input order.
    Before anything is read or extracted, every stored chunk is checked against this run's
    identity (model weights, pooling rule), so a folder of another model is refused.

    Raises:
        StoreError: a chunk of another model or pooling (both identities named), or activations
            missing with no ``load``.
    """
    folder = Path(folder)
    check_story_store(folder, model_name, mean_from)
    pairs = _pairs(stimuli)
    todo = [(i, t) for i, t in pairs if (i, text_digest(t)) not in _stored(folder)]
    if todo:
        if load is None:
            raise StoreError(f"{folder}: {len(todo)} activations missing and no model to extract")
        model, tokenizer = load()
        adapter = get_adapter(model)
        n_layers = adapter.n_layers(model)
        name = model_name or getattr(model.config, "llmct_name", None) or \
            model.config._name_or_path
        manifest = base_manifest(
            model=name, model_fingerprint=model_fingerprint(model),
            dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
            position=describe_position("mean", mean_from), prompt="text", prompt_template="{text}",
            sources=[SOURCE], layers=resolve_layers("all", n_layers), n_layers=n_layers,
            d_model=int(model.config.hidden_size), family=adapter.family, attention=False,
            pooling=pooling_description(mean_from), mean_from=mean_from)
        store = ChunkedStore(folder)
        chunks = [todo[k:k + chunk_size] for k in range(0, len(todo), chunk_size)]
        for n, chunk in enumerate(chunks):
            if progress:
                print(f"[vectors] chunk {n + 1}/{len(chunks)} ({len(chunk)} texts) -> {folder}",
                      flush=True)
            acts, n_tok = pooled_activations(model, tokenizer, [t for _, t in chunk],
                                             mean_from=mean_from, batch_size=batch_size,
                                             names=[i for i, _ in chunk])
            store.add([i for i, _ in chunk],
                      {"text_sha": np.array([text_digest(t) for _, t in chunk]),
                       "n_tokens": n_tok, SOURCE: acts}, manifest)
    ext = load_extraction(folder, pairs)
    position = ext.manifest.get("position")
    if position != describe_position("mean", mean_from):
        raise StoreError(f"{folder} holds activations pooled as {position!r}, not "
                         f"{describe_position('mean', mean_from)!r}; use another folder")
    return ext


# ----------------------------------------------------------------------------- vectors


@dataclass
class EmotionVectors:
    """Per-label vectors for every layer: ``means`` (uncentred), ``centred``, ``projected`` are
    ``[E, L, d]``; ``n_components[l]`` neutral PCs removed at layer ``layers[l]``, explaining
    ``neutral_variance[l]`` of the neutral activations' variance."""

    labels: list[str]
    layers: list[int]
    means: np.ndarray
    centred: np.ndarray
    projected: np.ndarray
    n_components: np.ndarray
    neutral_variance: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)

    def at(self, layer: int, kind: str = "projected") -> np.ndarray:
        """``[E, d]`` vectors of ``kind`` ('projected', 'centred' or 'means') at a model layer."""
        if layer not in self.layers:
            raise KeyError(f"layer {layer} not among {self.layers}")
        return getattr(self, kind)[:, self.layers.index(layer)]


def label_means(acts: np.ndarray, labels: Sequence[str] | np.ndarray,
                order: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """Mean of ``acts [n, ...]`` per label, labels in ``order`` (default: first appearance)."""
    labels = np.asarray(labels)
    order = list(order) if order is not None else list(dict.fromkeys(labels.tolist()))
    missing = [lab for lab in order if not np.any(labels == lab)]
    if missing:
        raise ValueError(f"no items for labels {missing}")
    means = np.stack([acts[labels == lab].mean(axis=0) for lab in order])
    return order, means, {lab: int(np.sum(labels == lab)) for lab in order}


def centre(vectors: np.ndarray) -> np.ndarray:
    """Subtract the mean over the first (label) axis."""
    return vectors - vectors.mean(axis=0, keepdims=True)


def neutral_components(neutral: np.ndarray, variance: float = NEUTRAL_VARIANCE
                       ) -> tuple[np.ndarray, float]:
    """``(components [k, d], variance explained)``: the fewest principal components of the
    centred ``neutral [m, d]`` activations whose explained variance reaches ``variance``."""
    if not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    if len(neutral) < 2:
        raise ValueError("need at least 2 neutral texts for a PCA")
    res = pca(neutral)
    cum = np.cumsum(res.explained_ratio)
    k = int(np.searchsorted(cum, variance - 1e-12) + 1)
    k = min(k, len(res.explained_ratio))
    return res.components[:k], float(cum[k - 1])


def project_out(vectors: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``vectors [..., d]`` minus their projection on the span of orthonormal ``components``."""
    c = np.asarray(components, dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float64)
    return (v - (v @ c.T) @ c).astype(np.float32)


def emotion_vectors(acts: np.ndarray, labels: Sequence[str], neutral: np.ndarray | None, *,
                    layers: Sequence[int], order: Sequence[str] | None = None,
                    variance: float = NEUTRAL_VARIANCE) -> EmotionVectors:
    """Emotion vectors from pooled story activations ``acts [n, L, d]`` and neutral-dialogue
    activations ``neutral [m, L, d]`` (same pooling; None: nothing projected out)."""
    acts = np.asarray(acts, dtype=np.float64)
    order, means, counts = label_means(acts, labels, order)
    if len(order) < 2:
        raise ValueError("need at least 2 labels to centre emotion vectors")
    centred = centre(means)
    projected = centred.copy()
    n_comp = np.zeros(len(layers), dtype=np.int64)
    explained = np.zeros(len(layers))
    if neutral is not None:
        neutral = np.asarray(neutral, dtype=np.float64)
        if neutral.shape[1:] != acts.shape[1:]:
            raise ValueError(f"neutral activations {neutral.shape[1:]} do not match the "
                             f"stories' {acts.shape[1:]}")
        for j in range(len(layers)):
            comps, explained[j] = neutral_components(neutral[:, j], variance)
            n_comp[j] = len(comps)
            projected[:, j] = project_out(centred[:, j], comps)
    return EmotionVectors(order, [int(x) for x in layers], means.astype(np.float32),
                          centred.astype(np.float32), projected.astype(np.float32), n_comp,
                          explained, counts)


def story_stimuli(language: str, *, emotions: Sequence[str] | None = None,
                  limit: int | None = None, stories_set: str = "stories",
                  neutral_set: str = "neutral_dialogues") -> tuple[list, list]:
    """``(stories, neutral texts)`` of one language from the shipped sets ``stories_set`` and
    ``neutral_set`` (v1: ``stories`` + ``neutral_dialogues``; v2: ``stories_v2`` +
    ``neutral_stories``, stories that never name their emotion and neutral texts of the same
    narrative genre); ``emotions`` keeps only those labels, ``limit`` at most that many stories
    per emotion and that many neutral texts (quick runs).

    Raises ``ValueError`` when either set has no text in ``language``."""
    from llmct.emotion.extract import limit_stimuli
    from llmct.io.stimuli import load_set

    stories = load_set(stories_set, language)
    neutral = load_set(neutral_set, language)
    if not stories or not neutral:
        raise ValueError(f"no {stories_set} or {neutral_set} texts for language {language!r}")
    if emotions:
        unknown = sorted(set(emotions) - {s.label for s in stories})
        if unknown:
            raise ValueError(f"unknown emotions {unknown} for language {language!r}")
        stories = [s for s in stories if s.label in set(emotions)]
    return limit_stimuli(stories, limit), limit_stimuli(neutral, limit)


def story_vectors(folder: str | Path, stories, neutral, *, load, mean_from: int = MEAN_FROM,
                  variance: float = NEUTRAL_VARIANCE, order: Sequence[str] | None = None,
                  batch_size: int = 4, model_name: str | None = None, progress: bool = True
                  ) -> tuple[EmotionVectors, Extraction, Extraction]:
    """Emotion vectors of ``stories`` with ``neutral`` projected out, from activations cached
    under ``folder`` (extracted first if missing); returns the vectors and both extractions
    (activations, token counts, manifest)."""
    loaded: list = []

    def load_once():
        if not loaded:
            loaded.append(load())
        return loaded[0]

    kw: dict[str, Any] = dict(load=load_once if load is not None else None, mean_from=mean_from,
                              batch_size=batch_size, model_name=model_name, progress=progress)
    ext = story_activations(folder, stories, **kw)
    neu = story_activations(folder, neutral, **kw)
    ev = emotion_vectors(ext.acts[SOURCE], [s.label for s in stories], neu.acts[SOURCE],
                         layers=ext.layers, order=order, variance=variance)
    return ev, ext, neu


# ----------------------------------------------------------------------------- library


@dataclass
class VectorLibrary:
    """Saved vectors ``[E, L, d]`` with ``labels``, model ``layers`` and provenance ``meta``;
    ``extras`` holds further named arrays (e.g. a centring baseline ``[L, d]``)."""

    labels: list[str]
    layers: list[int]
    vectors: np.ndarray
    meta: dict
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def layer(self, layer: int) -> np.ndarray:
        """``[E, d]`` at a model layer index."""
        if layer not in self.layers:
            raise KeyError(f"layer {layer} is not in this library (layers {self.layers})")
        return self.vectors[:, self.layers.index(layer)]

    def vector(self, label: str, layer: int) -> np.ndarray:
        if label not in self.labels:
            raise KeyError(f"label {label!r} is not in this library ({self.labels})")
        return self.layer(layer)[self.labels.index(label)]


def save_vector_library(path: str | Path, vectors: np.ndarray, labels: Sequence[str], meta: dict,
                        overwrite: bool = False, *, extras: dict[str, np.ndarray] | None = None
                        ) -> Path:
    """Atomically write ``vectors [E, L, d]`` with provenance to a safetensors file.

    ``meta`` must name the model, its fingerprint, the ``layers`` (model indices, one per ``L``),
    the ``method``, the ``language`` and the ``pooling``; any further JSON-able keys are kept.
    Refuses to replace an existing file unless ``overwrite``.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise StoreError(f"{path}: a vector library must end in .safetensors")
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; refusing to overwrite (pass overwrite=True)")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    labels = [str(x) for x in labels]
    missing = [k for k in LIBRARY_META if k not in meta]
    if missing:
        raise StoreError(f"vector library meta lacks {missing} (needs {list(LIBRARY_META)})")
    if vectors.ndim != 3:
        raise StoreError(f"vectors must be [labels, layers, d], got shape {vectors.shape}")
    if len(labels) != vectors.shape[0] or len(set(labels)) != len(labels):
        raise StoreError(f"{len(labels)} labels (unique required) for {vectors.shape[0]} vectors")
    if len(meta["layers"]) != vectors.shape[1]:
        raise StoreError(f"meta has {len(meta['layers'])} layers, vectors {vectors.shape[1]}")
    if not np.isfinite(vectors).all():
        raise StoreError("vectors contain NaN/inf; refusing to save")
    extras = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in (extras or {}).items()}
    if "vectors" in extras:
        raise StoreError("extra array name 'vectors' is reserved")
    full_meta = {**meta, "labels": labels, "layers": [int(x) for x in meta["layers"]],
                 "shape": list(vectors.shape)}
    return atomic_write(path, lambda tmp: save_file(
        {"vectors": vectors, **extras}, str(tmp),
        metadata={"format": LIBRARY_FORMAT, "meta": json.dumps(full_meta, default=str)}))


def load_vector_library(path: str | Path) -> VectorLibrary:
    """Read a file written by :func:`save_vector_library` (checked, numpy float32)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.exists():
        raise StoreError(f"vector library {path} does not exist")
    try:
        with safe_open(str(path), "np") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several types on a corrupt file
        raise StoreError(f"{path} is not a readable safetensors file: {exc}") from exc
    if header.get("format") != LIBRARY_FORMAT or "vectors" not in tensors:
        raise StoreError(f"{path} is not an llmct vector library (format "
                         f"{header.get('format')!r}, expected {LIBRARY_FORMAT!r})")
    meta = json.loads(header["meta"])
    vectors = tensors.pop("vectors")
    if list(vectors.shape) != meta.get("shape"):
        raise StoreError(f"{path}: vectors {vectors.shape} disagree with meta {meta.get('shape')}")
    return VectorLibrary(list(meta["labels"]), [int(x) for x in meta["layers"]], vectors, meta,
                         tensors)


__all__ = [
    "LIBRARY_FORMAT",
    "MEAN_FROM",
    "NEUTRAL_VARIANCE",
    "EmotionVectors",
    "VectorLibrary",
    "centre",
    "default_layer",
    "emotion_vectors",
    "label_means",
    "load_vector_library",
    "neutral_components",
    "pooled_activations",
    "pooling_description",
    "project_out",
    "save_vector_library",
    "story_activations",
    "story_stimuli",
    "story_vectors",
]
