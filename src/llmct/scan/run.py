"""Run a CT scan: scenario -> snapshots + references -> metrics, findings, lens -> files + report."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llmct._version import __version__
from llmct.core.capture import context_length, resolve_layers
from llmct.core.chat import render_chat
from llmct.core.generation import generate_reply
from llmct.core.lens import top_tokens
from llmct.core.models import load_model, model_fingerprint, model_slug
from llmct.errors import CaptureError, ModelLoadError, StoreError
from llmct.io.store import atomic_dir, base_manifest, output_dir_for, save_npz
from llmct.scan.library import save_library
from llmct.scan.metrics import all_metrics
from llmct.scan.scenario import Scenario, ScenarioError, load_scenario
from llmct.scan.snapshots import conversation_snapshots, single_message_states

METRICS = ("cosine", "cosine_centered", "mae", "jaccard")


class _Timer(dict):
    def __call__(self, name):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer[name] = round(timer.get(name, 0.0) + time.perf_counter() - self.t, 3)

        return _Ctx()


def default_output_dir(scenario: Scenario, model_name: str) -> Path:
    if scenario.output.dir:
        return Path(scenario.output.dir.format(name=scenario.name, model=model_slug(model_name)))
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in scenario.name.lower())
    return Path("outputs") / "scans" / slug / model_slug(model_name)


def complete_conversation(model, tokenizer, scenario: Scenario, timer) -> list[dict]:
    """The conversation as dicts, generating every assistant turn that has no content."""
    messages: list[dict] = []
    g = scenario.generation
    for i, m in enumerate(scenario.messages):
        content, generated = m.content, False
        if content is None:
            with timer("generation"):
                content = generate_reply(model, tokenizer, messages, max_new_tokens=g.max_new_tokens,
                                         do_sample=g.do_sample, temperature=g.temperature,
                                         top_p=g.top_p, seed=g.seed + i)
            generated = True
        messages.append({"role": m.role, "content": content, "emotion": m.emotion,
                         "generated": generated})
    return messages


def check_context(model, tokenizer, scenario: Scenario) -> None:
    """Refuse, before any generation, a conversation that cannot fit the model's context: the
    given messages plus ``max_new_tokens`` for every assistant turn still to generate, and each
    reference and baseline message on its own.

    Raises:
        ScenarioError: naming the scenario line, the token count and the model's context.
    """
    limit = context_length(model)
    if not limit:
        return
    given = [{"role": m.role, "content": m.content or ""} for m in scenario.messages]
    n_gen = sum(m.content is None for m in scenario.messages)
    need = len(render_chat(tokenizer, given).input_ids) + n_gen * scenario.generation.max_new_tokens
    if need > limit:
        raise ScenarioError(
            f"messages ({scenario.line_of('messages')}): the conversation needs {need} tokens "
            f"({n_gen} generated turn(s) x max_new_tokens={scenario.generation.max_new_tokens} "
            f"included) but the model has a context of {limit}; shorten it (nothing was generated)")
    system = scenario.system_prompt
    texts: list[tuple[str, tuple[str, str | int], str]] = [
        (f"references.{k}", ("references", k), r.text) for k, r in scenario.references.items()]
    texts += [(f"baseline[{i}]", ("baseline", i), t) for i, t in enumerate(scenario.baseline)]
    for key, path, text in texts:
        chat = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": text}]
        n = len(render_chat(tokenizer, chat).input_ids)
        if n > limit:
            raise ScenarioError(f"{key} ({scenario.line_of(*path)}): {n} tokens; the model has a "
                                f"context of {limit}")


def run_scan(scenario: Scenario, *, model_name: str | None = None, out: str | Path | None = None,
             overwrite: bool = False, save_library_to: str | Path | bool | None = None,
             report: bool | str = True, model_and_tokenizer=None, force_per_prefix: bool = False,
             explicit_out: bool | None = None, reference_cache: dict | None = None,
             chat_template: str | Path | None = None) -> Path:
    """Scan ``scenario`` and write its folder; returns the folder actually written.

    ``save_library_to``: a path for the monitor's reference library, or True for
    ``<folder>/reference_library.safetensors``. ``out`` named by the user (``explicit_out``,
    default: ``out is not None``) must not exist unless ``overwrite``; the default folder gets a
    timestamped sibling instead. Everything that can be checked (output folder, library path,
    layers, context length) is checked before the model generates anything, and the folder is
    written atomically: an error leaves no half-written folder. ``reference_cache`` (a dict the
    caller keeps between scans of one model) reuses the states of references and baseline
    messages already computed with the same system prompt, sources, layers and position.

    Raises StoreError when the output folder or library file exists (see above), ScenarioError
    for layers out of range, a conversation longer than the context or a model that cannot load.
    """
    timer = _Timer()
    name = model_name or scenario.model.id
    explicit = (out is not None) if explicit_out is None else explicit_out
    out_dir = output_dir_for(out or default_output_dir(scenario, name), overwrite=overwrite,
                             explicit=explicit)
    library_path = _library_path(save_library_to, overwrite)
    left_out = _left_out(scenario)
    with timer("model_load"):
        model, tokenizer = model_and_tokenizer or _load(scenario, name)
    if chat_template is not None:  # --chat-template FILE: validated, then used for every render
        from llmct.core.chat import use_chat_template

        use_chat_template(tokenizer, chat_template)
    n_layers, layers = _scan_layers(model, scenario)
    sources = list(scenario.capture.sources)
    position = scenario.capture.position
    check_context(model, tokenizer, scenario)

    messages = complete_conversation(model, tokenizer, scenario, timer)
    chat = _checked_chat(model, tokenizer, scenario, messages, name)

    with timer("snapshots"):
        snaps = conversation_snapshots(model, tokenizer, chat, sources=sources, layers=layers,
                                       position=position, force_per_prefix=force_per_prefix)
    labels = list(scenario.references)
    with timer("references"):
        rs = _reference_states(model, tokenizer, scenario, sources, layers, position,
                               {} if reference_cache is None else reference_cache)
    refs, refs_a, base, centre, centre_a = (rs["refs"], rs["refs_a"], rs["base"], rs["centre"],
                                            rs["centre_a"])
    notes = _notes(snaps, rs["notes"])
    snap_arr = np.stack([snaps.capture[s] for s in sources], axis=1)  # [S, src, L, D]
    ref_arr = refs.transpose(1, 0, 2, 3)  # [R, src, L, D]
    with timer("metrics"):
        m = all_metrics(snap_arr, ref_arr, centre[None])
        roles = [msg["role"] for msg in messages]
        tags = [msg["emotion"] for msg in messages]
        m_assistant = all_metrics(snap_arr, refs_a.transpose(1, 0, 2, 3), centre_a[None])
    with timer("logit_lens"):
        lens = _logit_lens_rows(model, tokenizer, snaps.capture, layers, sources)
    fingerprint, dtype = model_fingerprint(model), str(next(model.parameters()).dtype)
    if model_and_tokenizer is None:  # loaded here: free its weights before the rest (peak memory)
        del model  # (no reference cycles: freed at once, its memory-mapped weights unmapped)
    with timer("findings"):
        from llmct.scan.findings import all_findings, ending_class  # scipy: after the model

        findings = all_findings(m, sources, labels, roles, tags, position=position,
                                m_assistant=m_assistant,
                                endings=[ending_class(msg["content"]) for msg in messages])

    with atomic_dir(out_dir, overwrite) as tmp_dir:
        _write_scan(tmp_dir, out_dir, timer=timer, m=m, messages=messages, labels=labels,
                    sources=sources, layers=layers, findings=findings, lens=lens,
                    fingerprint=fingerprint, dtype=dtype,
                    scenario=scenario, name=name, position=position, snaps=snaps,
                    snap_arr=snap_arr, ref_arr=ref_arr, centre=centre, base=base, notes=notes,
                    n_layers=n_layers, tokens=snaps.tokens_processed + rs["tokens"],
                    roles=roles, save_library_to=save_library_to, library_path=library_path,
                    overwrite=overwrite, report=report, left_out=left_out)
    return out_dir


def _left_out(scenario: Scenario) -> list[dict]:
    """Emotion tags that match no reference: said on stderr, recorded in ``run.json``."""
    left_out = scenario.unmatched_tags()
    for item in left_out:
        print(f"[scan] left out: message {item['message']} ({item['line']}) emotion "
              f"{item['emotion']!r}: {item['reason']}", file=sys.stderr, flush=True)
    return left_out


def _checked_chat(model, tokenizer, scenario: Scenario, messages: list[dict], name: str
                  ) -> list[dict]:
    """The completed conversation as chat messages; ScenarioError when it exceeds the context."""
    chat = [{"role": m["role"], "content": m["content"]} for m in messages]
    limit = context_length(model)
    n_conv = len(render_chat(tokenizer, chat).input_ids)
    if limit and n_conv > limit:
        raise ScenarioError(f"messages ({scenario.line_of('messages')}): the conversation has "
                            f"{n_conv} tokens; {name!r} has a context of {limit}")
    return chat


def _notes(snaps, reference_notes: list[str]) -> list[str]:
    """``run.json``'s notes: how snapshots were computed, how references were rendered, the
    chat template, the centring."""
    how = ("one causal pass" if snaps.mode == "single_pass" else
           "one pass per message prefix (the chat template lacks the prefix property)")
    template = f"chat template: {snaps.template}" + (
        " (the model has none: 'role: content' lines; lines that would start a turn are "
        "refused)" if snaps.template == "plain fallback" else "")
    return [f"snapshots computed in {how}", *reference_notes[:2], template,
            *reference_notes[2:]]


def _library_path(save_library_to: str | Path | bool | None, overwrite: bool) -> Path | None:
    """The ``--save-library`` file, checked before anything is scanned (StoreError for a folder,
    or an existing file without ``overwrite``); None when no path was named."""
    if not isinstance(save_library_to, (str, Path)):
        return None
    path = Path(save_library_to)
    if path.is_dir():
        raise StoreError(f"--save-library {path} is a folder; name a .safetensors file")
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; pass --overwrite or another "
                         "--save-library (nothing was scanned)")
    return path


def _load(scenario: Scenario, name: str):
    """The scenario's model and tokenizer (ScenarioError naming the ``model:`` line on failure)."""
    try:
        return load_model(name, dtype=scenario.model.dtype, device=scenario.model.device)
    except ModelLoadError as exc:
        raise ScenarioError(f"model ({scenario.line_of('model')}): {exc}") from exc


def _scan_layers(model, scenario: Scenario) -> tuple[int, list[int]]:
    """The model's number of layers and the scenario's ``capture.layers`` resolved against it."""
    from llmct.core.arch import get_adapter

    n_layers = get_adapter(model).n_layers(model)
    try:
        return n_layers, resolve_layers(scenario.capture.layers, n_layers)
    except CaptureError as exc:
        raise ScenarioError(f"capture.layers ({scenario.line_of('capture', 'layers')}): {exc}") from exc


def _reference_states(model, tokenizer, scenario: Scenario, sources: Sequence[str], layers: list[int],
                      position: str, cache: dict) -> dict:
    """States of the references and baseline messages, rendered as user messages and (the role
    control) as assistant messages, with the conversation's system prompt; the centring means;
    tokens processed now (0 for states reused from ``cache``); notes for ``run.json``."""
    system = scenario.system_prompt

    def states(texts, role="user"):
        key = (role, tuple(texts), system, tuple(sources), tuple(layers), position)
        if key in cache:
            return cache[key][0], 0
        cache[key] = single_message_states(model, tokenizer, list(texts), system,
                                           sources=sources, layers=layers, position=position,
                                           role=role, share_prefix=True)
        return cache[key]

    ref_texts = [r.text for r in scenario.references.values()]
    refs, tokens = states(ref_texts)
    refs_a, tokens_a = states(ref_texts, "assistant")
    notes = [f"read-out position: {position}; references rendered with the conversation's "
             f"system prompt ({'yes' if system else 'none'}) and template",
             "role control: references and baseline also rendered as assistant messages "
             "(the user-assistant gap must survive both renderings)"]
    out = {"refs": refs, "refs_a": refs_a, "base": None, "centre": refs.mean(1),
           "centre_a": refs_a.mean(1), "tokens": tokens + tokens_a}
    if scenario.baseline:
        base, base_tokens = states(scenario.baseline)
        base_a, base_tokens_a = states(scenario.baseline, "assistant")
        out.update(base=base, centre=base.mean(1), centre_a=base_a.mean(1),
                   tokens=out["tokens"] + base_tokens + base_tokens_a)
        notes.append(f"centred cosine uses the mean of {len(scenario.baseline)} neutral baseline "
                     "messages")
    else:
        notes.append("no baseline messages: centred cosine uses the mean of the references")
    out["notes"] = notes
    return out


def _write_scan(out_dir: Path, final_dir: Path, *, timer, m, messages, labels, sources, layers,
                findings, lens, fingerprint, dtype, scenario, name, position, snaps, snap_arr,
                ref_arr, centre, base, notes, n_layers, tokens, roles, save_library_to,
                library_path, overwrite, report, left_out) -> None:
    """Write every file of a scan into ``out_dir`` (a staging folder renamed to ``final_dir``)."""
    with timer("write"):
        _write_tables(out_dir, m, messages, labels, sources, layers, findings, lens)
        manifest = base_manifest(
            kind="llmct.scan", scenario=scenario.model_dump(), model=name,
            model_fingerprint=fingerprint, dtype=dtype,
            position=position, sources=sources, layers=layers, mode=snaps.mode,
        )
        arrays = {f"snap_{s}": snap_arr[:, k] for k, s in enumerate(sources)}
        arrays.update({f"ref_{s}": ref_arr[:, k] for k, s in enumerate(sources)})
        arrays.update({f"centre_{s}": centre[k] for k, s in enumerate(sources)})
        if base is not None:
            arrays.update({f"baseline_{s}": base[k] for k, s in enumerate(sources)})
        save_npz(out_dir / "snapshots.npz", arrays, manifest)
    run_info = {
        "scenario": scenario.model_dump(), "model": name, "model_fingerprint": fingerprint,
        "n_layers": n_layers, "d_model": int(snap_arr.shape[-1]), "sources": sources,
        "layers": layers, "position": position, "mode": snaps.mode, "notes": notes,
        "chat_template": snaps.template,
        "messages": [{"index": i, "role": msg["role"], "content": msg["content"],
                      "emotion": msg["emotion"], "generated": msg["generated"],
                      "n_tokens": snaps.n_tokens[i]} for i, msg in enumerate(messages)],
        "references": [{"label": k, **r.model_dump()} for k, r in scenario.references.items()],
        "tokens_processed": tokens, "left_out": left_out,
        "timings": timer, "versions": {k: manifest[k] for k in manifest if k.endswith("version")},
        "llmct_version": __version__, "created": manifest["created"],
    }
    if save_library_to is True:
        _save_library(out_dir / "reference_library.safetensors", m, ref_arr, centre, labels,
                      sources, layers, roles, run_info, False)
        run_info["library"] = str(final_dir / "reference_library.safetensors")
    elif library_path is not None:
        _save_library(library_path, m, ref_arr, centre, labels, sources, layers, roles,
                      run_info, overwrite)
        run_info["library"] = str(library_path)
    (out_dir / "run.json").write_text(json.dumps(run_info, indent=2, default=str))
    if report:
        from llmct.scan.report import write_report

        write_report(out_dir, figures=report != "html")  # "html": the page without figures


def _logit_lens_rows(model, tokenizer, cap, layers, sources, k: int = 5,
                     chunk: int = 64) -> list[dict]:
    """Top ``k`` tokens of every snapshot and layer of ``hidden_out``, ``chunk`` rows at a time
    (the logits of all rows at once are ``S * L * vocab`` floats: 120 MB for 20 messages, 30
    layers and SmolLM2's 49,152 tokens, and softmax copies them)."""
    if "hidden_out" not in sources:
        return []
    acts = cap["hidden_out"]  # [S, L, D]
    S, L, D = acts.shape
    flat = acts.reshape(S * L, D)
    tops = [row for i in range(0, S * L, chunk)
            for row in top_tokens(model, tokenizer, flat[i:i + chunk], k=k)]
    return [{"snapshot": s, "layer": layers[j], "rank": r, "token": tok, "prob": round(p, 5)}
            for s in range(S) for j in range(L) for r, (tok, p) in enumerate(tops[s * L + j])]


def _write_tables(out_dir, m, messages, labels, sources, layers, findings, lens) -> None:
    import pandas as pd  # imported once the model's memory is returned (peak memory)

    S, R, K, L = m["cosine"].shape
    idx = np.indices((S, R, K, L)).reshape(4, -1)
    roles = np.array([msg["role"] for msg in messages])
    tags = np.array([msg["emotion"] or "" for msg in messages])
    df = pd.DataFrame({
        "snapshot": idx[0], "role": roles[idx[0]], "emotion": tags[idx[0]],
        "source": np.array(sources)[idx[2]], "layer": np.array(layers)[idx[3]],
        "reference": np.array(labels)[idx[1]],
        **{k: m[k].reshape(-1).round(6) for k in METRICS},
    })
    df.to_csv(out_dir / "metrics.csv", index=False)
    sp = m["cosine"].max(1) - m["cosine"].min(1)  # [S, K, L]
    spc = m["cosine_centered"].max(1) - m["cosine_centered"].min(1)
    mean = m["cosine"].mean(1)
    i2 = np.indices((S, K, L)).reshape(3, -1)
    pd.DataFrame({
        "snapshot": i2[0], "role": roles[i2[0]], "source": np.array(sources)[i2[1]],
        "layer": np.array(layers)[i2[2]], "spread": sp.reshape(-1).round(6),
        "spread_centered": spc.reshape(-1).round(6), "mean_cosine": mean.reshape(-1).round(6),
    }).to_csv(out_dir / "spread.csv", index=False)
    user = roles == "user"
    scored = np.array([u and t in labels for u, t in zip(user, tags, strict=True)])
    truth = np.array([labels.index(t) for t in tags[scored]], dtype=int)
    rows = []
    for k, s in enumerate(sources):
        for j, layer in enumerate(layers):
            acc = acc_c = float("nan")
            if scored.any():
                acc = float((m["cosine"][scored][:, :, k, j].argmax(1) == truth).mean())
                acc_c = float((m["cosine_centered"][scored][:, :, k, j].argmax(1) == truth).mean())
            rows.append({"source": s, "layer": layer, "spread": sp[user, k, j].mean(),
                         "spread_centered": spc[user, k, j].mean(),
                         "mean_cosine": mean[user, k, j].mean(), "nearest_acc": acc,
                         "nearest_acc_centered": acc_c, "chance": 1 / len(labels)})
    pd.DataFrame(rows).round(6).to_csv(out_dir / "layer_map.csv", index=False)
    (out_dir / "findings.json").write_text(json.dumps(findings, indent=2))
    if lens:
        pd.DataFrame(lens).to_csv(out_dir / "logit_lens.csv", index=False)


def _save_library(path, m, ref_arr, centre, labels, sources, layers, roles, provenance,
                  overwrite, n_layers: int = 6) -> None:
    """Keep the ``n_layers`` layers whose centred spread over user turns is largest."""
    k = sources.index("hidden_in") if "hidden_in" in sources else 0
    user = np.asarray(roles) == "user"
    c = m["cosine_centered"][user][:, :, k]  # [S_user, R, L]
    spread = (c.max(1) - c.min(1)).mean(0)
    keep = sorted(np.argsort(spread)[::-1][:n_layers].tolist())
    save_library(path, labels=labels, layers=[layers[j] for j in keep], source=sources[k],
                 references=ref_arr[:, k][:, keep], baseline=centre[k][keep],
                 provenance={"model": provenance["model"],
                             "model_fingerprint": provenance["model_fingerprint"],
                             "position": provenance["position"],
                             "scenario": provenance["scenario"]["name"]},
                 overwrite=overwrite)


def run_scan_cli(args) -> int:
    """``llmct scan``: one scenario file -> one scan; a folder (its sub-folders searched too) or
    several files -> populations, one per pool of identical references, baseline, model and
    capture; a scenario alone in its pool is scanned on its own
    (:func:`llmct.scan.population.run_population`)."""
    paths = args.scenario if isinstance(args.scenario, list | tuple) else [args.scenario]
    if len(paths) > 1 or Path(paths[0]).is_dir():
        from llmct.scan.population import run_population_cli

        args.scenario = list(paths)
        return run_population_cli(args)
    args.scenario = paths[0]
    scenario = load_scenario(args.scenario)
    out = run_scan(scenario, model_name=args.model, out=args.out, overwrite=args.overwrite,
                   save_library_to=args.save_library, report=not args.no_report,
                   chat_template=getattr(args, "chat_template", None))
    print(f"scan written to {out}")
    for f in json.loads((out / "findings.json").read_text()):
        print(f"  [{f['verdict']:>38}] {f['title']}: {f['value']} ({f['ci_low']}, {f['ci_high']}) "
              f"{f['unit']}; over {f.get('ci_unit', 'turns')}")
    if (out / "report.html").exists():
        print(f"report: {out / 'report.html'}")
    return 0
