"""llmct.emotion.prompts: the few-shot prompt holds its instruction and examples before the
stimulus and ends with the read-out cue; every prompt mode gives inputs and a read-out rule."""

from __future__ import annotations

import pytest

from llmct.core.runner import tokenize
from llmct.emotion.prompts import (
    FEWSHOT_EXAMPLES,
    INSTRUCTION,
    PROMPT_MODES,
    build_inputs,
    fewshot_prompt,
    shared_prefix_cache,
    zeroshot_prompt,
)
from llmct.errors import CaptureError
from tests.tiny_models import embedded_tokenizer

TEXT = "  The storm tore the roof off and we hid in the cellar all night.\n"


def test_fewshot_prompt_holds_the_examples_and_ends_with_the_read_out_cue():
    prompt = fewshot_prompt(TEXT)
    assert prompt.startswith(INSTRUCTION + "\n\n")
    assert prompt.endswith(f"Passage: {TEXT.strip()}\nEmotion:")  # the stimulus, stripped
    assert len(FEWSHOT_EXAMPLES) == 2
    last = -1
    for passage, label in FEWSHOT_EXAMPLES:
        block = f"Passage: {passage}\nEmotion: {label}\n\n"
        assert prompt.count(block) == 1 and prompt.index(block) > last
        last = prompt.index(block)
    assert last < prompt.index(TEXT.strip())  # examples first, then the stimulus
    assert {label for _, label in FEWSHOT_EXAMPLES} == {"anger", "joy"}


def test_zeroshot_prompt_is_the_same_prompt_without_examples():
    assert zeroshot_prompt(TEXT) == f"{INSTRUCTION}\n\nPassage: {TEXT.strip()}\nEmotion:"
    custom = fewshot_prompt("x", examples=[("It rained.", "sadness")])
    assert custom == f"{INSTRUCTION}\n\nPassage: It rained.\nEmotion: sadness\n\nPassage: x\nEmotion:"


def test_the_read_out_token_of_the_fewshot_prompt_is_the_colon():
    tok = embedded_tokenizer()
    (ids,) = tokenize(tok, [fewshot_prompt(TEXT)])
    assert tok.decode(ids[-1:]) == ":"


@pytest.mark.parametrize(("mode", "wrap", "position"), [
    ("fewshot", fewshot_prompt, "last"), ("zeroshot", zeroshot_prompt, "last"),
    ("raw", lambda t: t, "last"), ("mean", lambda t: t, "mean")])
def test_text_modes(mode, wrap, position):
    texts = [TEXT, "I miss them."]
    inputs, pos = build_inputs(None, texts, mode)
    assert inputs == [wrap(t) for t in texts] and pos == position


def test_chat_mode_reads_the_last_token_of_the_message_content():
    tok = embedded_tokenizer()
    inputs, pos = build_inputs(tok, ["I miss them terribly.", "What a day!"], "chat")
    assert all(isinstance(ids, list) and isinstance(ids[0], int) for ids in inputs)
    assert [tok.decode([ids[p[0]]]) for ids, p in zip(inputs, pos, strict=True)] == [".", "!"]
    assert "<|im_start|>user" in tok.decode(inputs[0])


def test_every_mode_is_described_and_an_unknown_mode_is_refused():
    assert set(PROMPT_MODES) == {"fewshot", "zeroshot", "raw", "mean", "chat"}
    with pytest.raises(CaptureError, match=r"unknown prompt mode 'cloze'; choose from \['chat', "):
        build_inputs(None, ["x"], "cloze")


@pytest.mark.parametrize("mode", ["fewshot", "zeroshot", "chat"])
def test_the_shared_prefix_cache_is_the_start_every_prompt_of_the_mode_continues(mode):
    from tests.tiny_models import tiny_model

    tok = embedded_tokenizer()
    model = tiny_model("llama")  # vocabulary 128: only the tokens are checked, not the cache
    model.resize_token_embeddings(len(tok))
    shared = shared_prefix_cache(model, tok, mode)
    inputs, _ = build_inputs(tok, ["The storm tore the roof off.", "What a day!"], mode)
    ids = tokenize(tok, inputs)
    assert shared is not None and len(shared) > 0
    assert all(shared.splits(t) for t in ids)
    assert shared.cache.get_seq_length() == len(shared)


def test_modes_that_share_nothing_have_no_prefix_cache():
    assert shared_prefix_cache(None, None, "raw") is None  # no model is touched
    with pytest.raises(CaptureError, match="unknown prompt mode"):
        shared_prefix_cache(None, None, "cloze")
