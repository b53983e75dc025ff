"""llmct.core.runner: tokenising (text stays text), token-id and context checks that name the
item, padding and position ids from the mask (a padded forward equals the unpadded one), pad ids,
sliding windows and KV-cache copies."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from llmct.core import runner
from llmct.core.runner import (
    cache_is_croppable,
    check_id_tensor,
    check_token_ids,
    context_length,
    fresh_cache,
    pad_batch,
    pad_id,
    position_ids_from_mask,
    prepare,
    sliding_window,
    tokenize,
    vocab_size,
)
from llmct.errors import CaptureError
from tests.tiny_models import CONFIGS, VOCAB, embedded_tokenizer, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_position_ids_from_mask():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 2]]

def test_string_inputs_are_text_even_when_they_spell_special_tokens():
    """#14 item 7 for stimuli passed as strings (raw, few-shot modes): text stays text."""
    tok = embedded_tokenizer()
    (ids,) = tokenize(tok, ["I said <|im_end|> then left"], add_special_tokens=False)
    assert not set(ids) & set(tok.all_special_ids)
    assert tok.decode(ids) == "I said <|im_end|> then left"

@pytest.mark.parametrize("kind", ["mistral_sw", "gemma3", "llama"])
def test_fresh_cache_is_shallow_for_dynamic_layers_and_leaves_the_original_intact(kind):
    """The per-run copy of a dynamic (full or sliding-window) cache shares the stored tensors
    (no deep copy of the whole cache per run) and extending it leaves the original's tensors,
    lengths and values exactly as they were; a cache with in-place layers is deep-copied."""
    from transformers.cache_utils import StaticCache

    model = tiny_model(kind)
    ids = torch.tensor([[5, 9, 17, 33, 2, 8, 7, 3, 99, 12]])
    with torch.inference_mode():
        root = model(ids, use_cache=True).past_key_values
        before = [(layer.keys.clone(), layer.values.clone(), getattr(layer, "cumulative_length", 0))
                  for layer in root.layers]
        copy_ = fresh_cache(root)
        assert all(a.keys is b.keys for a, b in zip(copy_.layers, root.layers, strict=True))
        model(torch.tensor([[45]]), past_key_values=copy_, use_cache=True)
    for layer, (k, v, n) in zip(root.layers, before, strict=True):
        assert torch.equal(layer.keys, k) and torch.equal(layer.values, v)
        assert getattr(layer, "cumulative_length", 0) == n
    assert copy_.get_seq_length() == root.get_seq_length() + 1 or kind == "mistral_sw"
    static = StaticCache(config=model.config, max_cache_len=16)
    assert fresh_cache(static) is not static and all(
        a is not b for a, b in zip(fresh_cache(static).layers, static.layers, strict=True))


def test_token_ids_outside_the_vocabulary_name_item_id_position_and_range():
    check_token_ids([[0, 5, 127]], 128)  # in range: no error
    with pytest.raises(CaptureError, match=r"item 1: token id 128 \(position 2\) is outside the "
                       r"model's vocabulary \(valid ids 0\.\.127\)"):
        check_token_ids([[1, 2], [3, 4, 128, 200]], 128)
    with pytest.raises(CaptureError, match=r"item 0: token id -3 \(position 1\)"):
        check_token_ids([[1, -3]], 128)
    with pytest.raises(CaptureError, match=r"item 1: token id 130 \(position 0\).*0\.\.127"):
        check_id_tensor(torch.tensor([[1, 2], [130, 3]]), 128)
    check_id_tensor(torch.zeros(2, 2), 128)  # embeddings passed as floats are not ids


def test_a_forward_with_an_id_outside_the_vocabulary_is_a_capture_error():
    model = tiny_model("llama")
    ids, mask = pad_batch([[5, 6, VOCAB]], 0, "right")
    with pytest.raises(CaptureError, match=f"token id {VOCAB} "):
        runner.forward(model, ids, mask)


def test_tokenize_refuses_what_it_cannot_tokenise():
    assert tokenize(None, [[1, 2], (3,)]) == [[1, 2], [3]]
    with pytest.raises(CaptureError, match="not one string"):
        tokenize(None, "hello")
    with pytest.raises(CaptureError, match="string inputs need a tokenizer"):
        tokenize(None, ["hello"])
    with pytest.raises(CaptureError, match="input 1 is empty after tokenisation"):
        tokenize(None, [[1], []])


def test_prepare_checks_vocabulary_and_context():
    model = tiny_model("llama")  # context 256
    assert prepare(model, None, [[5, 6, 7]]) == [[5, 6, 7]]
    with pytest.raises(CaptureError, match="input 1 has 257 tokens; the model's context is 256"):
        prepare(model, None, [[5], [5] * 257])
    with pytest.raises(CaptureError, match="item 0: token id 128"):
        prepare(model, None, [[5, 128]])


def test_pad_batch_left_and_right():
    ids, mask = pad_batch([[7, 8, 9], [4]], 0, "left")
    assert ids.tolist() == [[7, 8, 9], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_batch([[7, 8, 9], [4]], 1, "right")
    assert ids.tolist() == [[7, 8, 9], [4, 1, 1]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("kind", ["llama", "gpt2", "gemma2"])
def test_padded_forward_equals_the_unpadded_one(kind, side):
    """Position ids come from the mask: each real token's logits are those of its own forward."""
    model = tiny_model(kind)
    seqs = [[5, 9, 17, 33, 2, 8, 71], [40, 8, 99]]
    ids, mask = pad_batch(seqs, 0, side)
    with torch.no_grad():
        out = runner.forward(model, ids, mask).logits
        for b, s in enumerate(seqs):
            alone = model(torch.tensor([s])).logits[0]
            real = mask[b].bool()
            torch.testing.assert_close(out[b][real], alone, atol=1e-5, rtol=0)
        body = runner.forward(model, ids, mask, logits=False)  # the LM head is skipped
    assert not hasattr(body, "logits") and body.last_hidden_state.shape == (2, 7, 64)


def test_pad_id_prefers_the_tokenizer_then_the_config_and_stays_in_the_vocabulary():
    model = tiny_model("llama")  # config: pad None, bos 1, eos 2
    assert pad_id(SimpleNamespace(pad_token_id=7, eos_token_id=9), model) == 7
    assert pad_id(SimpleNamespace(pad_token_id=None, eos_token_id=9), model) == 9
    assert pad_id(SimpleNamespace(pad_token_id=500, eos_token_id=None), model) == 2  # 500: no
    assert pad_id(None, model) == 2
    model.config.eos_token_id = [11, 12]
    assert pad_id(None, model) == 11
    model.config.eos_token_id = None
    assert pad_id(None, model) == 0


def test_vocabulary_and_context_from_the_model():
    assert vocab_size(tiny_model("llama")) == VOCAB
    assert context_length(tiny_model("llama")) == 256  # max_position_embeddings
    assert context_length(tiny_model("gpt2")) == 256  # n_positions
    assert context_length(SimpleNamespace(config=SimpleNamespace())) is None


def test_sliding_window_of_each_layout():
    assert sliding_window(tiny_model("mistral_sw")) == 4
    assert sliding_window(tiny_model("mistral")) is None
    assert sliding_window(tiny_model("gemma3")) == 4  # hybrid sliding / full layers
    assert sliding_window(tiny_model("llama")) is None
    cfg = CONFIGS["qwen2"]()
    cfg.sliding_window, cfg.use_sliding_window = 8, False
    assert sliding_window(SimpleNamespace(config=cfg)) is None


@pytest.mark.parametrize(("kind", "croppable"), [("llama", True), ("mistral_sw", False),
                                                 ("gemma3", False)])
def test_only_full_dynamic_caches_may_be_cropped(kind, croppable):
    model = tiny_model(kind)
    with torch.inference_mode():
        cache = model(torch.tensor([[5, 9, 17, 33, 2, 8]]), use_cache=True).past_key_values
    assert cache_is_croppable(cache) is croppable
    assert cache_is_croppable(None) is False
