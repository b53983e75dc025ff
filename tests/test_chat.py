"""llmct.core.chat: rendering, exact spans under templates that trim or rewrite content, template files.

The span faults of issue #13 (item 3) and template tokens in content (#14 item 7, #18 item 2) are
in tests/test_faults.py; these cover the rest of the module's contract."""

from __future__ import annotations

import copy

import pytest

from llmct.core.chat import has_prefix_property, render_chat, render_text, use_chat_template
from llmct.errors import CaptureError
from tests.tiny_models import embedded_tokenizer

CONV = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "I feel great"},
        {"role": "assistant", "content": "Glad to hear it."}]


@pytest.fixture(scope="module")
def tok():
    return embedded_tokenizer()


def _with_template(tok, template: str):
    t = copy.deepcopy(tok)
    t.chat_template = template
    return t


@pytest.mark.parametrize("messages, match", [
    ([], "empty conversation"),
    ([{"role": "robot", "content": "x"}], "message 0: role"),
    ([{"role": "user", "content": "x"}, {"role": "user", "content": 3}], "message 1: content"),
])
def test_bad_conversations_are_errors(tok, messages, match):
    with pytest.raises(CaptureError, match=match):
        render_chat(tok, messages)


def test_spans_tile_and_generation_prompt_is_outside_them(tok):
    r = render_chat(tok, CONV, add_generation_prompt=True)
    assert r.spans[0].start == 0 and [s.start for s in r.spans[1:]] == [s.end for s in r.spans[:-1]]
    tail = tok.decode(r.input_ids[r.spans[-1].end:])
    assert tail == "<|im_start|>assistant\n"
    for m, s in zip(CONV, r.spans, strict=True):
        assert tok.decode(r.input_ids[s.content_start:s.content_end]) == m["content"]
    assert r.text == render_text(tok, CONV, add_generation_prompt=True)
    assert has_prefix_property(tok, CONV)


def test_special_tokens_in_content_can_be_refused(tok):
    msg = [{"role": "user", "content": "ok"}, {"role": "user", "content": "a<|im_start|>b"}]
    with pytest.raises(CaptureError, match=r"message 1: .*<\|im_start\|>"):
        render_chat(tok, msg, special_in_content="error")
    with pytest.raises(CaptureError, match="special_in_content"):
        render_chat(tok, msg, special_in_content="maybe")


def test_template_that_trims_content_keeps_exact_spans(tok):
    t = _with_template(tok, "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                            "{{ m['content'] | trim }}<|im_end|>\n{% endfor %}")
    msgs = [{"role": "user", "content": "  padded words \n"}, {"role": "assistant", "content": "ok"}]
    r = render_chat(t, msgs)
    s = r.spans[0]
    assert t.decode(r.input_ids[s.content_start:s.content_end]) == "padded words"


def test_template_that_rewrites_content_is_refused(tok):
    t = _with_template(tok, "{% for m in messages %}{{ m['role'] }}: {{ m['content'] | upper }}\n"
                            "{% endfor %}")
    with pytest.raises(CaptureError, match="message 0: .* 0 times"):
        render_chat(t, [{"role": "user", "content": "hello"}])
    t.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] | replace('nan', 'NAN') }}"
                       "\n{% endfor %}")
    with pytest.raises(CaptureError, match="rewrites message content"):
        render_chat(t, [{"role": "user", "content": "banana"}])


def test_template_that_repeats_content_is_refused(tok):
    t = _with_template(tok, "{% for m in messages %}{{ m['content'] }} {{ m['content'] }}\n"
                            "{% endfor %}")
    with pytest.raises(CaptureError, match="message 0: .* 2 times"):
        render_chat(t, [{"role": "user", "content": "hello"}])


def test_use_chat_template_records_the_file(tok, tmp_path):
    path = tmp_path / "chatml.jinja"
    path.write_text("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                    "{% endif %}", encoding="utf-8")
    t = copy.deepcopy(tok)
    t.chat_template = None
    use_chat_template(t, path)
    r = render_chat(t, CONV)
    assert r.template == str(path)
    assert r.text.startswith("<|im_start|>system\nBe kind.")
    missing = tmp_path / "none.jinja"
    with pytest.raises(CaptureError, match="none.jinja"):
        use_chat_template(t, missing)
    drops = tmp_path / "drops.jinja"
    drops.write_text("{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}"
                     "{% endif %}{% endfor %}", encoding="utf-8")
    with pytest.raises(CaptureError, match="drops.jinja.*system, assistant"):
        use_chat_template(t, drops)


def test_plain_replies_end_where_the_model_starts_a_turn():
    from llmct.core.chat import end_plain_turn

    assert end_plain_turn("Sure, happy to help.\n\nuser: thanks\nassistant: ok") == \
        "Sure, happy to help."
    assert end_plain_turn("My user: account is fine") == "My user: account is fine"
    assert end_plain_turn("  fine \n") == "fine"


def test_content_span_excludes_surrounding_whitespace(tok):
    """message_end reads the last written token, not a trailing newline of a YAML block."""
    r = render_chat(tok, [{"role": "user", "content": "  I am so happy!\n\n"}])
    s = r.spans[0]
    assert tok.decode(r.input_ids[s.content_start:s.content_end]).strip() == "I am so happy!"
    assert tok.decode(r.input_ids[s.content_last]) == "!"


def _bos_tokenizer():
    """A word-level fast tokenizer that adds a BOS, like Gemma's, and has no chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "<bos>", "user", "assistant", "system", ":", "hello", "there", "ok"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A",
                                                       special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<bos>")


def test_plain_fallback_starts_with_the_bos_a_base_model_expects():
    t = _bos_tokenizer()
    assert t("hello")["input_ids"] == [1, 6]
    r = render_chat(t, [{"role": "user", "content": "hello there"},
                        {"role": "assistant", "content": "ok"}])
    assert r.template == "plain fallback" and r.input_ids[0] == 1
    assert r.input_ids.count(1) == 1
    first, second = r.spans
    assert first.start == 0 and second.start == first.end
    assert t.decode(r.input_ids[first.content_start:first.content_end]) == "hello there"
    assert t.decode(r.input_ids[second.content_start:second.content_end]) == "ok"
