"""llmct.core.generation: the next assistant reply of a chat history -- greedy equals a hand-made
argmax loop over the rendered prompt, sampling is seeded, greedy never inherits sampling settings,
and with the plain fallback format the reply is cut where the model starts a new turn."""

from __future__ import annotations

import copy

import pytest
import torch

from llmct.core.chat import render_chat
from llmct.core.generation import generate_replies, generate_reply
from llmct.core.steering import random_direction, steer, steer_rows
from tests.test_scan_snapshots import tiny_chat_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HISTORY = [{"role": "system", "content": "You are kind."},
           {"role": "user", "content": "Hello there, how are you?"}]


@pytest.fixture(scope="module")
def chat_model():
    return tiny_chat_model()


def test_greedy_reply_equals_an_argmax_loop_by_hand(chat_model):
    model, tok = chat_model
    prompt = render_chat(tok, HISTORY, add_generation_prompt=True).input_ids
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(6):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
            if seq[-1] == model.generation_config.eos_token_id:
                break
    expected = tok.decode(seq[len(prompt):], skip_special_tokens=True).strip() or "(empty)"
    assert generate_reply(model, tok, HISTORY, max_new_tokens=6) == expected


def _spy(monkeypatch, model, tok, text: str) -> list[dict]:
    """Replace ``model.generate`` by one that records its arguments and 'generates' ``text``."""
    calls: list[dict] = []

    def fake(ids, **kwargs):
        calls.append({"ids": ids, **kwargs})
        new = tok(text, add_special_tokens=False)["input_ids"]
        return torch.cat([ids, torch.tensor([new])], dim=1)

    monkeypatch.setattr(model, "generate", fake)
    return calls


def test_greedy_never_inherits_sampling_settings_and_sampling_passes_them(chat_model,
                                                                        monkeypatch):
    model, tok = chat_model
    calls = _spy(monkeypatch, model, tok, " I am fine.")
    assert generate_reply(model, tok, HISTORY, max_new_tokens=3) == "I am fine."
    greedy = calls[-1]
    assert greedy["do_sample"] is False and greedy["max_new_tokens"] == 3
    assert (greedy["temperature"], greedy["top_p"], greedy["top_k"]) == (None, None, None)
    assert greedy["ids"][0].tolist() == render_chat(tok, HISTORY,
                                                    add_generation_prompt=True).input_ids
    assert torch.equal(greedy["attention_mask"], torch.ones_like(greedy["ids"]))
    generate_reply(model, tok, HISTORY, do_sample=True, temperature=0.7, top_p=0.9)
    assert (calls[-1]["do_sample"], calls[-1]["temperature"], calls[-1]["top_p"]) == (
        True, 0.7, 0.9)
    assert "top_k" not in calls[-1]


def test_sampling_is_reproducible_per_seed(chat_model):
    model, tok = chat_model
    kw = dict(max_new_tokens=8, do_sample=True, temperature=1.5)
    first = generate_reply(model, tok, HISTORY, seed=3, **kw)
    assert generate_reply(model, tok, HISTORY, seed=3, **kw) == first
    others = {generate_reply(model, tok, HISTORY, seed=s, **kw) for s in range(4, 8)}
    assert others - {first}  # another seed, another reply (random weights: near-uniform)


def test_plain_fallback_reply_ends_where_the_model_starts_a_turn(chat_model, monkeypatch):
    model, tok = chat_model
    plain = copy.deepcopy(tok)
    plain.chat_template = None
    _spy(monkeypatch, model, plain, " Fine, thanks.\nUser: and you?\nassistant: me too")
    assert generate_reply(model, plain, HISTORY) == "Fine, thanks."
    _spy(monkeypatch, model, plain, "\nuser: hello again")
    assert generate_reply(model, plain, HISTORY) == "(empty)"
    _spy(monkeypatch, model, tok, " Fine.\nUser: and you?")  # a chat template: nothing is cut
    assert generate_reply(model, tok, HISTORY) == "Fine.\nUser: and you?"


def test_replies_of_steered_rows_equal_one_generation_per_condition(chat_model):
    model, tok = chat_model
    d = model.config.hidden_size
    dirs, alphas = [random_direction(d, s) for s in (1, 2, 3)], [0.0, 3.0, 6.0]
    refs = []
    for direction, alpha in zip(dirs, alphas, strict=True):
        with steer(model, direction, 0, alpha=alpha):
            refs.append(generate_reply(model, tok, HISTORY, max_new_tokens=8))
    with steer_rows(model, dirs, 0, alphas):
        got = generate_replies(model, tok, HISTORY, copies=3, max_new_tokens=8)
    assert got == refs and len(set(refs)) > 1
    assert generate_replies(model, tok, HISTORY, max_new_tokens=8) == [refs[0]]
    with pytest.raises(ValueError, match="copies must be >= 1"):
        generate_replies(model, tok, HISTORY, copies=0)


def test_batched_rows_are_cut_after_their_first_end_of_sequence(chat_model, monkeypatch):
    model, tok = chat_model
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    hi = tok(" Hi", add_special_tokens=False)["input_ids"]
    there = tok(" there", add_special_tokens=False)["input_ids"]

    def fake(ids, **kwargs):  # row 0 ends early and goes on with tokens a pad need not be
        new = torch.tensor([hi + [eos] + there, hi + there + there])
        return torch.cat([ids, new], dim=1)

    monkeypatch.setattr(model, "generate", fake)
    assert generate_replies(model, tok, HISTORY, copies=2) == ["Hi", "Hi there there"]
