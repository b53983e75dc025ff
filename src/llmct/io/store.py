"""Self-describing, atomic, resumable activation storage (``.npz`` + JSON manifest, never pickle).

``save_npz`` writes to a temporary file in the same folder and renames it, so a crash never
leaves a half-written file, and refuses to overwrite an existing file unless told to.
``ChunkedStore`` lets an extraction resume: each finished chunk is its own atomic file, finished
ids are skipped on restart, and ``merge`` assembles the final file in input order.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from llmct.errors import StoreError
from llmct.files import atomic_write

MANIFEST_KEY = "__manifest__"


def base_manifest(**fields) -> dict:
    """Provenance every stored file carries: versions and creation time, plus ``fields``."""
    import torch
    import transformers

    from llmct._version import __version__

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
    # Any: mypy would match the names against savez's own keyword (allow_pickle: bool)
    payload: dict[str, Any] = {**arrays, MANIFEST_KEY: np.array(json.dumps(manifest, default=str))}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: savez would append .npz to a bare name
            np.savez(f, **payload)

    return atomic_write(path, write)


def _recover_hint(path: Path) -> str:
    if path.name.startswith("chunk-"):
        return ("; delete this chunk and run again: the extraction resumes and re-extracts only "
                "its items")
    return ""


def read_manifest(path: str | Path) -> dict:
    """The manifest of an llmct ``.npz`` file, without reading its arrays.

    Raises:
        StoreError: the file is missing, truncated, not an llmct file, or its manifest is not
            valid JSON (a chunk's message says how to recover).
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path} does not exist" if not path.exists() else
                         f"{path} is not a file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if MANIFEST_KEY not in data.files:
                raise StoreError(f"{path} has no llmct manifest; not written by llmct.io.store")
            text = str(data[MANIFEST_KEY])
    except StoreError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise StoreError(f"{path}: truncated or corrupt file ({type(exc).__name__}: "
                         f"{str(exc)[:120]}){_recover_hint(path)}") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: corrupt manifest (invalid JSON: {exc.msg})"
                         f"{_recover_hint(path)}") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{path}: corrupt manifest (not a JSON object){_recover_hint(path)}")
    return manifest


def load_npz(path: str | Path, keys: Iterable[str] | None = None
             ) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays (all, or only ``keys``) and manifest of a file written by :func:`save_npz`
    (``allow_pickle=False``).

    Raises:
        StoreError: missing, truncated or corrupt file, missing array, or a foreign file.
    """
    path = Path(path)
    manifest = read_manifest(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [k for k in data.files if k != MANIFEST_KEY] if keys is None else list(keys)
            missing = [k for k in names if k not in data.files]
            if missing:
                raise StoreError(f"{path} lacks the array(s) {missing}{_recover_hint(path)}")
            arrays = {k: data[k] for k in names}
    except StoreError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise StoreError(f"{path}: truncated or corrupt file ({type(exc).__name__}: "
                         f"{str(exc)[:120]}){_recover_hint(path)}") from None
    return arrays, manifest


#: Manifest fields that make up the identity of stored activations; two stores (or two chunks)
#: that differ in any of them must never be mixed.
IDENTITY = ("model", "model_fingerprint", "dtype", "position", "prompt", "prompt_template",
            "sources", "layers", "attention")


def describe_identity(manifest: dict, keys: Iterable[str] = IDENTITY) -> str:
    """``model=..., model_fingerprint=..., dtype=...`` of the ``keys`` a manifest has."""
    return ", ".join(f"{k}={manifest[k]}" for k in keys if manifest.get(k) is not None)


def identity_mismatch(stored: dict, expected: dict, keys: Iterable[str] = IDENTITY) -> list[str]:
    """The keys on which ``stored`` and ``expected`` disagree (keys ``expected`` leaves out or
    sets to None are not compared; neither is ``model`` when both fingerprints are known and
    equal: the same weights under two names)."""
    keys = list(keys)
    same_weights = (stored.get("model_fingerprint") is not None
                    and stored.get("model_fingerprint") == expected.get("model_fingerprint"))
    bad = []
    for k in keys:
        if expected.get(k) is None or (k == "model" and same_weights):
            continue
        if json.dumps(stored.get(k), default=str) != json.dumps(expected.get(k), default=str):
            bad.append(k)
    return bad


def check_identity(path: str | Path, stored: dict, expected: dict,
                   keys: Iterable[str] = IDENTITY) -> None:
    """Refuse stored activations made by another model/dtype/prompt/position than ``expected``.

    Raises:
        StoreError: naming the stored identity and the requested one.
    """
    keys = list(keys)
    bad = identity_mismatch(stored, expected, keys)
    if bad:
        raise StoreError(
            f"{path} holds activations of another configuration ({', '.join(bad)} differ): "
            f"stored [{describe_identity(stored, keys)}], this run [{describe_identity(expected, keys)}]"
            "; pass another --activations ROOT (nothing was read or overwritten)"
        )


class ChunkedStore:
    """A folder of finished chunks (``chunk-*.npz``, each with an ``ids`` array) for resumable runs.

    The manifest of the first chunk is the run's manifest; a later chunk whose manifest
    disagrees on the fields in ``identity`` (model, position rule, ...) is refused, so one folder
    never mixes activations of two configurations.
    """

    identity = IDENTITY

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def chunks(self) -> list[Path]:
        return sorted(self.folder.glob("chunk-*.npz")) if self.folder.is_dir() else []

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for chunk in self.chunks():
            done.update(str(i) for i in load_npz(chunk, ["ids"])[0]["ids"])
        return done

    def manifest(self) -> dict | None:
        chunks = self.chunks()
        return read_manifest(chunks[0]) if chunks else None

    def manifests(self) -> list[tuple[Path, dict]]:
        """``(chunk, manifest)`` of every chunk (manifests only: arrays are not read)."""
        return [(c, read_manifest(c)) for c in self.chunks()]

    def check_compatible(self, manifest: dict) -> None:
        """Refuse ``manifest`` unless every stored chunk has the same identity (IDENTITY).

        Raises:
            StoreError: naming both identities.
        """
        for chunk, existing in self.manifests():
            check_identity(chunk, existing, {k: manifest.get(k) for k in self.identity})

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
        for c, p in zip(self.chunks(), parts, strict=True):
            check_identity(c, p[1], parts[0][1])
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


def _timestamped_sibling(path: Path) -> Path:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    path = path.with_name(f"{path.name}-{stamp}")
    n = 1
    while path.exists():
        path = path.with_name(f"{path.name.rsplit('-r', 1)[0]}-r{n}")
        n += 1
    return path


def output_dir_for(path: str | Path, *, overwrite: bool = False, explicit: bool = False) -> Path:
    """The folder a run will write to, decided before any work and without creating it.

    A missing or empty folder is used as is, an existing one only with ``overwrite``. Otherwise
    an ``explicit`` folder (one the user named, e.g. ``--out DIR``) is an error, and a default one
    gets a sibling ``<name>-<UTC timestamp>`` (whose path should be printed to the user).

    Raises:
        StoreError: an explicit folder exists (or ``path`` is a file).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} exists and is not a folder; pass another --out")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        if explicit:
            raise StoreError(f"{path} exists; pass --overwrite or another --out")
        return _timestamped_sibling(path)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Write a whole folder atomically: yields a temporary sibling folder, renamed to ``path``
    when the block finishes; on an error it is deleted, so ``path`` is never half-written. An
    existing ``path`` is replaced only with ``overwrite`` (or when it is empty).

    Raises:
        StoreError: ``path`` exists, is not empty and ``overwrite`` is False.
        OSError: the parent folder cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise StoreError(f"{path} exists; pass --overwrite or another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fresh_output_dir(path: str | Path, overwrite: bool = False) -> Path:
    """The folder a run should write to, never silently replacing an earlier run's results.

    A missing or empty folder is used as is; an existing one only with ``overwrite``; otherwise a
    sibling ``<name>-<UTC timestamp>`` is created (and its path should be printed to the user).
    """
    path = output_dir_for(path, overwrite=overwrite)
    path.mkdir(parents=True, exist_ok=True)
    return path
