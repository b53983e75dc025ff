import numpy as np
import pytest

from llmct.errors import StoreError
from llmct.io.store import ChunkedStore, base_manifest, load_npz, save_npz


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


def test_every_chunk_is_checked_and_both_identities_are_named(tmp_path):
    from llmct.io.store import check_identity, identity_mismatch

    store = ChunkedStore(tmp_path / "run")
    man = {"model": "m", "model_fingerprint": "f1", "dtype": "float32", "position": "last"}
    store.add(["a"], {"h": np.zeros((1, 1))}, man)
    save_npz(tmp_path / "run" / "chunk-00001.npz", {"ids": np.array(["b"]), "h": np.zeros((1, 1))},
             {**man, "dtype": "bfloat16"})  # a foreign chunk after a good first one
    with pytest.raises(StoreError, match=r"chunk-00001\.npz holds activations of another "
                       r"configuration \(dtype differ\): stored \[.*dtype=bfloat16.*\], this run "
                       r"\[.*dtype=float32"):
        store.check_compatible(man)
    with pytest.raises(StoreError, match="dtype differ"):
        store.merge()
    # the same weights under another name are the same model; unknown fields are not compared
    assert identity_mismatch(man, {**man, "model": "/local/copy"}) == []
    assert identity_mismatch(man, {"model": "m", "model_fingerprint": None}) == []
    assert identity_mismatch(man, {**man, "model": "x", "model_fingerprint": "f2"}) == [
        "model", "model_fingerprint"]
    check_identity("p", man, {"dtype": "float32"})


def test_truncated_and_corrupt_files_name_the_chunk_and_the_way_out(tmp_path):
    from llmct.io.store import read_manifest

    path = save_npz(tmp_path / "chunk-00000.npz", {"ids": np.array(["a"])}, {"model": "m"})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(StoreError, match=r"chunk-00000\.npz: truncated or corrupt file .*delete "
                       "this chunk and run again"):
        read_manifest(path)
    np.savez(tmp_path / "x.npz", __manifest__=np.array("[1, 2]"))
    with pytest.raises(StoreError, match=r"x\.npz: corrupt manifest \(not a JSON object\)$"):
        load_npz(tmp_path / "x.npz")
    with pytest.raises(StoreError, match="is not a file"):
        read_manifest(tmp_path)


def test_atomic_dir_and_output_dir_rules(tmp_path):
    from llmct.io.store import atomic_dir, output_dir_for

    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.csv").write_text("x")
            raise RuntimeError("failed mid-way")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy
    with atomic_dir(target) as tmp:
        (tmp / "a.csv").write_text("1")
    assert [p.name for p in target.iterdir()] == ["a.csv"]
    with pytest.raises(StoreError, match="exists; pass --overwrite or another --out"):
        with atomic_dir(target):
            pass
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "b.csv").write_text("2")
    assert [p.name for p in target.iterdir()] == ["b.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert output_dir_for(tmp_path / "new", explicit=True) == tmp_path / "new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is not a folder"):
        output_dir_for(tmp_path / "file")
