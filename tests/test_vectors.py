"""Emotion vectors: pooling, centring, neutral-PC projection, caching and the vector library."""

import numpy as np
import pytest
import torch

from llmct.emotion.vectors import (
    default_layer,
    emotion_vectors,
    load_vector_library,
    neutral_components,
    pooled_activations,
    project_out,
    save_vector_library,
    story_activations,
)
from llmct.errors import CaptureError, StoreError
from tests.tiny_models import VOCAB, tiny_model


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


def seqs(n, lo, hi, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, VOCAB, size=int(rng.integers(lo, hi))).tolist() for _ in range(n)]


def test_default_layer():
    assert default_layer(30) == 19 and default_layer(1) == 0 and default_layer(4) == 2
    with pytest.raises(ValueError):
        default_layer(0)


def test_pooled_activations_match_hf_mean_from(llama):
    items = seqs(3, 12, 20)
    acts, n_tok = pooled_activations(llama, None, items, mean_from=5, batch_size=2)
    assert acts.shape == (3, 3, 64) and list(n_tok) == [len(s) for s in items]
    for i, s in enumerate(items):
        with torch.no_grad():
            hs = llama(torch.tensor([s]), output_hidden_states=True).hidden_states
        for layer in range(2):  # hidden_states[-1] is after the final norm: compare the others
            ref = hs[layer + 1][0, 5:].mean(0).numpy()
            np.testing.assert_allclose(acts[i, layer], ref, atol=1e-5)


def test_mean_from_rejects_short_inputs_by_name(llama):
    with pytest.raises(CaptureError, match=r"mean_from=10.*story-b \(8 tokens\)"):
        pooled_activations(llama, None, [list(range(3, 20)), list(range(3, 11))], mean_from=10,
                           names=["story-a", "story-b"])


def test_neutral_components_and_exact_projection():
    rng = np.random.default_rng(0)
    scales = np.array([10.0, 6.0, 1, 1, 1, 1, 1, 1])
    neutral = rng.normal(size=(200, 8)) * scales + 50.0  # offset: must not become a component
    comps, explained = neutral_components(neutral, 0.5)
    assert len(comps) == 1 and explained >= 0.5
    assert abs(comps[0, 0]) > 0.99
    comps2, explained2 = neutral_components(neutral, 0.8)
    assert len(comps2) == 2 and explained2 >= 0.8
    V = rng.normal(size=(5, 8))
    P = project_out(V, comps2)
    np.testing.assert_allclose(P @ comps2.T, 0, atol=1e-6)
    np.testing.assert_allclose(project_out(P, comps2), P, atol=1e-6)  # idempotent
    with pytest.raises(ValueError):
        neutral_components(neutral, 0.0)


def test_emotion_vectors_centre_and_project_per_layer():
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(12, 2, 6)) + 3.0
    labels = ["a", "b", "c"] * 4
    neutral = rng.normal(size=(20, 2, 6)) * np.array([5, 1, 1, 1, 1, 1])
    ev = emotion_vectors(acts, labels, neutral, layers=[4, 7], order=["c", "a", "b"])
    assert ev.labels == ["c", "a", "b"] and ev.counts == {"c": 4, "a": 4, "b": 4}
    np.testing.assert_allclose(ev.means[1], acts[0::3].mean(0), rtol=1e-5)  # "a"
    np.testing.assert_allclose(ev.centred.sum(axis=0), 0, atol=1e-5)
    for j in range(2):
        comps, _ = neutral_components(neutral[:, j])
        assert len(comps) == ev.n_components[j]
        np.testing.assert_allclose(ev.projected[:, j] @ comps.T, 0, atol=1e-5)
    np.testing.assert_allclose(ev.at(7, "centred"), ev.centred[:, 1])
    none = emotion_vectors(acts, labels, None, layers=[4, 7])
    np.testing.assert_allclose(none.projected, none.centred)


def test_story_activations_cache_and_resume(llama, tmp_path):
    texts = seqs(4, 10, 16, seed=3)
    stimuli = [(f"s{i}", " ".join(map(str, t))) for i, t in enumerate(texts)]

    class Tok:  # the texts are space-separated token ids
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [int(x) for x in text.split()]}

    calls = []

    def load():
        calls.append(1)
        return llama, Tok()

    first = story_activations(tmp_path, stimuli[:2], load=load, mean_from=4, progress=False)
    both = story_activations(tmp_path, stimuli, load=load, mean_from=4, progress=False)
    assert len(calls) == 2 and both.ids == ["s0", "s1", "s2", "s3"]
    np.testing.assert_allclose(both.acts["hidden_out"][:2], first.acts["hidden_out"])
    again = story_activations(tmp_path, stimuli, load=None, mean_from=4)  # all cached
    np.testing.assert_allclose(again.acts["hidden_out"], both.acts["hidden_out"])
    assert again.manifest["position"] == "mean(from=4)"
    with pytest.raises(StoreError, match="position differ"):
        story_activations(tmp_path, stimuli, load=None, mean_from=3)


def test_story_store_of_another_model_is_refused_before_reading(llama, tmp_path):
    """A finished story store is checked on every read: another model's name is refused, naming
    both identities, and nothing is loaded (issue: a store can never mix models)."""
    stimuli = [(f"s{i}", " ".join(map(str, t))) for i, t in enumerate(seqs(2, 10, 14, seed=5))]

    class Tok:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [int(x) for x in text.split()]}

    story_activations(tmp_path, stimuli, load=lambda: (llama, Tok()), mean_from=4,
                      model_name="tiny-a", progress=False)

    def must_not_load():
        raise AssertionError("the model was loaded before the store was checked")

    with pytest.raises(StoreError, match=r"model differ.*model=tiny-a.*model=tiny-b"):
        story_activations(tmp_path, stimuli, load=must_not_load, mean_from=4,
                          model_name="tiny-b")


def _meta():
    return {"model": "tiny", "model_fingerprint": "abc", "layers": [0, 2], "method": "test",
            "language": "en", "pooling": "mean from 50"}


def test_vector_library_round_trip_and_no_overwrite(tmp_path):
    vecs = np.random.default_rng(0).normal(size=(3, 2, 5)).astype(np.float32)
    path = tmp_path / "lib.safetensors"
    extras = {"baseline": np.ones((2, 5))}
    save_vector_library(path, vecs, ["joy", "fear", "calm"], _meta(), extras=extras)
    lib = load_vector_library(path)
    assert lib.labels == ["joy", "fear", "calm"] and lib.layers == [0, 2]
    np.testing.assert_array_equal(lib.vectors, vecs)
    np.testing.assert_array_equal(lib.extras["baseline"], np.ones((2, 5), np.float32))
    assert lib.meta["model_fingerprint"] == "abc" and lib.meta["pooling"] == "mean from 50"
    np.testing.assert_array_equal(lib.vector("fear", 2), vecs[1, 1])
    with pytest.raises(KeyError):
        lib.layer(1)
    with pytest.raises(StoreError, match="refusing to overwrite"):
        save_vector_library(path, vecs * 0, ["joy", "fear", "calm"], _meta())
    np.testing.assert_array_equal(load_vector_library(path).vectors, vecs)  # untouched
    save_vector_library(path, vecs * 0, ["joy", "fear", "calm"], _meta(), overwrite=True)
    assert not load_vector_library(path).vectors.any()
    assert [p.name for p in tmp_path.iterdir()] == ["lib.safetensors"]  # no temp files left


def test_vector_library_rejects_bad_input(tmp_path):
    vecs = np.zeros((2, 2, 3))
    bad_meta = {k: v for k, v in _meta().items() if k != "model_fingerprint"}
    with pytest.raises(StoreError, match="model_fingerprint"):
        save_vector_library(tmp_path / "a.safetensors", vecs, ["a", "b"], bad_meta)
    with pytest.raises(StoreError, match="labels"):
        save_vector_library(tmp_path / "a.safetensors", vecs, ["a", "a"], _meta())
    with pytest.raises(StoreError, match="layers"):
        save_vector_library(tmp_path / "a.safetensors", np.zeros((2, 3, 3)), ["a", "b"], _meta())
    with pytest.raises(StoreError, match="NaN"):
        save_vector_library(tmp_path / "a.safetensors", vecs * np.nan, ["a", "b"], _meta())
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(StoreError, match="not an llmct vector library"):
        load_vector_library(tmp_path / "foreign.safetensors")
    with pytest.raises(StoreError, match="does not exist"):
        load_vector_library(tmp_path / "missing.safetensors")


@pytest.mark.integration
def test_experiment_09_quick_run(tmp_path):
    """09's main() end to end on two emotions, two stories each, into tmp_path."""
    import importlib.util
    from pathlib import Path

    import pandas as pd

    path = Path(__file__).resolve().parents[1] / "experiments" / "09_emotion_vectors" / "run.py"
    spec = importlib.util.spec_from_file_location("exp09", path)
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    out = tmp_path / "out"
    assert exp.main(["--emotions", "happy", "sad", "--limit", "2", "--n-perm", "50", "--out",
                     str(out), "--activations", str(tmp_path / "acts"), "--no-progress"]) == 0
    lib = load_vector_library(out / "emotion_vectors_en.safetensors")
    assert lib.labels == ["happy", "sad"] and lib.vectors.shape == (2, 30, 576)
    assert lib.meta["language"] == "en" and lib.meta["counts"] == {"happy": 2, "sad": 2}
    np.testing.assert_allclose(lib.vectors.sum(axis=0), 0, atol=1e-4)  # centred
    lens = pd.read_csv(out / "logit_lens.csv")
    assert set(lens.side) == {"top", "bottom"} and set(lens.emotion) == {"happy", "sad"}
    assert (out / "cosine_clustered.png").exists()
    with pytest.raises(Exception, match="refusing to overwrite"):
        exp.main(["--emotions", "happy", "sad", "--limit", "2", "--out", str(out),
                  "--activations", str(tmp_path / "acts")])
