"""Bad capture requests fail with errors that name the problem."""

import pytest

import llmct
from tests.tiny_models import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def test_negative_layers(model):
    cap = llmct.capture(model, None, [[5, 6, 7]], layers=[-1, 0])
    assert cap.layers == [2, 0]
    assert (cap.layer("hidden_out", -1) == cap["hidden_out"][:, 0]).all()


@pytest.mark.parametrize("layers", [[3], [-4], [0, 0]])
def test_out_of_range_layer_is_an_error(model, layers):
    with pytest.raises(llmct.CaptureError, match="layer"):
        llmct.capture(model, None, [[5, 6, 7]], layers=layers)


def test_unknown_source(model):
    with pytest.raises(llmct.CaptureError, match="mlp_down_out"):
        llmct.capture(model, None, [[5, 6]], sources=["mlp_down_out"])


def test_too_long_input(model):
    with pytest.raises(llmct.CaptureError, match="context"):
        llmct.capture(model, None, [[5] * 300])


def test_bad_positions(model):
    with pytest.raises(llmct.CaptureError, match="outside"):
        llmct.capture(model, None, [[5, 6]], position=[[2]])
    with pytest.raises(llmct.CaptureError, match="mean_from"):
        llmct.capture(model, None, [[5, 6]], position="mean", mean_from=5)
    with pytest.raises(llmct.CaptureError, match="position"):
        llmct.capture(model, None, [[5, 6]], position="first")


def test_attention_needs_eager():
    sdpa = tiny_model("llama", attn_implementation="sdpa")
    with pytest.raises(llmct.CaptureError, match="eager"):
        llmct.capture(sdpa, None, [[5, 6]], attention=True)
