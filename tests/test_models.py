"""llmct.core.models: the embedded-model registry (names, aliases, licences, package checksums,
cache records, converted weights), device / dtype resolution, loading errors, folder-safe slugs, and
the weights fingerprint (files, hub blobs, conversion records, models built in memory)."""

from __future__ import annotations

import json
import re
import time

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from llmct.cli import main as cli_main
from llmct.core import models
from llmct.errors import ModelLoadError
from tests.test_bad_inputs import save_tiny
from tests.tiny_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EMBEDDED = list(models.EMBEDDED_MODELS)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """A private llmct cache (fingerprint hashes, conversions): the user's is never written."""
    monkeypatch.setenv("LLMCT_CACHE", str(tmp_path / "cache"))


def test_names_aliases_and_slugs():
    assert models.embedded_model("default").name == "smollm2-135m-instruct"
    assert models.embedded_model("gemma3-270m").hf_id == "google/gemma-3-270m"
    assert models.embedded_model("HuggingFaceTB/SmolLM2-135M-Instruct") is None  # a hub id
    assert models.model_slug("default") == models.model_slug("smollm2-135m-instruct")
    assert models.model_slug("gemma3-270m") == "gemma3-270m"
    with pytest.raises(ModelLoadError, match="not an embedded model.*gemma3-270m"):
        models.embedded_model_dir("gemma3-27b")


def test_base_model_is_recorded_without_chat_template():
    gemma = models.EMBEDDED_MODELS["gemma3-270m"]
    assert gemma.kind == "base" and gemma.chat_template == "none"
    assert "ai.google.dev/gemma/terms" in gemma.licence
    assert models.EMBEDDED_MODELS["smollm2-135m-instruct"].licence == "Apache-2.0"


def test_package_checksums_are_read_from_the_packages():
    # Gemma: the package's own constant (also in its SHA256SUMS); SmolLM2: the wheel's RECORD.
    assert models._expected_gguf_sha256(models.EMBEDDED_MODELS["gemma3-270m"]) == (
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")
    smol = models._expected_gguf_sha256(models.EMBEDDED_MODELS["smollm2-135m-instruct"])
    assert re.fullmatch(r"[0-9a-f]{64}", smol)


def test_a_gguf_with_the_wrong_checksum_is_refused(monkeypatch):
    monkeypatch.setattr(models, "_expected_gguf_sha256", lambda spec: "0" * 64)
    with pytest.raises(ModelLoadError, match="sha256.*reinstall"):
        models.embedded_gguf_path("default")


def test_chunked_model_needs_a_workdir():
    with pytest.raises(ModelLoadError, match="workdir"):
        models.embedded_gguf_path("gemma3-270m")


def test_recorded_weight_hashes_follow_the_files(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x" * 100)
    assert models.recorded_weight_hashes(tmp_path) is None  # nothing recorded yet
    entries = models._record_weight_hashes(tmp_path)
    assert entries["model.safetensors"]["size"] == 100
    assert models.recorded_weight_hashes(tmp_path) == {
        "model.safetensors": models.file_sha256(weights)}
    weights.write_bytes(b"y" * 101)  # the file changed after conversion: the record is stale
    assert models.recorded_weight_hashes(tmp_path) is None
    (tmp_path / models.WEIGHT_HASHES_FILE).write_text("{not json")
    assert models.recorded_weight_hashes(tmp_path) is None


@pytest.mark.parametrize("kind", ["gemma3", "llama"])
def test_converted_weights_round_trip_with_tied_embeddings(kind, tmp_path):
    model = tiny_model(kind)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    state = models._untied_state_dict(model)
    assert "lm_head.weight" not in state and "model.embed_tokens.weight" in state
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(tmp_path)
    back = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32,
                                                attn_implementation="eager").eval()
    assert back.lm_head.weight.data_ptr() == back.get_input_embeddings().weight.data_ptr()
    ids = torch.tensor([[1, 5, 9, 17]])
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_models_command_lists_both(capsys):
    assert cli_main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(EMBEDDED)
    gemma = rows["gemma3-270m"]
    assert (gemma["n_layers"], gemma["d_model"], gemma["family"]) == (18, 640, "Gemma 3")
    assert gemma["installed"] and gemma["gguf_bytes"] > 200e6  # four chunks, ~253 MB
    assert rows["smollm2-135m-instruct"]["aliases"] == ["default"]
    assert cli_main(["models"]) == 0
    text = capsys.readouterr().out
    assert "gemma3-270m" in text and "Gemma Terms" in text and "Apache-2.0" in text


def test_fingerprint_changes_with_a_value_deep_in_a_tensor(tmp_path, monkeypatch):
    folder = save_tiny(tmp_path / "m")
    before = models.weights_fingerprint(str(folder))
    loaded, _ = models.load_model(str(folder), device="cpu")
    assert models.model_fingerprint(loaded) == before  # loaded == computed from the files
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    name = max(tensors, key=lambda k: tensors[k].numel())
    flat = tensors[name].reshape(-1)
    flat[flat.numel() - 7] += 1e-3  # far past any sampled prefix
    save_file(tensors, str(weights), metadata={"format": "pt"})
    after = models.weights_fingerprint(str(folder))
    assert after != before
    # cached by path, size and mtime: a second call reads no weight bytes
    monkeypatch.setattr(models, "file_sha256", lambda *a, **k: pytest.fail("re-hashed"))
    assert models.weights_fingerprint(str(folder)) == after


def test_fingerprint_takes_hub_blob_names_and_conversion_records(tmp_path, monkeypatch):
    blobs = tmp_path / "hub" / "blobs"
    blobs.mkdir(parents=True)
    sha = "ab" * 32
    (blobs / sha).write_bytes(b"weights")
    snap = tmp_path / "hub" / "snapshots" / "rev"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(blobs / sha)
    monkeypatch.setattr(models, "file_sha256", lambda *a, **k: pytest.fail("hashed a hub blob"))
    assert models.file_digest(snap / "model.safetensors") == sha

    conv = tmp_path / "converted"
    conv.mkdir()
    w = conv / "model.safetensors"
    w.write_bytes(b"0123456789")
    (conv / models.WEIGHT_HASHES_FILE).write_text(json.dumps(
        {"files": {"model.safetensors": {"sha256": "cd" * 32, "size": 10}}}))
    assert models.file_digest(w) == "cd" * 32  # recorded at conversion: not re-hashed
    time.sleep(0.01)
    w.write_bytes(b"0123456788")  # same size, edited after the record
    monkeypatch.setattr(models, "file_sha256", lambda p, *a: "recomputed")
    assert models.file_digest(w) == "recomputed"


def test_cache_dir_follows_llmct_cache(tmp_path, monkeypatch):
    assert models.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("LLMCT_CACHE")
    assert models.cache_dir().parts[-2:] == (".cache", "llmct")


def test_resolve_dtype():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert models.resolve_dtype(None, cpu) is torch.float32
    assert models.resolve_dtype("auto", cuda) is torch.bfloat16
    assert [models.resolve_dtype(d, cpu) for d in ("fp16", "half", "bf16", "fp32")] == [
        torch.float16, torch.float16, torch.bfloat16, torch.float32]
    assert models.resolve_dtype(torch.float64, cpu) is torch.float64
    with pytest.raises(ModelLoadError, match=r"unknown dtype 'float8'; choose one of \["):
        models.resolve_dtype("float8", cpu)


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models.resolve_device(None) == models.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ModelLoadError, match="device 'cuda:1' requested but CUDA is not available"):
        models.resolve_device("cuda:1")
    with pytest.raises(ModelLoadError, match="MPS is not available"):
        models.resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.resolve_device("auto") == torch.device("cuda")


def test_slugs_of_hub_ids_and_folders():
    assert models.model_slug("default") == "smollm2-135m-instruct"
    assert models.model_slug("Qwen/Qwen2.5-0.5B-Instruct") == "qwen2.5-0.5b-instruct"
    assert models.model_slug("/data/My Model/") == "my-model"


def test_loading_errors_say_what_to_do(monkeypatch):
    with pytest.raises(ModelLoadError, match="model directory './no/such/dir' does not exist"):
        models.load_model("./no/such/dir", device="cpu")
    offline = models._explain_load_failure("org/m", OSError("We couldn't connect to the hub"))
    assert "not in the local Hugging Face cache" in offline and "org/m" in offline
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # online: other failures are explained
    gated = models._explain_load_failure("org/m", OSError("401 Client Error: gated repo"))
    assert "access denied; put HF_TOKEN" in gated
    other = models._explain_load_failure("org/m", ValueError("bad config\nmore"))
    assert other == "could not load 'org/m': ValueError: bad config"


def test_a_model_without_an_adapter_is_refused_after_loading(tmp_path):
    from transformers import BertConfig, BertLMHeadModel

    folder = save_tiny(tmp_path / "m")  # a tokenizer, then the weights of another family
    BertLMHeadModel(BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64,
                               is_decoder=True)).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match=r"loaded, but no llmct adapter for model_type='bert'"):
        models.load_model(str(folder), device="cpu")


def test_a_loaded_folder_is_in_eval_mode_and_named(tmp_path):
    folder = save_tiny(tmp_path / "m")
    model, tok = models.load_model(str(folder), dtype=torch.float64, device="cpu")
    assert not model.training and model.config.llmct_name == str(folder)
    assert next(model.parameters()).dtype is torch.float64 and tok.pad_token_id is not None


def test_fingerprint_of_a_model_built_in_memory_hashes_its_tensors():
    a, b = tiny_model("llama"), tiny_model("llama")
    fp = models.model_fingerprint(a)
    assert re.fullmatch(r"[0-9a-f]{16}", fp) and models.model_fingerprint(b) == fp
    with torch.no_grad():
        b.model.layers[2].mlp.down_proj.weight[-1, -1] += 1e-6
    assert models.model_fingerprint(b) != fp
    assert models.model_fingerprint(tiny_model("llama", seed=1)) != fp
