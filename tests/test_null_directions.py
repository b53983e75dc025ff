"""llmct.emotion.null_directions, experiment 11's null (issue #16): random directions in the span
of the story activations, shuffled-label story vectors, and the experiment's null CSV columns
(the activity bootstrap of the ratings is tested in test_preferences.py)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from llmct.emotion.null_directions import shuffled_label_vectors, span_directions
from llmct.emotion.vectors import emotion_vectors, neutral_components
from llmct.errors import LLMCTError


def _rows(n=12, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(3, 0.5, d) + 5.0


def _residual_outside(span_rows: np.ndarray, vecs: np.ndarray) -> float:
    """Largest norm of the part of ``vecs`` outside the row space of ``span_rows``."""
    q, _ = np.linalg.qr(span_rows.T)
    return float(np.linalg.norm(vecs - (vecs @ q) @ q.T, axis=1).max())


def test_span_directions_lie_in_the_centred_span_with_the_requested_norm():
    rows = _rows(n=6, d=16)  # 6 rows: a 5-dim centred span inside 16 dims
    dirs = span_directions(rows, 25, seed=3, norm=7.5)
    assert dirs.shape == (25, 16) and dirs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 7.5, rtol=1e-5)
    centred = rows - rows.mean(0)
    assert _residual_outside(centred, dirs) < 1e-4
    assert _residual_outside(rows[:1], dirs[:1]) > 1.0  # not along the uncentred mean
    np.testing.assert_array_equal(dirs, span_directions(rows, 25, seed=3, norm=7.5))
    assert not np.allclose(dirs, span_directions(rows, 25, seed=4, norm=7.5))


def test_span_directions_equal_the_documented_draw_by_hand():
    """Direction k = sum_i g_ki (rows_i - mean), g ~ default_rng(seed).standard_normal, scaled."""
    rows = _rows(n=4, d=6, seed=7)
    g = np.random.default_rng(11).standard_normal((3, 4))
    by_hand = g @ (rows - rows.mean(0))
    by_hand *= 2.5 / np.linalg.norm(by_hand, axis=1, keepdims=True)
    np.testing.assert_allclose(span_directions(rows, 3, seed=11, norm=2.5), by_hand, rtol=1e-5)


def test_span_directions_remove_components_and_stay_in_the_projected_span():
    rows = _rows(n=10, d=16)
    comps, _ = neutral_components(_rows(n=40, d=16, seed=1), 0.5)
    dirs = span_directions(rows, 20, seed=0, norm=2.0, remove=comps)
    np.testing.assert_allclose(dirs @ comps.T, 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 2.0, rtol=1e-5)
    centred = rows - rows.mean(0)
    projected = centred - (centred @ comps.T) @ comps
    assert _residual_outside(projected, dirs) < 1e-4


def test_span_directions_errors():
    with pytest.raises(LLMCTError, match="m >= 2"):
        span_directions(np.ones((1, 4)), 3)
    with pytest.raises(LLMCTError, match="norm 0"):
        span_directions(np.ones((5, 4)), 3)
    with pytest.raises(LLMCTError, match="norm > 0"):
        span_directions(_rows(), 3, norm=0.0)


def test_shuffled_label_vectors_need_two_dimensional_activations():
    with pytest.raises(LLMCTError, match=r"\[n, d\] activations, got \(2, 3, 4\)"):
        shuffled_label_vectors(np.zeros((2, 3, 4)), ["a", "b"])


@pytest.fixture(scope="module")
def stories():
    rng = np.random.default_rng(0)
    labels = np.repeat(["joy", "fear", "anger", "calm"], 5)
    centres = {lab: rng.normal(size=16) * 4 for lab in set(labels)}
    acts = np.stack([centres[lab] + rng.normal(size=16) for lab in labels])
    return acts, labels, _rows(n=30, d=16, seed=2)


def test_shuffled_label_vectors_reproducible_per_seed_and_unlike_the_real_ones(stories):
    acts, labels, neutral = stories
    order = ["joy", "fear", "anger", "calm"]
    real = emotion_vectors(acts[:, None], labels, neutral[:, None], layers=[0],
                           order=order).projected[:, 0]
    a = shuffled_label_vectors(acts, labels, neutral, seed=5, order=order)
    assert a.shape == real.shape == (4, 16)
    np.testing.assert_array_equal(a, shuffled_label_vectors(acts, labels, neutral, seed=5,
                                                            order=order))
    assert not np.allclose(a, shuffled_label_vectors(acts, labels, neutral, seed=6, order=order))
    assert not np.allclose(a, real, atol=1e-3)
    # the same construction as 09's: emotion_vectors with the permuted labels
    perm = np.random.default_rng(5).permutation(len(labels))
    ref = emotion_vectors(acts[:, None], labels[perm], neutral[:, None], layers=[0],
                          order=order).projected[:, 0]
    np.testing.assert_allclose(a, ref, atol=1e-6)
    # centred over labels, neutral PCs projected out, like the real vectors
    np.testing.assert_allclose(a.sum(0), 0.0, atol=1e-4)
    comps, _ = neutral_components(neutral, 0.5)
    np.testing.assert_allclose(a @ comps.T, 0.0, atol=1e-4)
    # real vectors separate the labels far better than shuffled ones
    assert np.linalg.norm(real, axis=1).mean() > 2 * np.linalg.norm(a, axis=1).mean()


# -- the experiment on a tiny random chat model ------------------------------------------------

def _load_experiment():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "11_steering" / "run.py"
    spec = importlib.util.spec_from_file_location("exp_11_steering_null", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_chat_model():
    """A 2-layer random Llama sized to the embedded SmolLM2 tokenizer (ChatML template)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.tiny_models import embedded_tokenizer

    tok = embedded_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, tok
    torch.set_num_threads(before)


def _fake_store(monkeypatch, exp, tmp_path, d: int = 32):
    """Synthetic story activations for the real story labels, a library built from them, and
    ``story_vectors`` patched to return them (as 09's store would)."""
    from llmct.emotion.vectors import save_vector_library, story_stimuli

    stories, _ = story_stimuli("en")
    labels = [s.label for s in stories]
    order = list(dict.fromkeys(labels))
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(len(stories), 2, d)) + np.array(
        [rng.normal(size=(2, d)) for _ in order])[[order.index(x) for x in labels]]
    neutral = rng.normal(size=(32, 2, d))
    ev = emotion_vectors(acts, labels, neutral, layers=[0, 1], order=order)
    lib = save_vector_library(
        tmp_path / "lib.safetensors", ev.projected, order,
        dict(model="default", model_fingerprint="test", layers=[0, 1], method="synthetic",
             language="en", pooling="none", mean_from=50, neutral_variance=0.5))
    monkeypatch.setattr(exp, "story_vectors", lambda *a, **k: (
        ev, SimpleNamespace(acts={"hidden_out": acts}),
        SimpleNamespace(acts={"hidden_out": neutral})))
    (tmp_path / "store").mkdir()
    return lib


def test_experiment_11_null_and_ci_unit_columns(tiny_chat_model, monkeypatch, tmp_path):
    exp = _load_experiment()
    monkeypatch.setattr(exp, "load_model_from_args", lambda args: tiny_chat_model)
    lib = _fake_store(monkeypatch, exp, tmp_path)
    out = tmp_path / "out"
    args = ["--vectors", str(lib), "--stories", str(tmp_path / "store"), "--emotions", "angry",
            "sad", "--alphas", "0.5", "--pairs-per-activity", "1", "--max-pairs", "6",
            "--norm-texts", "1", "--fluency-texts", "1", "--sample-tokens", "2", "--n-boot", "20",
            "--elo-orders", "2", "--null-directions", "3", "--null-shuffles", "2", "--no-progress",
            "--out", str(out)]
    assert exp.main(args) == 0
    table = pd.read_csv(out / "category_ratings.csv")
    for col in ("ci_unit", "label_mass", "position_bias", "delta_lo", "excess_hi"):
        assert col in table.columns
    assert table.ci_unit.str.startswith("activities").all()
    conds = pd.read_csv(out / "conditions.csv")
    for col in ("label_mass_lo", "label_mass_hi", "position_bias_lo", "position_bias_hi",
                "ci_unit"):
        assert col in conds.columns
    assert (conds.label_mass_lo <= conds.label_mass_hi).all()
    assert "ci_unit" in pd.read_csv(out / "effect_sizes.csv").columns
    nd = pd.read_csv(out / "null_directions.csv")
    assert set(nd.null_kind) == {"in-span", "shuffled-label"}
    assert nd.condition.nunique() == 5 and set(nd.alpha) == {0.5}
    for col in ("label_mass", "position_bias", "lm_loss_neutral", "vector_norm",
                "max_abs_cos_emotions", "method", "category", "delta"):
        assert col in nd.columns
    summary = pd.read_csv(out / "null_summary.csv")
    assert set(summary.method) == {"elo", "bt", "elo-hard"}
    assert set(summary.null) == {"in-span", "shuffled-label", "all"}
    assert set(summary.condition) == {"angry@0.5", "sad@0.5", "random0@0.5"}
    for col in ("delta", "null_lo", "null_hi", "abs_percentile", "p_abs", "label_mass",
                "position_bias", "null_label_mass_median", "ci_unit"):
        assert col in summary.columns
    assert summary.p_abs.between(0, 1).all() and (summary.null_lo <= summary.null_hi).all()
    # the emotions' point changes in the null table equal category_ratings'
    a = summary[(summary.null == "all") & (summary.category == "helpful")].set_index(
        ["method", "condition"]).delta
    b = table[table.category == "helpful"].set_index(["method", "condition"]).delta
    np.testing.assert_allclose(a, b.loc[a.index], atol=1e-9)
    assert (out / "null_shift.png").exists() and (out / "null_shift.svg").exists()
