"""Steering hooks: identity at alpha 0, cleanup, exact added norm, KV-cache and padding invariance."""

import numpy as np
import pytest
import torch

from llmct.core.arch import get_adapter
from llmct.core.capture import capture, pad_batch, position_ids_from_mask
from llmct.core.hooks import Hooks, count_hooks
from llmct.core.steering import (
    mean_residual_norm,
    random_direction,
    steer,
    steer_copies,
    steer_positions,
    steer_rows,
)
from llmct.errors import LLMCTError
from tests.tiny_models import random_token_batches, tiny_model

LAYER = 1
SCALE = 4.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


def _direction(model, seed=3):
    return random_direction(model.config.hidden_size, seed)


def _logits(model, seqs, side="left"):
    ids, mask = pad_batch(seqs, 0, side)
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                     use_cache=False).logits, mask


def _greedy(model, seqs, n_new=8, use_cache=True):
    ids, mask = pad_batch(seqs, 0, "left")
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n_new,
                             min_new_tokens=n_new, do_sample=False, use_cache=use_cache,
                             pad_token_id=0, eos_token_id=None, temperature=None, top_p=None,
                             top_k=None, output_scores=True, return_dict_in_generate=True)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.scores, 1)


def test_alpha_zero_is_identity(llama):
    seqs = random_token_batches(4)
    ref, _ = _logits(llama, seqs)
    with steer(llama, _direction(llama), LAYER, alpha=0.0, scale=SCALE):
        got, _ = _logits(llama, seqs)
    assert torch.equal(ref, got)


def test_hooks_removed_even_after_exception(llama):
    before = count_hooks(llama)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(llama, _direction(llama), LAYER, alpha=1.0, scale=SCALE):
            assert count_hooks(llama) == before + 2
            raise RuntimeError("boom")
    assert count_hooks(llama) == before
    ref, _ = _logits(llama, random_token_batches(2))
    assert torch.isfinite(ref).all()


@pytest.mark.parametrize("kind", ["llama", "gpt2", "gemma2"])
def test_added_vector_has_requested_norm_at_every_real_token(kind):
    model = tiny_model(kind)
    seqs = random_token_batches(4)
    kw = dict(sources=("hidden_out",), layers=[LAYER - 1, LAYER], position=[
        list(range(len(s))) for s in seqs], padding_side="left", batch_size=4)
    ref = capture(model, None, seqs, **kw)["hidden_out"]
    alpha = -0.7
    with steer(model, _direction(model), LAYER, alpha=alpha, scale=SCALE) as added:
        got = capture(model, None, seqs, **kw)["hidden_out"]
    assert added.norm().item() == pytest.approx(abs(alpha) * SCALE, rel=1e-6)
    np.testing.assert_array_equal(got[:, 0], ref[:, 0])  # the layer before is untouched
    diff = got[:, 1] - ref[:, 1]
    np.testing.assert_allclose(diff, np.broadcast_to(added.numpy(), diff.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(diff, axis=-1), abs(alpha) * SCALE, rtol=1e-5)


def test_start_steers_only_later_positions(llama):
    seqs = random_token_batches(3, lo=8)
    kw = dict(sources=("hidden_out",), layers=[LAYER], position=[list(range(len(s))) for s in seqs],
              padding_side="left")
    ref = capture(llama, None, seqs, **kw)
    with steer(llama, _direction(llama), LAYER, alpha=1.0, scale=SCALE, start=5):
        got = capture(llama, None, seqs, **kw)
    pos = np.concatenate([np.arange(len(s)) for s in seqs])
    changed = np.abs(got["hidden_out"] - ref["hidden_out"]).max(axis=(1, 2)) > 1e-4
    np.testing.assert_array_equal(changed, pos >= 5)


def test_steer_positions_ignores_padding_and_counts_past():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 0, 0, 1, 1]])
    got = steer_positions(mask, 3, past_len=2, start=1)
    expected = torch.tensor([[True, True, True], [True, True, True], [False, True, True]])
    # row 0: real positions 0,1,2 in the last three columns -> 0 is before start
    expected[0, 0] = False
    assert torch.equal(got, expected)
    assert steer_positions(None, 4, past_len=0, start=0) is None
    assert steer_positions(None, 2, past_len=3, start=4).tolist() == [[False, True]]


@pytest.mark.parametrize("start", [0, 6])
def test_generation_with_cache_equals_without_cache_under_steering(llama, start):
    seqs = random_token_batches(3, lo=5, hi=9)
    with steer(llama, _direction(llama), LAYER, alpha=2.0, scale=SCALE, start=start):
        cached, s_cached = _greedy(llama, seqs, use_cache=True)
        full, s_full = _greedy(llama, seqs, use_cache=False)
    plain, _ = _greedy(llama, seqs)
    assert torch.equal(cached, full)
    torch.testing.assert_close(s_cached, s_full, atol=1e-4, rtol=1e-4)
    assert not torch.equal(cached, plain)  # steering does change what is generated


@pytest.mark.parametrize("kind", ["llama", "gpt2", "mistral_sw", "gemma3"])
def test_batched_left_padded_steered_generation_equals_per_prompt(kind):
    model = tiny_model(kind)
    seqs = random_token_batches(4, lo=3, hi=12)
    assert len({len(s) for s in seqs}) > 1  # real padding
    with steer(model, _direction(model), LAYER, alpha=2.0, scale=SCALE, start=2):
        batched, s_batched = _greedy(model, seqs)
        singles = [_greedy(model, [s]) for s in seqs]
    for b, (tokens, scores) in enumerate(singles):
        assert torch.equal(batched[b], tokens[0])
        torch.testing.assert_close(s_batched[b], scores[0], atol=1e-4, rtol=1e-4)


def test_bad_direction_and_layer_are_clear_errors(llama):
    with pytest.raises(LLMCTError, match="norm"):
        with steer(llama, np.zeros(llama.config.hidden_size), LAYER, alpha=1.0):
            pass
    with pytest.raises(LLMCTError, match="dims"):
        with steer(llama, np.ones(7), LAYER, alpha=1.0):
            pass
    with pytest.raises(LLMCTError, match="out of range"):
        with steer(llama, _direction(llama), 99, alpha=1.0):
            pass
    assert count_hooks(llama) == 0


def test_mean_residual_norm_matches_hf_hidden_states(llama):
    seqs = random_token_batches(3)
    got = mean_residual_norm(llama, None, seqs, LAYER, mean_from=1, batch_size=2)
    norms = []
    with torch.inference_mode():
        for s in seqs:
            hs = llama(torch.tensor([s]), output_hidden_states=True).hidden_states[LAYER + 1]
            norms.append(hs[0, 1:].norm(dim=-1))
    assert got == pytest.approx(torch.cat(norms).mean().item(), rel=1e-5)
    both = mean_residual_norm(llama, None, seqs, [0, LAYER], mean_from=1)
    assert both.shape == (2,) and both[1] == pytest.approx(got, rel=1e-5)


CONDITIONS = [(0.0, 3), (1.0, 4), (2.5, 5)]  # (alpha, direction seed): unsteered first


def _conditions(model):
    return ([random_direction(model.config.hidden_size, seed) for _, seed in CONDITIONS],
            [alpha for alpha, _ in CONDITIONS])


def _one_at_a_time(model, run, start=0):
    dirs, alphas = _conditions(model)
    out = []
    for direction, alpha in zip(dirs, alphas, strict=True):
        with steer(model, direction, LAYER, alpha=alpha, scale=SCALE, start=start):
            out.append(run())
    return out


@pytest.mark.parametrize("kind", ["llama", "gemma3", "olmo2", "gpt2", "gpt_neox"])
@pytest.mark.parametrize("start", [0, 3])
def test_steer_copies_equals_one_condition_at_a_time(kind, start):
    model = tiny_model(kind)
    seqs = random_token_batches(4)
    refs = _one_at_a_time(model, lambda: _logits(model, seqs)[0], start)
    dirs, alphas = _conditions(model)
    with steer_copies(model, dirs, LAYER, alphas, scale=SCALE, start=start) as added:
        got, _ = _logits(model, seqs)
    assert added.shape == (3, model.config.hidden_size)
    got = got.reshape(3, len(seqs), *got.shape[1:])
    for c, ref in enumerate(refs):
        torch.testing.assert_close(got[c], ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(refs[1], refs[0], atol=1e-3)  # the conditions do differ


def test_steer_copies_runs_the_blocks_up_to_the_layer_once(llama):
    seqs = random_token_batches(4)
    rows: dict[int, int] = {}
    blocks = get_adapter(llama).block_list(llama)
    dirs, alphas = _conditions(llama)
    with Hooks() as hooks:
        for k in range(len(blocks)):
            hooks.read(get_adapter(llama).site(llama, "hidden_in", k),
                       lambda h, k=k: rows.__setitem__(k, h.shape[0]))
        with steer_copies(llama, dirs, LAYER, alphas, scale=SCALE):
            _logits(llama, seqs)
    assert rows == {k: len(seqs) * (3 if k > LAYER else 1) for k in range(len(blocks))}


def test_steer_copies_kv_cache_continuation_equals_one_at_a_time(llama):
    """A prefix cached inside steer_copies and extended by a left-padded batch (rows repeated as
    ``batch_repeat_interleave`` does) gives each condition's one-at-a-time logits."""
    prefix = [5, 9, 17, 33, 2, 8]
    tails = random_token_batches(3, lo=2, hi=6)

    def run():
        with torch.inference_mode():
            out = llama(input_ids=torch.tensor([prefix]), use_cache=True)
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(tails))
            ids, mask = pad_batch(tails, 0, "left")
            full = torch.cat([torch.ones((len(tails), len(prefix)), dtype=torch.long), mask], 1)
            pos = position_ids_from_mask(full)[:, -ids.shape[1]:]
            return llama(input_ids=ids, attention_mask=full, position_ids=pos,
                         past_key_values=cache, use_cache=True).logits[:, -1]

    refs = _one_at_a_time(llama, run)
    dirs, alphas = _conditions(llama)
    with steer_copies(llama, dirs, LAYER, alphas, scale=SCALE):
        got = run().reshape(3, len(tails), -1)
    for c, ref in enumerate(refs):
        torch.testing.assert_close(got[c], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_steer_rows_equals_each_row_steered_alone(kind):
    model = tiny_model(kind)
    seq = random_token_batches(1)[0]
    refs = _one_at_a_time(model, lambda: _logits(model, [seq])[0][0])
    dirs, alphas = _conditions(model)
    with steer_rows(model, dirs, LAYER, alphas, scale=SCALE) as added:
        got, _ = _logits(model, [seq] * 3)
        with pytest.raises(LLMCTError, match="a forward of 2 rows for 3 conditions"):
            _logits(model, [seq] * 2)
    assert added.shape == (3, model.config.hidden_size)
    for c, ref in enumerate(refs):
        torch.testing.assert_close(got[c], ref, atol=1e-5, rtol=1e-5)


def test_steer_copies_and_rows_errors(llama):
    dirs, alphas = _conditions(llama)
    for ctx in (steer_copies, steer_rows):
        with pytest.raises(LLMCTError, match="one alpha per direction"):
            with ctx(llama, dirs, LAYER, alphas[:2]):
                pass
        with pytest.raises(LLMCTError, match="one alpha per direction"):
            with ctx(llama, [], LAYER, []):
                pass
        with pytest.raises(LLMCTError, match="norm 0"):
            with ctx(llama, [np.zeros(64)], LAYER, [1.0]):
                pass
        with pytest.raises(LLMCTError, match="start must be >= 0"):
            with ctx(llama, dirs, LAYER, alphas, start=-1):
                pass
    before = count_hooks(llama)
    with pytest.raises(RuntimeError, match="boom"):
        with steer_copies(llama, dirs, LAYER, alphas):
            raise RuntimeError("boom")
    assert count_hooks(llama) == before


def _load_experiment():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "11_steering" / "run.py"
    spec = importlib.util.spec_from_file_location("exp_11_steering", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_experiment_11_end_to_end(embedded, tmp_path, capsys):
    import pandas as pd

    from llmct.emotion.vectors import save_vector_library

    exp = _load_experiment()
    assert exp.main(["--vectors", str(tmp_path / "missing.safetensors"),
                     "--out", str(tmp_path / "none")]) == 2
    assert "Run experiment 09 first" in capsys.readouterr().err
    model, _ = embedded
    d = model.config.hidden_size
    rng = np.random.default_rng(0)
    lib = save_vector_library(
        tmp_path / "lib.safetensors", rng.standard_normal((2, 1, d)), ["angry", "calm"],
        dict(model="default", model_fingerprint="test", layers=[19], method="random",
             language="en", pooling="none"))
    out = tmp_path / "out"
    args = ["--vectors", str(lib), "--emotions", "angry", "--alphas", "0.5",
            "--pairs-per-activity", "1", "--max-pairs", "4", "--threads", "1",
            "--norm-texts", "1", "--fluency-texts", "1",
            "--sample-tokens", "4", "--n-boot", "20", "--elo-orders", "2", "--no-progress",
            "--null-directions", "0", "--null-shuffles", "0", "--out", str(out)]
    assert exp.main(args) == 0
    serial = tmp_path / "serial"  # one condition per forward: the same tables
    assert exp.main([*args[:-1], str(serial), "--no-batch-conditions"]) == 0
    for name in ("choices.csv", "conditions.csv", "samples.csv", "category_ratings.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(serial / name),
                                      rtol=1e-5)
    table = pd.read_csv(out / "category_ratings.csv")
    assert set(table.condition) == {"baseline", "angry@0.5", "random0@0.5"}
    assert set(table.category) == {"helpful", "engaging", "social", "self-curiosity", "neutral",
                                   "misaligned", "aversive", "unsafe"}
    assert (table[table.condition == "baseline"].delta.abs() < 1e-9).all()
    assert (table.delta_lo <= table.delta_hi).all() and (table.lo <= table.hi).all()
    emo = table[table.condition == "angry@0.5"]
    assert emo.excess.notna().all() and table[table.kind == "random"].excess.isna().all()
    conds = pd.read_csv(out / "conditions.csv").set_index("condition")
    assert conds.label_mass.between(0, 1).all()
    assert conds.loc["angry@0.5", "added_norm"] == pytest.approx(conds.loc["random0@0.5", "added_norm"])
    choices = pd.read_csv(out / "choices.csv")
    assert len(choices) == 3 * 4 and choices.p_i.between(0, 1).all()
    assert len(pd.read_csv(out / "samples.csv")) == 3
    for stem in ("category_deltas", "category_excess"):
        assert (out / f"{stem}.png").exists() and (out / f"{stem}.svg").exists()
    with pytest.raises(LLMCTError, match="refusing to overwrite"):
        exp.main(args)
