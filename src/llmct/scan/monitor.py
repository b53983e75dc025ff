"""Real-time emotion monitor: a few hooked layers score every generated token against a saved
reference library (centred cosine), with per-token and per-turn callbacks."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llmct.core.arch import get_adapter
from llmct.core.generation import eos_ids
from llmct.core.hooks import Hooks
from llmct.core.runner import check_id_tensor, model_device, vocab_size
from llmct.scan.library import ReferenceLibrary

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class EmotionMonitor:
    """``with EmotionMonitor(model, library, on_token=cb) as mon: model.generate(...)``.

    Each forward pass (the prefill, then one per generated token with the KV cache) is scored at
    its last position: centred cosine to each reference, averaged over the hooked layers.
    ``mon.scores`` holds one ``[batch, n_refs]`` array per forward; ``on_token(step, scores)``
    is called after each. Left-padded batches are fine: the last position is always real.

    Rows that finish early: once a row's input token at a decoding step is an end-of-sequence id
    (``eos_token_id``, default the model's ``generation_config``), that step and every later one
    are NaN for the row -- ``generate`` keeps feeding such rows pad tokens while others run on,
    and those states belong to no reply. :meth:`row_scores` and :meth:`turn_scores` use only a
    row's own states, so they equal the single-prompt run of that row.

    The monitor's hooks are *readers* in the ordered registry (:mod:`llmct.core.hooks`): under
    steering, patching or ablation of the same site they see the edited value, whether the
    monitor is entered inside or outside those contexts. Token ids outside the vocabulary are a
    CaptureError naming the row, the id and the valid range.
    """

    def __init__(self, model: PreTrainedModel, library: ReferenceLibrary, *,
                 on_token: Callable | None = None, eos_token_id: int | list[int] | None = None):
        self.model, self.library, self.on_token = model, library, on_token
        self.adapter = get_adapter(model)
        n = self.adapter.n_layers(model)
        bad = [layer for layer in library.layers if not 0 <= layer < n]
        if bad:
            raise ValueError(f"library layers {bad} do not exist in a {n}-layer model")
        device = model_device(model)
        self._refs = library.centred_unit_references().to(device)  # [L, R, D]
        self._base = library.baseline.to(device)  # [L, D]
        self._pending: dict[int, torch.Tensor] = {}
        self.scores: list[np.ndarray] = []
        self._eos_arg = eos_token_id
        self._finished: torch.Tensor | None = None  # [B] bool, rows past their EOS
        self._step_mask: torch.Tensor | None = None  # rows whose state this forward is theirs
        self._vocab = vocab_size(model)
        self._signature = inspect.signature(model.base_model.forward)
        self._var_kw = next((p.name for p in self._signature.parameters.values()
                             if p.kind is inspect.Parameter.VAR_KEYWORD), None)
        self._hooks = Hooks()

    @property
    def labels(self) -> list[str]:
        return self.library.labels

    def _eos_ids(self) -> set[int]:
        return eos_ids(self.model, eos=self._eos_arg)

    def _on_forward(self, _module, args, kwargs) -> None:
        """Before each forward: check the ids, start a new generation at a prefill, and mark
        the rows whose input token is (or follows) their end-of-sequence token."""
        bound = dict(self._signature.bind_partial(*args, **kwargs).arguments)
        if self._var_kw:
            bound = {**(bound.pop(self._var_kw, None) or {}), **bound}
        ids = bound.get("input_ids")
        check_id_tensor(ids, self._vocab)
        past: Any = bound.get("past_key_values")
        past_len = int(past.get_seq_length()) if hasattr(past, "get_seq_length") else 0
        self._pending.clear()
        if ids is None:
            self._step_mask = None
            return
        if past_len == 0 or self._finished is None or len(self._finished) != ids.shape[0]:
            self._finished = torch.zeros(ids.shape[0], dtype=torch.bool)
        else:
            eos = self._eos_ids()
            if eos:
                last = ids[:, -1].detach().cpu()
                self._finished |= torch.tensor([int(t) in eos for t in last.tolist()])
        self._step_mask = ~self._finished

    def _score(self, k: int, hidden: torch.Tensor) -> None:
        h = hidden[:, -1, :].detach().float() - self._base[k]
        h = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        self._pending[k] = h @ self._refs[k].T  # [B, R]
        if len(self._pending) == len(self.library.layers):
            scores = torch.stack(list(self._pending.values())).mean(0).cpu().numpy()
            self._pending.clear()
            if self._step_mask is not None and len(self._step_mask) == len(scores):
                scores[~self._step_mask.numpy()] = np.nan
            self.scores.append(scores)
            if self.on_token:
                self.on_token(len(self.scores) - 1, scores)

    def __enter__(self) -> EmotionMonitor:
        self._hooks.pre(self.model.base_model, self._on_forward)
        for k, layer in enumerate(self.library.layers):
            point = self.adapter.site(self.model, self.library.source, layer)
            self._hooks.read(point, partial(self._score, k))
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.remove()
        self._pending.clear()

    def row_scores(self, row: int, skip_prefill: bool = False) -> np.ndarray:
        """``[n_states, n_refs]``: the scores of one batch row over its own forwards (the
        prefill, then one per generated token fed back), without the states after its EOS."""
        rows = np.stack([s[row] for s in self.scores])
        rows = rows[np.isfinite(rows).all(-1)]
        return rows[1:] if skip_prefill and len(rows) > 1 else rows

    def turn_scores(self, skip_prefill: bool = True) -> np.ndarray:
        """Mean score per item over the generated tokens' states ``[batch, n_refs]`` (each row
        over its own states only; see :meth:`row_scores`)."""
        n = self.scores[0].shape[0]
        return np.stack([self.row_scores(b, skip_prefill).mean(0) for b in range(n)])

    def reset(self) -> None:
        self.scores.clear()
        self._finished = None


def library_from_scenario(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, scenario,
                          layers: list[int] | None = None):
    """Build a reference library on the fly from a scenario's references and baseline."""
    from llmct.core.models import model_fingerprint
    from llmct.scan.snapshots import single_message_states

    n = get_adapter(model).n_layers(model)
    layers = layers or sorted({int(round(x)) for x in np.linspace(n // 2, n - 1, 6)})
    kw = dict(sources=["hidden_in"], layers=layers, position=scenario.capture.position)
    refs = single_message_states(model, tokenizer, [r.text for r in scenario.references.values()],
                                 scenario.system_prompt, **kw)[0][0]
    texts = scenario.baseline or [r.text for r in scenario.references.values()]
    base = single_message_states(model, tokenizer, texts, scenario.system_prompt, **kw)[0][0].mean(0)
    return ReferenceLibrary(list(scenario.references), layers, "hidden_in",
                            torch.from_numpy(refs), torch.from_numpy(base),
                            {"model_fingerprint": model_fingerprint(model)})


def run_monitor_cli(args, out=sys.stdout) -> int:
    """Regenerate each assistant turn of a scenario with a live per-token emotion readout."""
    from transformers.generation.streamers import BaseStreamer

    from llmct.core.generation import generate_reply
    from llmct.core.models import load_model
    from llmct.scan.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    model, tok = load_model(args.model or scenario.model.id, dtype=scenario.model.dtype,
                            device=scenario.model.device)
    if getattr(args, "chat_template", None):
        from llmct.core.chat import use_chat_template

        use_chat_template(tok, args.chat_template)
    if args.library:
        library = ReferenceLibrary.load(args.library)
    else:
        layers = [int(x) for x in args.layers.split(",")] if args.layers else None
        library = library_from_scenario(model, tok, scenario, layers)
    latest: dict = {}
    tty = hasattr(out, "isatty") and out.isatty()

    class _Printer(BaseStreamer):
        first = True

        def put(self, value):
            if self.first:  # generate() first echoes the prompt
                self.first = False
                return
            text = tok.decode(value.reshape(-1).tolist(), skip_special_tokens=True)
            s = latest.get("scores")
            tag = library.labels[int(s[0].argmax())] if s is not None else "?"
            out.write(f"{text}\033[2m[{tag}]\033[0m" if tty else f"{text}[{tag}]")
            out.flush()

        def end(self):
            out.write("\n")

    history: list[dict] = []
    g = scenario.generation
    print(f"monitoring layers {library.layers} ({library.source}) against {library.labels}", file=out)
    for i, m in enumerate(scenario.messages):
        if m.role == "assistant":
            with EmotionMonitor(model, library,
                                on_token=lambda step, s: latest.__setitem__("scores", s)) as mon:
                out.write(f"\n[assistant #{i}] ")
                generate_reply(model, tok, history, max_new_tokens=g.max_new_tokens,
                               do_sample=g.do_sample, temperature=g.temperature, top_p=g.top_p,
                               seed=g.seed + i, streamer=_Printer())
            turn = mon.turn_scores()[0]
            top = np.argsort(turn)[::-1][:3]
            out.write("  turn: " + ", ".join(f"{library.labels[j]} {turn[j]:+.3f}" for j in top) + "\n")
        if m.content is not None:
            history.append({"role": m.role, "content": m.content})
            if m.role == "user":
                out.write(f"[user #{i}] {m.content}\n")
    return 0
