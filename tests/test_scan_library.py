"""llmct.scan.library: the monitor's reference library round-trips through one small safetensors
file, is never silently overwritten, refuses files that are not a library, and centres and
normalises its references as documented."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from llmct.errors import StoreError
from llmct.scan.library import ReferenceLibrary, save_library


def _arrays(n_refs=3, n_layers=2, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n_refs, n_layers, d)).astype(np.float32),
            rng.normal(size=(n_layers, d)).astype(np.float32))


def _save(path, refs, base, **kw):
    labels = ["joy", "sadness", "fear", "anger", "trust", "disgust", "surprise", "calm",
              "anticipation"][:len(refs)]
    return save_library(path, labels=labels, layers=list(range(1, refs.shape[1] + 1)),
                        source="hidden_in", references=refs, baseline=base, **kw)


def test_library_roundtrip_size_and_no_overwrite(tmp_path):
    refs, base = _arrays(n_refs=9, n_layers=6, d=2048)
    path = _save(tmp_path / "lib.safetensors", refs, base, provenance={"model": "x", "n": 3})
    back = ReferenceLibrary.load(path)
    assert back.labels[:2] == ["joy", "sadness"] and back.layers == [1, 2, 3, 4, 5, 6]
    assert back.source == "hidden_in" and back.provenance == {"model": "x", "n": 3}
    assert torch.equal(back.references, torch.from_numpy(refs))
    assert torch.equal(back.baseline, torch.from_numpy(base))
    # nine references x six layers x 2048 dims in fp32 stays under 1 MB (the seed's claim)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(StoreError, match="lib.safetensors already exists; refusing to overwrite"):
        _save(path, *_arrays(), provenance={})
    assert ReferenceLibrary.load(path).references.shape == (9, 6, 2048)  # left as it was
    _save(path, *_arrays(), provenance={}, overwrite=True)
    assert ReferenceLibrary.load(path).references.shape == (3, 2, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["lib.safetensors"]  # no temporary file left
    with pytest.raises(StoreError, match="does not exist"):
        ReferenceLibrary.load(tmp_path / "none.safetensors")


def test_centred_unit_references_by_hand(tmp_path):
    refs, base = _arrays(n_refs=3, n_layers=2, d=8, seed=1)
    lib = ReferenceLibrary.load(_save(tmp_path / "lib.safetensors", refs, base, provenance={}))
    got = lib.centred_unit_references().numpy()
    assert got.shape == (2, 3, 8)  # [layers, references, d]
    for layer in range(2):
        for r in range(3):
            v = refs[r, layer] - base[layer]
            np.testing.assert_allclose(got[layer, r], v / np.linalg.norm(v), rtol=1e-5)


def test_files_that_are_not_a_library_are_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder, not a .safetensors file"):
        ReferenceLibrary.load(tmp_path)
    foreign = tmp_path / "weights.safetensors"
    save_file({"references": torch.zeros(1, 1, 2), "baseline": torch.zeros(1, 2)}, str(foreign),
              metadata={"layers": json.dumps([0]), "source": "hidden_in"})
    with pytest.raises(StoreError, match=r"not an llmct reference library \(missing 'labels'\)"):
        ReferenceLibrary.load(foreign)
    text = tmp_path / "notes.safetensors"
    text.write_text("not a tensor file")
    with pytest.raises(StoreError, match="not a readable reference library"):
        ReferenceLibrary.load(text)
