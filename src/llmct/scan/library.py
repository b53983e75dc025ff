"""A reference library for real-time monitoring: a few layers' reference vectors in one small
safetensors file (with the centring baseline and provenance)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from llmct.errors import StoreError


def save_library(path: str | Path, *, labels: list[str], layers: list[int], source: str,
                 references: np.ndarray, baseline: np.ndarray, provenance: dict,
                 overwrite: bool = False) -> Path:
    """``references [R, len(layers), D]``, ``baseline [len(layers), D]`` (float32)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; refusing to overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"labels": json.dumps(labels), "layers": json.dumps(layers), "source": source,
            "provenance": json.dumps(provenance, default=str)}
    tmp = path.with_suffix(".tmp")
    save_file({"references": torch.from_numpy(np.ascontiguousarray(references, np.float32)),
               "baseline": torch.from_numpy(np.ascontiguousarray(baseline, np.float32))},
              str(tmp), metadata=meta)
    tmp.replace(path)
    return path


class ReferenceLibrary:
    def __init__(self, labels, layers, source, references, baseline, provenance):
        self.labels, self.layers, self.source = labels, layers, source
        self.references, self.baseline, self.provenance = references, baseline, provenance

    @classmethod
    def load(cls, path: str | Path) -> ReferenceLibrary:
        path = Path(path)
        if not path.exists():
            raise StoreError(f"reference library {path} does not exist (create one with "
                             "`llmct scan SCENARIO --save-library PATH`)")
        from safetensors import SafetensorError, safe_open

        if path.is_dir():
            raise StoreError(f"reference library {path} is a folder, not a .safetensors file")
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise StoreError(f"{path} is not a readable reference library (truncated or not "
                             f"safetensors: {str(exc)[:120]}); create it again with `llmct scan "
                             "SCENARIO --save-library PATH`") from None
        try:
            return cls(json.loads(meta["labels"]), json.loads(meta["layers"]), meta["source"],
                       tensors["references"], tensors["baseline"],
                       json.loads(meta.get("provenance", "{}")))
        except KeyError as exc:
            raise StoreError(f"{path} is not an llmct reference library (missing {exc})") from exc

    def centred_unit_references(self) -> torch.Tensor:
        """``[L, R, D]`` unit vectors of references minus baseline, per hooked layer."""
        r = (self.references - self.baseline[None]).permute(1, 0, 2)
        return r / r.norm(dim=-1, keepdim=True).clamp_min(1e-12)
