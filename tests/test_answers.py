"""llmct.emotion.answers: which emotion an answer token names (prefixes, capitals, ambiguous or
too short tokens), the word file, and the scorer bound to a tokenizer -- its mass tokens, greedy
answers and per-emotion probability mass against a softmax by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llmct.emotion.answers import AnswerWords, default_words_path
from stimuli.loader import EMOTIONS

WORDS = {"anger": ("anger", "angry", "mad"), "joy": ("joy", "joyful"), "trust": ("respect",),
         "disgust": ("resentment",)}


def _word_tokenizer(words: list[str]):
    """A fast word-level tokenizer over ``words`` (id = index; anything else is [UNK] = 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])},
                                     unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


VOCAB = ["anger", "Anger", "angry", "joy", "Joy", "joyful", "the", "res", "respect",
         "resentment", "mad"]  # ids 1..11


def test_answer_word_rule():
    words = AnswerWords({"anger": ("anger", "angry", "mad"), "joy": ("joy", "joyful"),
                            "trust": ("respect",), "disgust": ("resentment",)})
    assert words.classify(" Anger") == "anger" and words.classify("ang") == "anger"
    assert words.classify(" joyful") == "joy" and words.classify("mad") == "anger"
    assert words.classify("an") is None  # shorter than min_prefix
    assert words.classify("made") is None  # not a prefix of any word
    assert words.classify("res") is None  # ambiguous: resentment and respect
    shipped = AnswerWords.load()
    assert set(shipped.emotions) == set(EMOTIONS) and shipped.min_prefix == 3


@pytest.mark.integration
def test_answer_scorer_on_embedded_tokenizer(embedded):
    model, tok = embedded
    scorer = AnswerWords.load().bind(tok)
    ids = {e: tok(" " + e, add_special_tokens=False)["input_ids"][0] for e in scorer.emotions}
    for e, t in ids.items():
        assert scorer.token_emotion(t) == e and t in scorer.mass_ids[e]
    logits = torch.full((2, len(tok)), -30.0)
    logits[0, ids["fear"]] = 10.0
    logits[1, ids["joy"]] = 10.0
    assert scorer.answers(logits) == ["fear", "joy"]
    mass = scorer.mass(logits)
    assert mass[0, scorer.emotions.index("fear")] > 0.99 and mass.sum(1).max() <= 1.0 + 1e-6


def test_classify_is_case_and_space_blind_and_needs_min_prefix_characters():
    words = AnswerWords(WORDS, min_prefix=4)
    assert words.classify("  ANGR\n") == words.classify("angr") == "anger"
    assert words.classify("ang") is None  # 3 < min_prefix = 4
    assert words.matches("res") == set()  # too short here
    assert words.matches("rese") == {"disgust"} and words.matches("resp") == {"trust"}
    assert AnswerWords(WORDS).matches("res") == {"disgust", "trust"}  # ambiguous at 3


def test_bound_scorer_mass_tokens_answers_and_mass_by_hand():
    tok = _word_tokenizer(VOCAB)
    scorer = AnswerWords(WORDS).bind(tok)
    # first tokens of " word" / " Word" that name the emotion; " Angry", " Mad", ... are [UNK]
    assert scorer.mass_ids == {"anger": [1, 2, 3, 11], "joy": [4, 5, 6], "trust": [9],
                               "disgust": [10]}
    assert [scorer.token_emotion(i) for i in (2, 6, 7, 8, 0)] == [
        "anger", "joy", None, None, None]  # 'the': no word; 'res': ambiguous; [UNK]: none
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.5, 3.0, 0.0, 0.0, 0.0, 2.5, 1.0, 0.0, 0.0],
                           [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]])
    assert scorer.answers(logits) == ["joy", None]  # row 1's greedy token is 'the'
    p = np.exp(logits.numpy())
    p /= p.sum(1, keepdims=True)
    by_hand = np.stack([p[:, [1, 2, 3, 11]].sum(1), p[:, [4, 5, 6]].sum(1), p[:, 9], p[:, 10]], 1)
    np.testing.assert_allclose(scorer.mass(logits), by_hand, rtol=1e-6)
    assert scorer.emotions == ["anger", "joy", "trust", "disgust"]


def test_an_emotion_without_a_usable_first_token_is_refused():
    with pytest.raises(ValueError, match=r"no word of \['fear'\] has a first token"):
        AnswerWords({**WORDS, "fear": ("fear", "afraid")}).bind(_word_tokenizer(VOCAB))


def test_word_files_are_normalised_and_checked(tmp_path):
    path = tmp_path / "words.json"
    path.write_text(json.dumps({"min_prefix": 4, "forms": [" {word}"],
                                "words": {"joy": [" Joy ", "HAPPY"], "fear": ["fear"]}}))
    words = AnswerWords.load(path)
    assert words.words == {"joy": ("joy", "happy"), "fear": ("fear",)}
    assert words.min_prefix == 4 and words.forms == (" {word}",)
    path.write_text(json.dumps({"words": {"joy": ["joy"], "fear": []}}))
    with pytest.raises(ValueError, match=r"words\.json: no answer words for \['fear'\]"):
        AnswerWords.load(path)
    assert default_words_path().name == "emotion_words.json" and default_words_path().is_file()
