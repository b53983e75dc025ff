"""Self-describing, atomic, resumable activation storage (``.npz`` + JSON manifest, never pickle).

``save_npz`` writes to a temporary file in the same folder and renames it, so a crash never
leaves a half-written file, and refuses to overwrite an existing file unless told to.
``ChunkedStore`` lets an extraction resume: each finished chunk is its own atomic file, finished
ids are skipped on restart, and ``merge`` assembles the final file in input order.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import StoreError

MANIFEST_KEY = "__manifest__"


def base_manifest(**fields) -> dict:
    """Provenance every stored file carries: versions and creation time, plus ``fields``."""
    import torch
    import transformers

    from . import __version__

    return {
        "llmct_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **fields,
    }


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], manifest: dict,
             overwrite: bool = False) -> Path:
    """Atomically write ``arrays`` and ``manifest`` (as JSON) to ``path``."""
    path = Path(path)
    if path.suffix != ".npz":
        raise StoreError(f"{path}: activation files must end in .npz")
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; refusing to overwrite (pass overwrite=True)")
    if MANIFEST_KEY in arrays:
        raise StoreError(f"array name {MANIFEST_KEY!r} is reserved")
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise StoreError(f"array {name!r} has dtype object; store numbers or strings only")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**arrays, MANIFEST_KEY: np.array(json.dumps(manifest, default=str))}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and manifest of a file written by :func:`save_npz` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != MANIFEST_KEY}
            if MANIFEST_KEY not in data.files:
                raise StoreError(f"{path} has no llmct manifest; not written by llmct.store")
            manifest = json.loads(str(data[MANIFEST_KEY]))
    except (ValueError, OSError) as exc:
        raise StoreError(f"{path} is not a readable llmct .npz file: {exc}") from exc
    return arrays, manifest


class ChunkedStore:
    """A folder of finished chunks (``chunk-*.npz``, each with an ``ids`` array) for resumable runs.

    The manifest of the first chunk is the run's manifest; a later chunk whose manifest
    disagrees on the fields in ``identity`` (model, position rule, ...) is refused, so one folder
    never mixes activations of two configurations.
    """

    identity = ("model", "model_fingerprint", "dtype", "position", "prompt", "sources", "layers")

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def chunks(self) -> list[Path]:
        return sorted(self.folder.glob("chunk-*.npz")) if self.folder.exists() else []

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for chunk in self.chunks():
            with np.load(chunk, allow_pickle=False) as data:
                done.update(str(i) for i in data["ids"])
        return done

    def manifest(self) -> dict | None:
        chunks = self.chunks()
        return load_npz(chunks[0])[1] if chunks else None

    def check_compatible(self, manifest: dict) -> None:
        existing = self.manifest()
        if existing is None:
            return
        for key in self.identity:
            if json.dumps(existing.get(key), default=str) != json.dumps(manifest.get(key), default=str):
                raise StoreError(
                    f"{self.folder} holds activations with {key}={existing.get(key)!r}, not "
                    f"{manifest.get(key)!r}; use another output folder (nothing was overwritten)"
                )

    def add(self, ids: Iterable[str], arrays: dict[str, np.ndarray], manifest: dict) -> Path:
        ids = [str(i) for i in ids]
        self.check_compatible(manifest)
        n = len(self.chunks())
        while (self.folder / f"chunk-{n:05d}.npz").exists():
            n += 1
        return save_npz(self.folder / f"chunk-{n:05d}.npz", {"ids": np.array(ids), **arrays}, manifest)

    def merge(self, order: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """All chunks as one set of arrays (rows in ``order`` if given, else chunk order)."""
        parts = [load_npz(c) for c in self.chunks()]
        if not parts:
            raise StoreError(f"{self.folder} has no finished chunks")
        ids = np.concatenate([p[0]["ids"] for p in parts])
        keys = [k for k in parts[0][0] if k != "ids"]
        merged = {k: np.concatenate([p[0][k] for p in parts]) for k in keys}
        if order is not None:
            index = {str(i): n for n, i in enumerate(ids)}
            missing = [i for i in order if i not in index]
            if missing:
                raise StoreError(f"{len(missing)} ids not extracted yet, e.g. {missing[:3]}")
            take = np.array([index[i] for i in order], dtype=np.int64)
            ids = ids[take]
            merged = {k: v[take] for k, v in merged.items()}
        return {"ids": ids, **merged}, parts[0][1]


def fresh_output_dir(path: str | Path, overwrite: bool = False) -> Path:
    """The folder a run should write to, never silently replacing an earlier run's results.

    A missing or empty folder is used as is; an existing one only with ``overwrite``; otherwise a
    sibling ``<name>-<UTC timestamp>`` is created (and its path should be printed to the user).
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
        path = path.with_name(f"{path.name}-{stamp}")
        n = 1
        while path.exists():
            path = path.with_name(f"{path.name.rsplit('-r', 1)[0]}-r{n}")
            n += 1
    path.mkdir(parents=True, exist_ok=True)
    return path
