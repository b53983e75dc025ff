"""llmct.scan.snapshots: the read-out rule of a message, one causal pass == one pass per prefix,
snapshots equal plain Hugging Face hidden states of each prefix, and standalone messages rendered
like the conversation (a tiny random float64 Llama with the embedded tokenizer; the embedded model
in the integration tests)."""

import numpy as np
import pytest
import torch

from llmct.core.chat import MessageSpan, render_chat
from llmct.scan.scenario import load_scenario
from llmct.scan.snapshots import conversation_snapshots, readout, single_message_states
from tests.tiny_models import embedded_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCENARIO = "stimuli/scenarios/rollercoaster.yaml"
SYSTEM = "You are a helpful assistant."
CHAT = [{"role": "system", "content": SYSTEM},
        {"role": "user", "content": "I got the job today!"},
        {"role": "assistant", "content": "Congratulations, that is wonderful."},
        {"role": "user", "content": "But I am nervous about Monday."}]


def tiny_chat_model():
    """A 2-layer float64 random Llama over the embedded SmolLM2 tokenizer (ChatML template,
    context 512)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = embedded_tokenizer()
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=512)
    return AutoModelForCausalLM.from_config(config).to(torch.float64).eval(), tok


@pytest.fixture(scope="module")
def chat_model():
    return tiny_chat_model()


def _hf_hidden(model, ids: list[int], position: int) -> list[np.ndarray]:
    with torch.no_grad():
        hs = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    return [h[0, position].numpy() for h in hs]


def test_readout_rule_of_a_message():
    span = MessageSpan(index=1, role="user", start=10, end=20, content_start=13, content_end=18)
    assert readout(span, "message_end") == 17  # the content's last token
    assert readout(span, "template_end") == 19  # the rendered message's last token
    assert readout(span, "mean") == (13, 18)  # the content's tokens
    with pytest.raises(ValueError, match="unknown snapshot position 'first'"):
        readout(span, "first")


@pytest.mark.parametrize("position", ["message_end", "template_end", "mean"])
def test_one_pass_equals_one_pass_per_prefix(chat_model, position):
    model, tok = chat_model
    kw = dict(sources=["hidden_in", "hidden_out", "attn_out", "mlp_out"], layers=[0, 1],
              position=position)
    one = conversation_snapshots(model, tok, CHAT, **kw)
    many = conversation_snapshots(model, tok, CHAT, force_per_prefix=True, **kw)
    assert (one.mode, many.mode) == ("single_pass", "per_prefix")
    assert one.capture["hidden_out"].shape == (4, 2, 16)
    for s in kw["sources"]:
        assert np.abs(one.capture[s] - many.capture[s]).max() <= 1e-7, s  # float64 model, fp32 store
    full = render_chat(tok, CHAT)
    assert one.tokens_processed == len(full.input_ids)
    assert many.tokens_processed == sum(len(render_chat(tok, CHAT[:k + 1]).input_ids)
                                        for k in range(4))
    assert one.n_tokens == many.n_tokens == [s.end - s.start for s in full.spans]
    assert one.template == many.template == "chat_template"


def test_snapshots_are_the_hidden_states_of_each_prefix(chat_model):
    """Snapshot k at message_end == HF's hidden states of messages[:k+1] at the last content
    token of message k (hidden_in[0] = embeddings, hidden_out[0] = HF's hidden_states[1])."""
    model, tok = chat_model
    snaps = conversation_snapshots(model, tok, CHAT, sources=["hidden_in", "hidden_out"],
                                   layers=[0], position="message_end")
    for k in range(len(CHAT)):
        r = render_chat(tok, CHAT[:k + 1])
        hs = _hf_hidden(model, r.input_ids, r.spans[-1].content_last)
        np.testing.assert_allclose(snaps.capture["hidden_in"][k, 0], hs[0], atol=1e-7)
        np.testing.assert_allclose(snaps.capture["hidden_out"][k, 0], hs[1], atol=1e-7)


def test_single_message_states_render_like_the_conversation(chat_model):
    model, tok = chat_model
    texts = ["I am so happy.", "I miss them terribly.", "The shop opens at nine."]
    states, n = single_message_states(model, tok, texts, SYSTEM, sources=["hidden_out", "mlp_out"],
                                      layers=[0], position="message_end")
    assert states.shape == (2, 3, 1, 16)
    renders = [render_chat(tok, [CHAT[0], {"role": "user", "content": t}]) for t in texts]
    assert n == sum(len(r.input_ids) for r in renders)
    for i, r in enumerate(renders):
        hs = _hf_hidden(model, r.input_ids, r.spans[-1].content_last)
        np.testing.assert_allclose(states[0, i, 0], hs[1], atol=1e-6)  # stored as float32
    as_assistant, _ = single_message_states(model, tok, texts, SYSTEM, sources=["hidden_out"],
                                            layers=[0], position="message_end", role="assistant")
    assert not np.allclose(as_assistant[0], states[0], atol=1e-6)  # another rendering


@pytest.mark.integration
@pytest.mark.parametrize("position", ["message_end", "template_end", "mean"])
def test_single_pass_equals_per_prefix(embedded, position):
    model, tok = embedded
    sc = load_scenario(SCENARIO)
    chat = [{"role": m.role, "content": m.content} for m in sc.messages[:9]]
    one = conversation_snapshots(model, tok, chat, sources=["hidden_in", "attn_out", "mlp_out"],
                                 layers=[0, 7, 15, 22, 29], position=position)
    many = conversation_snapshots(model, tok, chat, sources=["hidden_in", "attn_out", "mlp_out"],
                                  layers=[0, 7, 15, 22, 29], position=position,
                                  force_per_prefix=True)
    assert one.mode == "single_pass" and many.mode == "per_prefix"
    for s in ("hidden_in", "attn_out", "mlp_out"):
        a, b = one.capture[s], many.capture[s]
        # SmolLM2's residual stream has 'massive activations' (|x| up to ~600, one fp32 ulp there
        # is 6e-5) whose rounding propagates into every branch: compare each vector at 1e-4 of
        # its own scale (absolute when that is below 1). Exactness is proven in float64 below.
        scale = np.maximum(1.0, np.abs(a).max(-1))
        assert (np.abs(a - b).max(-1) / scale).max() <= 1e-4, s
    assert many.tokens_processed > 3 * one.tokens_processed  # 9 of the 20 messages


@pytest.mark.integration
def test_single_pass_is_exact_in_float64(embedded):
    """In float64 the single pass and the per-prefix passes agree to 1e-9: the same computation."""
    import copy

    import torch

    model, tok = embedded
    model64 = copy.deepcopy(model).to(torch.float64)
    sc = load_scenario(SCENARIO)
    chat = [{"role": m.role, "content": m.content} for m in sc.messages[:7]]
    kw = dict(sources=["hidden_in", "hidden_out", "attn_out", "mlp_out"], layers="all",
              position="message_end")
    one = conversation_snapshots(model64, tok, chat, **kw)
    many = conversation_snapshots(model64, tok, chat, force_per_prefix=True, **kw)
    for s in kw["sources"]:
        assert np.abs(one.capture[s] - many.capture[s]).max() <= 1e-9, s
