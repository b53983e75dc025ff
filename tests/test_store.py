import numpy as np
import pytest

from llmct.errors import StoreError
from llmct.store import ChunkedStore, base_manifest, load_npz, save_npz


def test_roundtrip_and_no_overwrite(tmp_path):
    path = tmp_path / "acts.npz"
    arrays = {"hidden_out": np.arange(12, dtype=np.float32).reshape(2, 2, 3), "ids": np.array(["a", "b"])}
    save_npz(path, arrays, base_manifest(model="m"))
    loaded, manifest = load_npz(path)
    assert manifest["model"] == "m" and "llmct_version" in manifest and "created" in manifest
    np.testing.assert_array_equal(loaded["hidden_out"], arrays["hidden_out"])
    with pytest.raises(StoreError, match="refusing to overwrite"):
        save_npz(path, arrays, {})
    save_npz(path, {"x": np.zeros(1)}, {}, overwrite=True)
    assert list(load_npz(path)[0]) == ["x"]
    assert [p.name for p in tmp_path.iterdir()] == ["acts.npz"]  # no temp files left behind


def test_object_arrays_refused_and_pickle_never_loaded(tmp_path):
    with pytest.raises(StoreError, match="object"):
        save_npz(tmp_path / "a.npz", {"x": np.array([{"a": 1}], dtype=object)}, {})
    np.savez(tmp_path / "evil.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(StoreError):
        load_npz(tmp_path / "evil.npz")


def test_foreign_file_is_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros(2))
    with pytest.raises(StoreError, match="manifest"):
        load_npz(tmp_path / "plain.npz")


def test_chunked_resume_and_merge(tmp_path):
    store = ChunkedStore(tmp_path / "run")
    man = {"model": "m", "position": "last"}
    store.add(["b", "c"], {"h": np.array([[2.0], [3.0]])}, man)
    store.add(["a"], {"h": np.array([[1.0]])}, man)
    assert store.done_ids() == {"a", "b", "c"}
    merged, manifest = store.merge(order=["a", "b", "c"])
    assert merged["ids"].tolist() == ["a", "b", "c"] and merged["h"][:, 0].tolist() == [1, 2, 3]
    with pytest.raises(StoreError, match="position"):
        store.add(["d"], {"h": np.array([[4.0]])}, {"model": "m", "position": "mean"})
    with pytest.raises(StoreError, match="not extracted"):
        store.merge(order=["a", "z"])
