"""Resumable, shardable activation extraction for a list of stimuli.

``extract`` wraps every stimulus in one prompt mode (:mod:`llmct.emotion.prompts`), captures per-layer
activations at the mode's read-out in chunks, and writes each finished chunk atomically with a
manifest (:class:`llmct.io.store.ChunkedStore`). Re-running skips ids already stored, so an
interrupted extraction resumes where it stopped. ``shard=(i, n)`` takes items ``i, i+n, i+2n...``
of the input order (0-based ``i``), so ``n`` processes or GPUs can split one extraction; each
shard writes its own sub-folder ``shard-i-of-n/`` (no two writers share a folder), and
``load_extraction`` merges every store under the folder into arrays in the order asked for.

Each stored row carries a digest of its stimulus text. A stimulus whose text changed since it was
extracted counts as not done (it is re-extracted into a new chunk), and loading picks, for each
id, the row whose digest matches the current text -- a folder never serves activations of a
different text under the same id.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from llmct.core.arch import get_adapter
from llmct.core.capture import capture, resolve_layers
from llmct.core.models import model_fingerprint
from llmct.core.positions import describe_position
from llmct.core.prefix import SharedPrefix
from llmct.emotion.prompts import (
    PROMPT_MODES,
    build_inputs,
    fewshot_prompt,
    shared_prefix_cache,
    zeroshot_prompt,
)
from llmct.errors import LLMCTError, StoreError, UsageError
from llmct.io.store import ChunkedStore, base_manifest, check_identity, load_npz

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from llmct.core.runner import Tokenizer

#: The paper's three sources: block output (h), attention output (a), MLP output (m).
DEFAULT_SOURCES = ("hidden_out", "attn_out", "mlp_out")
_META_KEYS = ("ids", "text_sha", "n_tokens", "attention")


@dataclass
class ExtractionSummary:
    """What one ``extract`` call did."""

    out_dir: Path
    store_dir: Path
    n_requested: int
    n_skipped: int
    n_extracted: int
    seconds: float
    chunks: list[Path] = field(default_factory=list)
    #: items run after the prompt's shared prefix cache / run as full forwards instead
    n_shared_prefix: int = 0
    n_prefix_fallback: int = 0


@dataclass
class Extraction:
    """Merged activations in stimulus order: ``acts[source]`` is ``[n, len(layers), d]`` float32."""

    ids: list[str]
    acts: dict[str, np.ndarray]
    n_tokens: np.ndarray
    manifest: dict
    attention: np.ndarray | None = None  # [n, len(layers), heads, max_tokens], NaN-padded

    @property
    def layers(self) -> list[int]:
        return list(self.manifest["layers"])

    @property
    def n_layers(self) -> int:
        return int(self.manifest["n_layers"])

    def subset(self, ids: Sequence[str]) -> Extraction:
        """The rows of ``ids`` (in that order)."""
        index = {i: n for n, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise StoreError(f"{len(missing)} ids not in this extraction, e.g. {missing[:5]}")
        take = np.array([index[i] for i in ids], dtype=np.int64)
        return Extraction(
            ids=list(ids),
            acts={k: v[take] for k, v in self.acts.items()},
            n_tokens=self.n_tokens[take],
            manifest=self.manifest,
            attention=None if self.attention is None else self.attention[take],
        )


def text_digest(text: str) -> str:
    """Short SHA-256 of a stimulus text (stored per row; checked on resume and load)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` (0-based ``i``, ``0 <= i < n``) or ``(i, n)`` -> ``(i, n)``; None stays None."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            i_text, n_text = spec.split("/")
            i, n = int(i_text), int(n_text)
        except ValueError:
            raise UsageError(f"--shard must look like i/n (e.g. 0/4), got {spec!r}") from None
    else:
        i, n = (int(x) for x in spec)
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {i}/{n}: need n >= 1 and 0 <= i < n (shards are 0-based: the "
                         f"shards of {n} are 0/{n} .. {max(n - 1, 0)}/{n})")
    return i, n


def _as_pairs(stimuli) -> list[tuple[str, str]]:
    """(id, text) for Stimulus objects, dicts with id/text, or (id, text) tuples; ids unique."""
    pairs = []
    for s in stimuli:
        if isinstance(s, tuple):
            sid, text = s
        elif isinstance(s, dict):
            sid, text = s["id"], s["text"]
        else:
            sid, text = s.id, s.text
        pairs.append((str(sid), str(text)))
    seen: set[str] = set()
    for sid, _ in pairs:
        if sid in seen:
            raise LLMCTError(f"duplicate stimulus id {sid!r}; ids must be unique to be stored")
        seen.add(sid)
    return pairs


def _prompt_template(tokenizer, mode: str) -> str:
    """The exact wrapper text of a prompt mode (recorded so two templates never share a folder)."""
    if mode == "fewshot":
        return fewshot_prompt("{text}")
    if mode == "zeroshot":
        return zeroshot_prompt("{text}")
    if mode == "chat":
        template = getattr(tokenizer, "chat_template", None) or ""
        return "chat:" + hashlib.sha256(str(template).encode()).hexdigest()[:16]
    if mode in PROMPT_MODES:
        return "{text}"
    raise LLMCTError(f"unknown prompt mode {mode!r}; choose from {sorted(PROMPT_MODES)}")


def stores_in(out_dir: str | Path) -> list[ChunkedStore]:
    """The unsharded store at ``out_dir`` and every ``shard-*`` store below it."""
    out_dir = Path(out_dir)
    shard_dirs = sorted(p for p in out_dir.glob("shard-*-of-*") if p.is_dir())
    return [ChunkedStore(out_dir), *(ChunkedStore(p) for p in shard_dirs)]


def _stored_digests(out_dir: Path) -> set[tuple[str, str]]:
    """``(id, text digest)`` of every row already stored under ``out_dir``."""
    out: set[tuple[str, str]] = set()
    for store in stores_in(out_dir):
        for chunk in store.chunks():
            data = load_npz(chunk, ["ids", "text_sha"])[0]
            out.update(zip(map(str, data["ids"]), map(str, data["text_sha"]), strict=True))
    return out


def _missing(pairs: list[tuple[str, str]], stored: set[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(sid, text) for sid, text in pairs if (sid, text_digest(text)) not in stored]


def missing_items(out_dir: str | Path, stimuli, shard: tuple[int, int] | None = None
                  ) -> list[tuple[str, str]]:
    """``(id, text)`` of the stimuli (of ``shard`` ``(i, n)`` only, if given: items ``i, i+n, ...``)
    not yet stored under ``out_dir`` with their current text; decides whether a model must be
    loaded at all."""
    pairs = _as_pairs(stimuli)
    if shard is not None:
        pairs = pairs[shard[0]::shard[1]]
    stored = _stored_digests(Path(out_dir)) if Path(out_dir).exists() else set()
    return _missing(pairs, stored)


def _check_manifest(out_dir: Path, manifest: dict) -> None:
    for store in stores_in(out_dir):
        store.check_compatible(manifest)


def check_store(out_dir: str | Path, expected: dict | None) -> None:
    """Check every chunk under ``out_dir`` (complete or not, every shard) against the identity
    ``expected`` (see :func:`expected_identity`) and against each other.

    Raises:
        StoreError: a chunk of another model, dtype, prompt or position rule (both identities
            named), or a truncated or corrupt chunk (named, with how to recover).
    """
    first: dict | None = None
    for store in stores_in(out_dir):
        for chunk, manifest in store.manifests():
            if expected:
                check_identity(chunk, manifest, expected)
            if first is None:
                first = manifest
            else:
                check_identity(chunk, manifest, first)


def check_layer_values(layers) -> None:
    """Refuse layer selections that are not ``"all"`` or integers (``True`` is not layer 1).

    Raises:
        UsageError: naming the offending values.
    """
    if isinstance(layers, str):
        return
    values = [layers] if isinstance(layers, int | np.integer) else list(layers)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer)]
    if bad:
        raise UsageError(f"layer indices must be integers (or 'all'), got {bad}")


def position_rule(prompt: str) -> str:
    """The manifest's ``position`` for a prompt mode (as :func:`extract` records it)."""
    if prompt == "chat":
        return "chat:explicit"
    _, position = build_inputs(None, ["x"], prompt)
    return describe_position(position)


def expected_identity(model_name: str, *, prompt: str, dtype: str | None = None,
                      device: str | None = None) -> dict:
    """The identity (IDENTITY fields) a run of ``model_name`` under ``prompt`` will record,
    computed without loading the model: the weights' fingerprint from their files
    (:func:`llmct.core.models.weights_fingerprint`; None, i.e. not compared, when they are not on
    this machine), the dtype ``load_model`` will resolve, the prompt template and position rule.
    """
    from llmct.core.models import resolve_device, resolve_dtype, weights_fingerprint

    torch_dtype = resolve_dtype(dtype, resolve_device(device))
    return {
        "model": model_name,
        "model_fingerprint": weights_fingerprint(model_name),
        "dtype": str(torch_dtype).replace("torch.", ""),
        "prompt": prompt,
        "prompt_template": None if prompt == "chat" else _prompt_template(None, prompt),
        "position": position_rule(prompt),
    }


def extract(
    model: PreTrainedModel,
    tokenizer: Tokenizer,
    stimuli,
    out_dir: str | Path,
    *,
    prompt: str = "fewshot",
    sources: Sequence[str] = DEFAULT_SOURCES,
    layers="all",
    batch_size: int = 8,
    shard: str | tuple[int, int] | None = None,
    chunk_size: int = 32,
    attention: bool = False,
    progress: bool = True,
    model_name: str | None = None,
    shared_prefix: bool = True,
) -> ExtractionSummary:
    """Capture and store the activations of ``stimuli`` not yet stored under ``out_dir``.

    ``stimuli``: Stimulus objects (or dicts / ``(id, text)`` tuples). Returns what was done;
    read the result with :func:`load_extraction`.

    ``shared_prefix``: the prompt's common start (:func:`llmct.emotion.prompts.template_prefix`:
    the few-shot or zero-shot block, the chat header) is run once per call and its KV cache
    reused for every item whose tokens begin with it (:class:`llmct.core.prefix.SharedPrefix`;
    equal to full forwards to float rounding, attention weights included; False: full
    forwards);
    each chunk's manifest records its counts (prefix tokens, items shared, items run whole).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    pairs = _as_pairs(stimuli)
    shard = parse_shard(shard)
    mine = pairs if shard is None else pairs[shard[0] :: shard[1]]
    store_dir = out_dir if shard is None else out_dir / f"shard-{shard[0]}-of-{shard[1]}"
    _check_sizes(chunk_size, batch_size, layers)

    manifest = _extraction_manifest(model, tokenizer, prompt, sources, layers, model_name,
                                    attention)
    _check_manifest(out_dir, manifest)
    stored = _stored_digests(out_dir)
    todo = _missing(mine, stored)
    stored_ids = {sid for sid, _ in stored}
    changed = sum(sid in stored_ids for sid, _ in todo)
    if changed and progress:
        print(f"[extract] {changed} stimuli changed text since they were extracted; "
              "re-extracting them", flush=True)

    store = ChunkedStore(store_dir)
    written: list[Path] = []
    use_prefix = shared_prefix and bool(todo)
    prefix = shared_prefix_cache(model, tokenizer, prompt) if use_prefix else None
    counts = {"shared": 0, "fallback": 0}
    chunks = [todo[k : k + chunk_size] for k in range(0, len(todo), chunk_size)]
    for n, chunk in enumerate(chunks):
        if progress:
            print(f"[extract] chunk {n + 1}/{len(chunks)} ({len(chunk)} items) -> {store_dir}",
                  flush=True)
        path, used = _extract_chunk(model, tokenizer, chunk, store, prompt=prompt,
                                    sources=sources, layers=layers, batch_size=batch_size,
                                    attention=attention, prefix=prefix,
                                    manifest={**manifest, "shard": None if shard is None
                                              else f"{shard[0]}/{shard[1]}"})
        written.append(path)
        if used:
            counts = {k: counts[k] + used[k] for k in counts}
            if used["fallback"] and progress:
                print(f"[extract] {used['fallback']} of {len(chunk)} items do not start with the "
                      "prompt's shared prefix tokens; ran them as full forwards", flush=True)
    return ExtractionSummary(
        out_dir=out_dir,
        store_dir=store_dir,
        n_requested=len(mine),
        n_skipped=len(mine) - len(todo),
        n_extracted=len(todo),
        seconds=time.perf_counter() - t0,
        chunks=written,
        n_shared_prefix=counts["shared"],
        n_prefix_fallback=counts["fallback"],
    )


def _check_sizes(chunk_size: int, batch_size: int, layers) -> None:
    """UsageError for a chunk or batch size below 1 or a malformed ``layers`` value."""
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be >= 1, got {chunk_size}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    check_layer_values(layers)


def _extraction_manifest(model: PreTrainedModel, tokenizer: Tokenizer, prompt: str,
                         sources: Sequence[str], layers, model_name: str | None,
                         attention: bool) -> dict:
    """The identity of a store: model, fingerprint, dtype, prompt and its template, read-out
    rule, sources, layers, architecture (:func:`check_store` compares it on every read)."""
    adapter = get_adapter(model)
    n_layers = adapter.n_layers(model)
    name = model_name or getattr(model.config, "llmct_name", None) or model.config._name_or_path
    return base_manifest(
        model=name,
        model_fingerprint=model_fingerprint(model),
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        position=position_rule(prompt),
        prompt=prompt,
        prompt_template=_prompt_template(tokenizer, prompt),
        sources=list(sources),
        layers=resolve_layers(layers, n_layers),
        n_layers=n_layers,
        d_model=int(model.config.hidden_size),
        family=adapter.family,
        attention=bool(attention),
    )


def _extract_chunk(model: PreTrainedModel, tokenizer: Tokenizer, chunk: list[tuple[str, str]],
                   store: ChunkedStore, *, prompt: str, sources: Sequence[str], layers,
                   batch_size: int, attention: bool, prefix: SharedPrefix | None,
                   manifest: dict) -> tuple[Path, dict | None]:
    """Capture one chunk of ``(id, text)`` pairs under ``prompt`` and add it to ``store``
    atomically; returns the chunk's path and its shared-prefix counts (None when unused)."""
    texts = [text for _, text in chunk]
    inputs, pos = build_inputs(tokenizer, texts, prompt)
    cap = capture(model, tokenizer, inputs, sources=sources, layers=layers, position=pos,
                  batch_size=batch_size, attention=attention, shared_prefix=prefix)
    used = cap.meta["shared_prefix"]
    arrays = {
        "text_sha": np.array([text_digest(t) for t in texts]),
        "n_tokens": np.array([len(t) for t in cap.token_ids], dtype=np.int64),
        **{s: cap.acts[s] for s in sources},
    }
    if attention:
        arrays["attention"] = _pad_attention(cast(list[np.ndarray], cap.attention))
    chunk_manifest = {**manifest, "device": cap.meta["device"],
                      "padding_side": cap.meta["padding_side"], "shared_prefix": used}
    return store.add([sid for sid, _ in chunk], arrays, chunk_manifest), used


def _pad_attention(rows: list[np.ndarray], width: int | None = None) -> np.ndarray:
    """Per-row ``[layers, heads, tokens]`` weights stacked, NaN-padded on the token axis."""
    width = width or max(r.shape[-1] for r in rows)
    out = np.full((len(rows), *rows[0].shape[:-1], width), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, ..., : r.shape[-1]] = r
    return out


def load_extraction(out_dir: str | Path, stimuli_or_ids, *, sources: Sequence[str] | None = None,
                    expected: dict | None = None) -> Extraction:
    """Merge every stored chunk under ``out_dir`` into arrays in the order of ``stimuli_or_ids``.

    Given stimuli, each id's row is the one whose text digest matches the stimulus text; given
    bare ids, an id stored for two different texts is an error. Every chunk's manifest is checked
    against ``expected`` (an identity from :func:`expected_identity`; None checks only that the
    chunks agree with each other).

    Raises:
        StoreError: missing ids (the extraction is incomplete), chunks of another model, dtype,
            prompt or position rule (both identities named), or a truncated chunk (named).
    """
    out_dir = Path(out_dir)
    check_store(out_dir, expected)
    items = list(stimuli_or_ids)
    if items and isinstance(items[0], str):
        pairs, order = None, [str(i) for i in items]
    else:
        pairs = _as_pairs(items)
        order = [sid for sid, _ in pairs]
    chunks = [c for store in stores_in(out_dir) for c in store.chunks()]
    if not chunks:
        raise StoreError(f"{out_dir} holds no extracted activations (run the extraction first)")
    want = None if pairs is None else {sid: text_digest(text) for sid, text in pairs}
    rows: dict[str, tuple[int, int]] = {}
    seen: dict[str, set[str]] = {}
    parts: list[dict[str, np.ndarray]] = []
    manifest: dict | None = None
    for c in chunks:
        arrays, man = load_npz(c)
        if manifest is None:
            manifest = man
        keep = [k for k in arrays if k not in _META_KEYS and (sources is None or k in sources)]
        part = {k: arrays[k] for k in ("ids", "text_sha", "n_tokens", *keep)}
        if "attention" in arrays:
            part["attention"] = arrays["attention"]
        for r, (sid, sha) in enumerate(zip(map(str, arrays["ids"]), map(str, arrays["text_sha"]),
                                           strict=True)):
            seen.setdefault(sid, set()).add(sha)
            if want is None or want.get(sid) == sha:
                rows[sid] = (len(parts), r)
        parts.append(part)
    missing = [i for i in order if i not in rows]
    if missing:
        raise StoreError(
            f"{out_dir}: {len(missing)} of {len(order)} stimuli not extracted yet (or their text "
            f"changed since), e.g. {missing[:5]} (run the extraction for them; it resumes)"
        )
    if want is None:
        ambiguous = [i for i in order if len(seen[i]) > 1]
        if ambiguous:
            raise StoreError(f"{out_dir}: ids {ambiguous[:5]} were extracted for several texts; "
                             "pass the stimuli (not bare ids) to choose")
    assert manifest is not None
    src = [k for k in parts[0] if k not in _META_KEYS]
    acts = {s: np.stack([parts[rows[i][0]][s][rows[i][1]] for i in order]) for s in src}
    n_tokens = np.array([parts[rows[i][0]]["n_tokens"][rows[i][1]] for i in order])
    attn = None
    if "attention" in parts[0]:
        attn = _pad_attention(
            [_unpad(parts[rows[i][0]]["attention"][rows[i][1]]) for i in order]
        )
    return Extraction(ids=order, acts=acts, n_tokens=n_tokens, manifest=manifest, attention=attn)


def _unpad(row: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(row).all(axis=tuple(range(row.ndim - 1)))
    return row[..., : int(valid.sum())]


def ensure_extraction(out_dir: str | Path, stimuli, *, load=None, prompt: str = "fewshot",
                      sources: Sequence[str] = DEFAULT_SOURCES, layers="all", batch_size: int = 8,
                      chunk_size: int = 32, progress: bool = True,
                      model_name: str | None = None, expected: dict | None = None,
                      shared_prefix: bool = True) -> Extraction:
    """Load the activations of ``stimuli`` from ``out_dir``, extracting whatever is missing first.

    ``load`` is a zero-argument callable returning ``(model, tokenizer)``; it is only called when
    something must be extracted, so analyses of stored activations never load the model. The
    store is checked against ``expected`` (see :func:`check_store`) before anything is read or
    extracted. ``shared_prefix``: as in :func:`extract`.
    """
    if Path(out_dir).exists():
        check_store(out_dir, expected)
    if missing_items(out_dir, stimuli):
        if load is None:
            raise StoreError(f"{out_dir}: activations missing and no model given to extract them")
        model, tokenizer = load()
        extract(model, tokenizer, stimuli, out_dir, prompt=prompt, sources=sources, layers=layers,
                batch_size=batch_size, chunk_size=chunk_size, progress=progress,
                model_name=model_name, shared_prefix=shared_prefix)
    return load_extraction(out_dir, stimuli, expected=expected)


def limit_stimuli(stimuli: list, n: int | None) -> list:
    """At most ``n`` items of each (set, label), in file order, plus the matched partners
    (same ``pair_id``) of kept items, so quick runs keep every class and every pair intact."""
    if n is None:
        return list(stimuli)
    counts: dict[tuple, int] = {}
    kept = set()
    for k, s in enumerate(stimuli):
        key = (s.set, s.label)
        if counts.get(key, 0) < n:
            counts[key] = counts.get(key, 0) + 1
            kept.add(k)
    pairs = {stimuli[k].pair_id for k in kept if getattr(stimuli[k], "pair_id", None)}
    return [s for k, s in enumerate(stimuli)
            if k in kept or (getattr(s, "pair_id", None) and s.pair_id in pairs)]


def _paths(stimuli_paths) -> list[str]:
    if not stimuli_paths:
        return []
    return [str(stimuli_paths)] if isinstance(stimuli_paths, str | Path) else [
        str(p) for p in stimuli_paths]


def select_stimuli(stimuli_paths: str | Sequence[str] | None, sets: Sequence[str],
                   limit: int | None = None) -> list:
    """A user's JSONL file(s) (validated by :func:`llmct.io.stimuli.load_files`: rows without
    ``set`` take their file's stem as set name) or the shipped ``sets``; at most ``limit`` items
    per (set, label)."""
    from llmct.io.stimuli import load_files, load_sets

    paths = _paths(stimuli_paths)
    chosen = load_files(paths) if paths else load_sets(*sets)
    return limit_stimuli(chosen, limit)


def activation_folder(root: str | Path, prompt: str, stimuli_paths=None) -> Path:
    """``<root>/<prompt>``, or ``<root>/<prompt>-<stem>[+<stem>...]`` for a user's stimulus
    file(s), so the ids of a user file never mix with the shipped sets' and each prompt mode has
    its own store (a long list of stems is shortened to a digest)."""
    stems = [Path(p).stem for p in _paths(stimuli_paths)]
    if not stems:
        return Path(root) / prompt
    joined = "+".join(stems)
    if len(joined) > 80:
        joined = f"{stems[0]}+{len(stems) - 1}more-" + hashlib.sha256(joined.encode()).hexdigest()[:8]
    return Path(root) / f"{prompt}-{joined}"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (so ``--batch-size 0`` is refused before any work)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_extract_args(parser, *, sets: Sequence[str] = ("set_a", "set_b", "set_b_control", "set_c"),
                     prompt: str = "fewshot"):
    """The extraction options shared by ``llmct extract`` and the experiments."""
    parser.add_argument("--model", default="default",
                        help="'default' (embedded SmolLM2-135M-Instruct), a HF id or a local path")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: auto)")
    parser.add_argument("--device", default=None, help="cuda | mps | cpu (default: auto)")
    parser.add_argument("--device-map", default=None, metavar="MAP",
                        help="e.g. 'auto': spread a model too large for one GPU over all visible "
                        "GPUs (accelerate); replaces --device")
    parser.add_argument("--stimuli", nargs="+", default=None, metavar="PATH.jsonl",
                        help="your own stimulus file(s) instead of the shipped sets (rows without "
                        "'set' take the file's stem as their set name)")
    parser.add_argument("--sets", nargs="+", default=list(sets), help="shipped sets to use")
    parser.add_argument("--prompt", default=prompt, choices=sorted(PROMPT_MODES))
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--chunk-size", type=positive_int, default=32,
                        help="items per stored chunk (the unit of resumption)")
    parser.add_argument("--shard", default=None, metavar="i/n",
                        help="extract only items i, i+n, ... (0-based) to split work across processes")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="quick run: at most N stimuli per (set, label)")
    parser.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES))
    parser.add_argument("--layers", nargs="+", type=int, default=None,
                        help="layer indices to extract (default: all; negative counts from the end)")
    parser.add_argument("--activations", default=None, metavar="ROOT",
                        help="root of the activation stores: one sub-folder per prompt mode "
                        "(resumed, never overwritten)")
    parser.add_argument("--torch-threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for the forward passes (on a busy shared machine 1 can "
                        "be several times faster than the default)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--no-shared-prefix", dest="shared_prefix", action="store_false",
                        help="run every prompt whole instead of computing the prompt template's "
                        "common start once (extraction, and the prompt caches of 05 and 06; same "
                        "numbers to float rounding; for checking)")
    return parser


def apply_thread_args(args) -> None:
    """Honour ``--torch-threads`` (call before a CPU extraction)."""
    if getattr(args, "torch_threads", None):
        import torch

        torch.set_num_threads(args.torch_threads)


def load_model_from_args(args, **kwargs):
    """``(model, tokenizer)`` named by ``--model/--dtype/--device/--device-map``, after applying
    ``--torch-threads``: the one place experiments load their model."""
    from llmct.core.models import load_model
    from llmct.io.distributed import process_device

    apply_thread_args(args)
    return load_model(args.model, dtype=args.dtype, device=process_device(args.device),
                      device_map=getattr(args, "device_map", None), **kwargs)


__all__ = [
    "DEFAULT_SOURCES",
    "Extraction",
    "ExtractionSummary",
    "activation_folder",
    "add_extract_args",
    "apply_thread_args",
    "check_layer_values",
    "check_store",
    "ensure_extraction",
    "expected_identity",
    "extract",
    "limit_stimuli",
    "load_extraction",
    "load_model_from_args",
    "missing_items",
    "parse_shard",
    "position_rule",
    "positive_int",
    "select_stimuli",
    "stores_in",
    "text_digest",
]
