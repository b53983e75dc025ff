"""The scan's faster paths give the same numbers as the plain ones (issue #17 item 5): standalone
messages with a shared prefix and stopped at their read-out == full renderings one by one, MAE one
reference at a time == all at once, the logit lens in chunks == at once, figures laid out once ==
``savefig``'s tight box, and ``import llmct`` without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from llmct.core.chat import render_chat
from llmct.scan.metrics import mae
from llmct.scan.snapshots import message_states, single_message_states
from tests.tiny_models import embedded_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYSTEM = "You are a helpful assistant."
TEXTS = ["I am so happy today.", "I miss them terribly, every single day.",
         "The shop opens at nine.", "Why is nothing ever simple?"]


@pytest.fixture(scope="module")
def chat_model():
    """A 2-layer float64 random Llama over the embedded SmolLM2 tokenizer (ChatML template)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = embedded_tokenizer()
    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=512)
    return AutoModelForCausalLM.from_config(config).to(torch.float64).eval(), tok


@pytest.mark.parametrize("position", ["message_end", "template_end", "mean"])
@pytest.mark.parametrize("system", [SYSTEM, None])
@pytest.mark.parametrize("role", ["user", "assistant"])
def test_shared_prefix_equals_one_full_rendering_each(chat_model, position, system, role):
    model, tok = chat_model
    kw = dict(sources=["hidden_in", "hidden_out", "attn_out", "mlp_out"], layers=[0, 1],
              position=position, role=role)
    plain, n_plain = single_message_states(model, tok, TEXTS, system, **kw)
    fast, n_fast = single_message_states(model, tok, TEXTS, system, share_prefix=True, **kw)
    assert fast.shape == plain.shape == (4, len(TEXTS), 2, 16)
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-6 * np.abs(plain).max())
    prefix = [{"role": "system", "content": system}] if system else []
    renders = [render_chat(tok, [*prefix, {"role": role, "content": t}]) for t in TEXTS]
    assert n_plain == sum(len(r.input_ids) for r in renders)
    assert n_fast < n_plain  # the shared start runs once (and message_end stops early)


def test_mixed_roles_in_one_call_equal_each_rendering(chat_model):
    model, tok = chat_model
    items = [("user", TEXTS[0]), ("assistant", TEXTS[1]), ("user", TEXTS[2])]
    kw = dict(sources=["hidden_out"], layers=[1], position="message_end")
    states, _ = message_states(model, tok, items, SYSTEM, **kw)
    for i, (role, text) in enumerate(items):
        one, _ = single_message_states(model, tok, [text], SYSTEM, role=role, **kw)
        np.testing.assert_allclose(states[:, i], one[:, 0], rtol=0, atol=1e-6)


def test_mae_one_reference_at_a_time_is_the_broadcast_formula():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        a = (rng.normal(size=(5, 3, 4, 64)) * 10).astype(dtype)
        b = (rng.normal(size=(7, 3, 4, 64)) * 10).astype(dtype)
        expected = np.abs(a[:, None] - b[None, :]).mean(-1)
        got = mae(a, b)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
        centre = b.mean(0)[None]
        assert np.array_equal(mae(a, centre), np.abs(a[:, None] - centre[None]).mean(-1))


def test_logit_lens_in_chunks_equals_all_at_once(chat_model):
    from llmct.scan.run import _logit_lens_rows

    model, tok = chat_model
    rng = np.random.default_rng(1)
    cap = {"hidden_out": rng.normal(size=(5, 2, 16)).astype(np.float32)}
    whole = _logit_lens_rows(model, tok, cap, [0, 1], ["hidden_out"], chunk=1000)
    chunked = _logit_lens_rows(model, tok, cap, [0, 1], ["hidden_out"], chunk=3)
    assert len(whole) == 5 * 2 * 5
    assert [(r["snapshot"], r["layer"], r["rank"], r["token"]) for r in whole] == \
        [(r["snapshot"], r["layer"], r["rank"], r["token"]) for r in chunked]
    np.testing.assert_allclose([r["prob"] for r in whole], [r["prob"] for r in chunked],
                               atol=1e-5)


def test_figures_laid_out_once_match_savefig(tmp_path):
    import matplotlib
    from PIL import Image

    from llmct import style

    with matplotlib.rc_context():
        style.apply_style()
        import matplotlib.pyplot as plt

        def figure():
            fig, axes = plt.subplots(1, 2, figsize=(5, 2.5))
            axes[0].imshow(np.arange(12).reshape(3, 4), cmap=style.sequential_cmap())
            axes[1].plot([0, 1, 2], [2, 0, 1], label="a line")
            axes[1].legend()
            fig.suptitle("A title")
            return fig

        slow = style.save_figure(figure(), tmp_path / "slow")
        fast = style.save_figure(figure(), tmp_path / "fast", layout_once=True)
    assert [p.suffix for p in fast] == [".png", ".svg"] and all(p.exists() for p in fast)
    a, b = (np.asarray(Image.open(p[0]).convert("RGB"), dtype=float) for p in (slow, fast))
    assert a.shape == b.shape  # the same tight box, in whole pixels
    assert np.abs(a - b).mean() < 8  # the same picture (anti-aliasing may shift by a pixel)
    assert b"A title" in fast[1].read_bytes()  # text stays text in the SVG


def test_import_llmct_does_not_import_torch():
    code = ("import sys, llmct, llmct.cli\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert callable(llmct.capture) and llmct.DEFAULT == 'default'\n"
            "assert 'torch' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
