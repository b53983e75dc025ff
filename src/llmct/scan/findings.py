"""The seed's CT-scan findings, re-tested with a number, an interval over a named unit, a control
and a verdict in the project's vocabulary.

Each finding is computed in two steps, so that one conversation and a population of
conversations are judged by the same rule:

1. ``rows``: per-unit arrays of one conversation (user turns, user-assistant pairs, tagged turns)
   and ``stats``: the finding's scalar *quantities* computed from those rows (a mean, a slope, a
   fraction). One conversation: each quantity gets a percentile bootstrap over its rows
   (``ci_unit`` ``turns (one conversation)``; the snapshots of one conversation are nested, each
   containing the earlier ones, so these intervals are optimistic).
2. ``judge``: the verdict from the quantities' intervals. A population
   (:func:`pool_findings`) computes each quantity once per conversation, then pools with the
   **conversation as the unit**: the mean over conversations with a percentile bootstrap over
   conversations (:func:`llmct.analysis.stats.cluster_bootstrap_mean`, one value per conversation).

Verdicts (``VERDICTS``): ``reproduced``; ``reproduced, but a control explains it`` (the control and
its number are named in ``control``); ``not reproduced``; ``not testable here`` (the reason is in
``reason``); ``partly``.

Inputs: ``m[metric]`` shaped ``[S, R, n_sources, L]`` (snapshots x references x sources x layers)
with the references rendered as **user** messages, and optionally ``m_assistant`` with the same
references (and baseline) rendered as **assistant** messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from llmct.analysis.stats import (
    UnitInterval,
    bootstrap_indices,
    cluster_bootstrap_mean,
    percentile_ci,
)

RESIDUAL = ("hidden_in", "hidden_out")
BRANCHES = ("attn_out", "mlp_out")
VERDICTS = ("reproduced", "reproduced, but a control explains it", "not reproduced",
            "not testable here", "partly")
REPRODUCED, EXPLAINED, NOT_REPRODUCED, NOT_TESTABLE, PARTLY = VERDICTS
N_BOOT = 2000
POPULATION_UNIT = "conversations"
SMALL_N_NOTE = ("n = {n} conversations is small: the percentile bootstrap over conversations "
                "can be too narrow at this n; read it beside the per-conversation values")
TEMPLATE_END_REASON = ("at template_end every snapshot is read at the same template token "
                       "(<|im_end|>-style end of the rendered prefix), so {what}")


@dataclass
class ScanArrays:
    """One conversation's metric arrays and turn annotations (what every finding reads).

    ``m`` / ``m_assistant``: metric -> ``[S, R, K, L]`` with references rendered as user /
    assistant messages (``m_assistant`` may be None: the role control is then not testable).
    ``roles``, ``tags``: per snapshot (message) role and emotion tag (None if untagged).
    ``endings``: per snapshot, whether the message's content ends in punctuation (``"punct"``)
    or a word (``"word"``): at ``message_end`` that is the read-out token, whose identity
    dominates the residual cosine (:func:`ending_class`).
    """

    m: dict[str, np.ndarray]
    sources: list[str]
    labels: list[str]
    roles: list[str]
    tags: list[str | None]
    position: str = "message_end"
    m_assistant: dict[str, np.ndarray] | None = None
    endings: list[str | None] | None = None  # per snapshot: "punct" / "word" (message_end only)

    @property
    def role_arr(self) -> np.ndarray:
        return np.asarray(self.roles)

    def src(self, prefer: str = "hidden_in") -> int:
        return self.sources.index(prefer) if prefer in self.sources else 0


@dataclass
class Spec:
    """A finding: how to get its rows, its quantities, and its verdict."""

    id: str
    title: str
    seed_claim: str
    headline: str  # the quantity reported as ``value``
    unit: str  # unit of the headline value
    row_unit: str  # what one row is (for ``ci_unit`` of one conversation)
    rows: Callable[[ScanArrays], dict[str, np.ndarray] | str]  # str: why not testable
    stats: Callable[[dict[str, np.ndarray]], dict[str, float]]
    judge: Callable[[dict[str, UnitInterval], dict], tuple[str, str, str]]
    describe: Callable[[ScanArrays, dict[str, np.ndarray]], str] | None = None
    extra: dict = field(default_factory=dict)


def _r(x):
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _g(x):
    """6 significant digits (quantities are pooled later: slopes of ~1e-3 keep their digits)."""
    return None if x is None or not np.isfinite(x) else float(f"{float(x):.6g}")


def _fmt(q: UnitInterval, digits: int = 3, sign: bool = True) -> str:
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    if not np.isfinite(q.estimate):
        return "n/a"
    ci = (f" [{f.format(q.lo)}, {f.format(q.hi)}]" if np.isfinite(q.lo) and np.isfinite(q.hi)
          else "")
    return f.format(q.estimate) + ci


def _ok_pos(q: UnitInterval | None) -> bool:
    return q is not None and np.isfinite(q.lo) and q.lo > 0


def _ok_neg(q: UnitInterval | None) -> bool:
    return q is not None and np.isfinite(q.hi) and q.hi < 0


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or len(np.unique(x)) < 2:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def _group_mean(cos: np.ndarray, sources: list[str], group) -> np.ndarray | None:
    """Per-snapshot mean cosine over references, layers and the sources of ``group``: ``[S]``."""
    idx = [sources.index(s) for s in group if s in sources]
    return cos[:, :, idx].mean(axis=(1, 2, 3)) if idx else None


# -- residual vs branches ------------------------------------------------------------------------

def _rows_residual(d: ScanArrays):
    res, br = _group_mean(d.m["cosine"], d.sources, RESIDUAL), _group_mean(d.m["cosine"], d.sources, BRANCHES)
    user = d.role_arr == "user"
    if res is None or br is None:
        return "needs a residual source (hidden_in/hidden_out) and a branch (attn_out/mlp_out)"
    if not user.any():
        return "no user turns"
    return {"res": res[user], "br": br[user]}


def _stats_residual(r):
    return {"diff": float((r["res"] - r["br"]).mean()), "residual": float(r["res"].mean()),
            "branches": float(r["br"].mean())}


def _judge_residual(q, ctx):
    in_range = 0.83 <= q["residual"].estimate <= 0.88 and 0.47 <= q["branches"].estimate <= 0.64
    ordered = _ok_pos(q["diff"])
    detail = (f"user turns: residual mean cosine {_fmt(q['residual'], sign=False)}, attention/MLP "
              f"{_fmt(q['branches'], sign=False)}; residual minus branches {_fmt(q['diff'])}. "
              f"Levels in the seed's ranges: {'yes' if in_range else 'no'}.")
    verdict = REPRODUCED if ordered and in_range else (PARTLY if ordered else NOT_REPRODUCED)
    return verdict, "", detail


# -- user-assistant gap ---------------------------------------------------------------------------

def _pairs(roles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user, assistant) snapshot indices: each user turn with the assistant turn answering it."""
    u = np.array([i for i in range(len(roles) - 1)
                  if roles[i] == "user" and roles[i + 1] == "assistant"], dtype=int)
    return u, u + 1


def _rows_gap(d: ScanArrays):
    u, a = _pairs(d.role_arr)
    if len(u) == 0:
        return "no user turn is answered by an assistant turn"
    out = {}
    for rend, m in (("userref", d.m), ("asstref", d.m_assistant)):
        if m is None:
            continue
        for name, group in (("res", RESIDUAL), ("br", BRANCHES)):
            per = _group_mean(m["cosine"], d.sources, group)
            if per is not None:
                out[f"{name}_{rend}"] = per[u] - per[a]
    if not out:
        return "needs a residual source (hidden_in/hidden_out) or a branch (attn_out/mlp_out)"
    if d.endings is not None and d.position == "message_end":
        # the last-token control: pairs whose user and assistant read-out tokens are alike
        eu, ea = [d.endings[i] for i in u], [d.endings[i] for i in a]
        out["same_end"] = np.array([x == y for x, y in zip(eu, ea, strict=True)], dtype=float)
        out["user_punct"] = np.array([x == "punct" for x in eu], dtype=float)
    return out


def ending_class(content: str | None) -> str | None:
    """``"punct"`` if ``content`` ends in sentence punctuation (``. ! ? …`` or a closing quote or
    bracket after one), ``"word"`` otherwise; None for no content."""
    if not content or not content.strip():
        return None
    text = content.rstrip().rstrip("\"')]*_ ")
    return "punct" if text[-1:] in ".!?…" else "word"


def _stats_gap(r):
    out = {k: float(v.mean()) for k, v in r.items() if k not in ("same_end", "user_punct")}
    if "same_end" in r:
        same = r["same_end"] > 0
        for k in ("res_userref", "res_asstref"):
            if k in r:
                out[f"{k}_same_ending"] = float(r[k][same].mean()) if same.any() else float("nan")
        out["same_ending_pairs"] = float(same.mean())
        out["user_ends_in_punct"] = float(r["user_punct"].mean())
    return out


def _judge_gap(q, ctx):
    groups = [g for g in ("res", "br") if f"{g}_userref" in q]
    names = {"res": "residual", "br": "attn/mlp"}
    user_ok = {g: _ok_pos(q[f"{g}_userref"]) for g in groups}
    asst_ok = {g: _ok_pos(q.get(f"{g}_asstref")) for g in groups}
    parts = []
    for rend, label in (("userref", "references as user messages"),
                        ("asstref", "references as assistant messages")):
        got = [f"{names[g]} {_fmt(q[f'{g}_{rend}'])}" for g in groups if f"{g}_{rend}" in q]
        if got:
            parts.append(f"{label}: " + ", ".join(got))
    detail = ("paired gap (each user turn minus the assistant turn answering it, mean cosine to "
              "the references) — " + "; ".join(parts) + ".")
    same = q.get("res_userref_same_ending")
    if "user_ends_in_punct" in q:
        detail += (f" Last-token control (message_end reads the content's last token): user "
                   f"turns end in punctuation on {q['user_ends_in_punct'].estimate:.0%} of pairs, "
                   f"the pair's two turns end alike (both punctuation or both a word) on "
                   f"{q['same_ending_pairs'].estimate:.0%}; residual gap on those pairs "
                   f"{_fmt(same) if same is not None else 'n/a'}.")
    if not any(f"{g}_asstref" in q for g in groups):
        return (NOT_TESTABLE, "", detail + " The references were not rendered as assistant "
                "messages, so the role of the rendering cannot be ruled out.")
    asst = "; ".join(f"{names[g]} {_fmt(q[f'{g}_asstref'])}" for g in groups if f"{g}_asstref" in q)
    if all(user_ok.values()) and all(asst_ok.values()):
        if same is not None and np.isfinite(same.estimate) and not _ok_pos(same):
            return (EXPLAINED, f"last token: on pairs whose two turns end alike the residual gap "
                    f"is {_fmt(same)}, so the identity of the read-out token explains it", detail)
        return REPRODUCED, "", detail + " The gap survives both renderings."
    if all(user_ok.values()):
        fails = []
        for g in groups:
            qa = q.get(f"{g}_asstref")
            if asst_ok[g] or qa is None:
                continue
            fails.append(f"{names[g]} {'reverses' if _ok_neg(qa) else 'is not distinguishable from 0'}")
        control = (f"references rendered as assistant messages: gap {asst}; there the "
                   f"{' and the '.join(fails)}, so the rendering of the references as user "
                   "messages (the role shared with the user turns) explains "
                   f"{'the gap' if len(fails) == len(groups) else 'that part of the gap'}")
        return EXPLAINED, control, detail
    if all(asst_ok.values()):
        return (PARTLY, "", detail + " The gap appears only with the references rendered as "
                "assistant messages.")
    if any(user_ok.values()) or any(asst_ok.values()):
        return PARTLY, "", detail + " The gap holds for some sources or renderings only."
    return NOT_REPRODUCED, "", detail


# -- which reference ranks first ------------------------------------------------------------------

def _rows_top(d: ScanArrays, ref_label: str = "joy"):
    if d.position == "template_end":
        return TEMPLATE_END_REASON.format(what="which reference ranks first is the same question "
                                          "asked of one token on every turn")
    if ref_label not in d.labels:
        return f"no {ref_label!r} reference"
    turns = np.isin(d.role_arr, ("user", "assistant"))
    if not turns.any():
        return "no user or assistant turns"
    k = d.src()
    j = d.labels.index(ref_label)
    out = {}
    for metric, key in (("cosine", "raw"), ("cosine_centered", "centred")):
        top = d.m[metric][turns][:, :, k].mean(-1).argmax(1)  # [S_turns]
        out[f"top_{key}"] = top
        out[f"first_{key}"] = (top == j).astype(float)
    return out


def _stats_top(r):
    return {"joy_first_raw": float(r["first_raw"].mean()),
            "joy_first_centred": float(r["first_centred"].mean())}


def _judge_top(q, ctx):
    chance = 1 / max(ctx.get("n_refs", 1), 1)

    def holds(x):
        return x.estimate >= 0.5 and np.isfinite(x.lo) and x.lo > chance

    raw, cen = q["joy_first_raw"], q["joy_first_centred"]
    detail = (f"share of turns on which joy ranks first (hidden_in, mean over layers): raw "
              f"{_fmt(raw, sign=False)}, centred {_fmt(cen, sign=False)}; chance {chance:.2f}. "
              "'Most turns' needs a share >= 0.5 whose interval excludes chance.")
    if holds(raw) and holds(cen):
        return REPRODUCED, "", detail + " Survives centring."
    if holds(raw):
        return (EXPLAINED, f"centring on the neutral baseline: joy first on "
                f"{_fmt(cen, sign=False)} of turns", detail)
    if holds(cen):
        detail += (" Centred (not the seed's measure), joy is first on most turns: a property of "
                   "the centred references, which needs its own test.")
    if np.isfinite(raw.lo) and raw.lo > chance:
        return PARTLY, "", detail + " Joy is first more often than chance, but not on most turns."
    return NOT_REPRODUCED, "", detail


def _describe_top(d: ScanArrays, r):
    counts = {key: {lab: int((r[f"top_{key}"] == i).sum()) for i, lab in enumerate(d.labels)}
              for key in ("raw", "centred")}
    winner = {key: max(c, key=c.__getitem__) for key, c in counts.items()}
    return (f" First-place counts over {len(r['top_raw'])} turns: raw {counts['raw']}; centred "
            f"{counts['centred']}. Most frequent first place: {winner['raw']} (raw), "
            f"{winner['centred']} (centred).")


# -- fading memory --------------------------------------------------------------------------------

def _rows_fading(d: ScanArrays):
    if d.position == "template_end":
        return TEMPLATE_END_REASON.format(what="a change over turns is a change in how one template "
                                          "token is read in a growing context, not memory of the "
                                          "turn's emotion")
    user = d.role_arr == "user"
    rows = np.array([i for i in np.nonzero(user)[0] if d.tags[i] in d.labels], dtype=int)
    if len(rows) < 3:
        return "fewer than 3 user turns tagged with a reference"
    ref = np.array([d.labels.index(d.tags[i]) for i in rows])
    k = d.src()
    out = {"x": rows.astype(float)}
    for metric, key in (("cosine", "raw"), ("cosine_centered", "centred")):
        score = d.m[metric][:, :, k].mean(-1)  # [S, R]
        matched = score[rows, ref]
        others = np.array([np.delete(score[i], r).mean() for i, r in zip(rows, ref, strict=True)])
        out[f"matched_{key}"] = matched
        out[f"margin_{key}"] = matched - others
    return out


def _stats_fading(r):
    return {"slope_margin_centred": _slope(r["x"], r["margin_centred"]),
            "slope_matched_raw": _slope(r["x"], r["matched_raw"]),
            "first_matched_raw": float(r["matched_raw"][np.argmin(r["x"])]),
            "last_matched_raw": float(r["matched_raw"][np.argmax(r["x"])])}


def _judge_fading(q, ctx):
    margin, raw = q["slope_margin_centred"], q["slope_matched_raw"]
    detail = (f"per message index, hidden_in, mean over layers: centred margin of the matched "
              f"reference over the others {_fmt(margin, 4)}/message (decides the verdict); raw "
              f"matched cosine {_fmt(raw, 4)}/message (the seed's measure; first tagged turn "
              f"{q['first_matched_raw'].estimate:.3f}, last {q['last_matched_raw'].estimate:.3f}).")
    if _ok_neg(margin):
        return REPRODUCED, "", detail
    if _ok_neg(raw):
        return (EXPLAINED, f"centred margin of the matched reference over the others: slope "
                f"{_fmt(margin, 4)}/message — what falls is drift of a growing context, not the "
                "emotion-specific signal", detail)
    return NOT_REPRODUCED, "", detail


# -- discriminative layers ------------------------------------------------------------------------

def _rows_layers(d: ScanArrays):
    user = d.role_arr == "user"
    if not user.any():
        return "no user turns"
    cos = d.m["cosine"][user][:, :, d.src()]  # [U, R, L]
    return {"spread": cos.max(1) - cos.min(1)}  # [U, L]


def _early(n_layers: int) -> int:
    return max(1, int(round(0.15 * n_layers)))


def _stats_layers(r):
    curve = r["spread"].mean(0)
    e = _early(len(curve))
    early = float(curve[:e].mean())
    return {"ratio": float(curve.max() / max(early, 1e-9)), "early_spread": early,
            "peak_depth": float(curve.argmax() / max(len(curve) - 1, 1)),
            "peak_spread": float(curve.max())}


def _judge_layers(q, ctx):
    n_layers = ctx.get("n_layers", 0)
    e = _early(n_layers) if n_layers else None
    early_small = np.isfinite(q["early_spread"].hi) and q["early_spread"].hi < 0.01
    deep = np.isfinite(q["peak_depth"].lo) and q["peak_depth"].lo >= 0.5
    detail = (f"hidden_in, user turns: early spread (layers 0-{(e or 1) - 1}) "
              f"{_fmt(q['early_spread'], 4, sign=False)}, peak at {_fmt(q['peak_depth'], 2, sign=False)} "
              f"of depth (spread {q['peak_spread'].estimate:.3f}); peak/early ratio "
              f"{_fmt(q['ratio'], 1, sign=False)}.")
    verdict = REPRODUCED if early_small and deep else (PARTLY if early_small or deep else NOT_REPRODUCED)
    if verdict == REPRODUCED and ctx.get("position") == "template_end":
        return (EXPLAINED, "read-out position: at template_end every snapshot and reference ends "
                f"on the same template token, so the early spread ({q['early_spread'].estimate:.4f}) "
                "is small by construction", detail)
    return verdict, "", detail


def _describe_layers(d: ScanArrays, r):
    user = d.role_arr == "user"
    parts = []
    for k, s in enumerate(d.sources):
        cos = d.m["cosine"][user][:, :, k]
        curve = (cos.max(1) - cos.min(1)).mean(0)
        e = _early(len(curve))
        parts.append(f"{s}: peak layer {int(curve.argmax())}, spread {curve.max():.3f}, early "
                     f"{curve[:e].mean():.4f}")
    return " Per source: " + "; ".join(parts) + "."


# -- nearest-reference accuracy (a control for the whole scan) ------------------------------------

def _rows_nearest(d: ScanArrays, role: str = "user"):
    rows = np.array([i for i in np.nonzero(d.role_arr == role)[0] if d.tags[i] in d.labels],
                    dtype=int)
    if len(rows) == 0:
        return f"no {role} turn is tagged with a reference"
    truth = np.array([d.labels.index(d.tags[i]) for i in rows])
    score = d.m["cosine_centered"][rows][:, :, d.src()].mean(-1)  # [n, R]
    hits_all = (d.m["cosine_centered"][rows].argmax(1) == truth[:, None, None]).astype(float)
    return {"hit": (score.argmax(1) == truth).astype(float), "hits_all": hits_all}


def _stats_nearest(r):
    return {"accuracy": float(r["hit"].mean()),
            "best_layer_accuracy": float(r["hits_all"].mean(0).max())}


def _judge_nearest(q, ctx):
    chance = 1 / max(ctx.get("n_refs", 1), 1)
    acc = q["accuracy"]
    detail = (f"nearest reference by the centred cosine (hidden_in, mean over layers; no layer "
              f"chosen on the data): accuracy {_fmt(acc, sign=False)}, chance {chance:.2f}. The "
              f"best single source x layer reaches {q['best_layer_accuracy'].estimate:.2f} (chosen "
              "on the same turns: an upper bound).")
    return (REPRODUCED if np.isfinite(acc.lo) and acc.lo > chance else NOT_REPRODUCED), "", detail


def _describe_nearest(d: ScanArrays, r):
    acc = r["hits_all"].mean(0)
    s, layer = np.unravel_index(acc.argmax(), acc.shape)
    return f" {len(r['hit'])} tagged turns; best: {d.sources[s]} layer {int(layer)}."


SPECS: tuple[Spec, ...] = (
    Spec("residual_vs_branches", "Residual stream vs attention/MLP",
         "residual stream 0.83-0.88 vs references; attention/MLP outputs 0.47-0.64",
         "diff", "cosine difference (residual - attn/mlp, user turns)", "turns",
         _rows_residual, _stats_residual, _judge_residual),
    Spec("user_assistant_gap", "User-assistant gap ('shock absorber')",
         "assistant turns weaker than user turns: gap ~0.03 (residual), 0.10-0.13 (attn/mlp)",
         "res_userref", "cosine (user - assistant, residual, paired)", "user-assistant pairs",
         _rows_gap, _stats_gap, _judge_gap),
    Spec("top_reference", "Which reference ranks first ('joy bias')",
         "joy ranks first (or near) on most turns, even sad and angry ones",
         "joy_first_raw", "fraction of turns", "turns", _rows_top, _stats_top, _judge_top,
         _describe_top),
    Spec("fading_memory", "Emotional memory fades",
         "matched-reference cosine fades over the conversation (0.90 first turn -> 0.67-0.73)",
         "slope_margin_centred", "centred margin per message", "tagged user turns",
         _rows_fading, _stats_fading, _judge_fading),
    Spec("discriminative_layers", "Most discriminative layers",
         "spread tiny in early layers (<0.01), maximal deep (layer 31/36, 0.111: ~15x early)",
         "ratio", "peak/early spread ratio (hidden_in)", "turns",
         _rows_layers, _stats_layers, _judge_layers, _describe_layers),
    Spec("nearest_reference", "Nearest-reference accuracy (control)",
         "(not in the seed) nearest reference recovers the user turn's intended emotion",
         "accuracy", "accuracy (centred, hidden_in, mean over layers)", "tagged user turns",
         _rows_nearest, _stats_nearest, _judge_nearest, _describe_nearest),
    Spec("nearest_reference_assistant", "Nearest-reference accuracy on assistant turns (control)",
         "(not in the seed) nearest reference recovers the emotion an assistant turn expresses",
         "accuracy", "accuracy (centred, hidden_in, mean over layers)", "tagged assistant turns",
         lambda d: _rows_nearest(d, "assistant"), _stats_nearest, _judge_nearest,
         _describe_nearest),
)
SPEC_BY_ID = {s.id: s for s in SPECS}


def _not_testable(spec: Spec, reason: str, ci_unit: str, n_units) -> dict:
    return {"id": spec.id, "title": spec.title, "seed_claim": spec.seed_claim, "value": None,
            "ci_low": None, "ci_high": None, "unit": spec.unit, "ci_unit": ci_unit,
            "n_units": n_units, "verdict": NOT_TESTABLE, "control": "", "reason": reason,
            "detail": f"not testable here: {reason}", "quantities": {}}


def _assemble(spec: Spec, q: dict[str, UnitInterval], ctx: dict, ci_unit: str, n_units,
              extra_detail: str = "") -> dict:
    verdict, control, detail = spec.judge(q, ctx)
    head = q[spec.headline]
    if control:
        detail += f" Control: {control}."
    return {"id": spec.id, "title": spec.title, "seed_claim": spec.seed_claim,
            "value": _r(head.estimate), "ci_low": _r(head.lo), "ci_high": _r(head.hi),
            "unit": spec.unit, "ci_unit": ci_unit, "n_units": n_units, "verdict": verdict,
            "control": control, "reason": "", "detail": detail + extra_detail,
            "quantities": {k: {"estimate": _g(v.estimate), "ci_low": _g(v.lo), "ci_high": _g(v.hi),
                               "n_units": v.n_units} for k, v in q.items()}}


def conversation_finding(spec: Spec, d: ScanArrays, *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """One finding on one conversation, each quantity with a percentile bootstrap over the
    conversation's rows (``ci_unit`` e.g. ``"turns (one conversation)"``; Efron & Tibshirani 1993,
    *An Introduction to the Bootstrap*, ch. 13). Returns the finding dict of :data:`SPECS` form
    (``value``/``ci_low``/``ci_high`` = the headline quantity, ``quantities`` = all of them)."""
    ci_unit = f"{spec.row_unit} (one conversation)"
    rows = spec.rows(d)
    if isinstance(rows, str):
        return _not_testable(spec, rows, ci_unit, 0)
    n = len(next(iter(rows.values())))
    est = spec.stats(rows)
    idx = bootstrap_indices(n, n_boot, seed)
    boots = [spec.stats({k: v[b] for k, v in rows.items()}) for b in idx]
    q = {}
    for k, e in est.items():
        lo, hi = percentile_ci([b[k] for b in boots])
        q[k] = UnitInterval(float(e), lo, hi, ci_unit, str(n))
    extra = spec.describe(d, rows) if spec.describe else ""
    ctx = {"n_refs": len(d.labels), "n_layers": d.m["cosine"].shape[-1], "position": d.position}
    extra += (" The snapshots of one conversation are nested (each contains the earlier ones), so "
              "this interval over turns is optimistic.")
    return _assemble(spec, q, ctx, ci_unit, n, extra)


def all_findings(m: dict[str, np.ndarray], sources: Sequence[str], labels: Sequence[str],
                 roles: Sequence[str], tags: Sequence[str | None], *,
                 position: str = "message_end", m_assistant: dict[str, np.ndarray] | None = None,
                 endings: Sequence[str | None] | None = None) -> list[dict]:
    """Every finding of :data:`SPECS` on one conversation (see :func:`conversation_finding`).
    Findings that cannot be measured come back as ``not testable here`` with a ``reason``; this
    function raises nothing for missing roles, tags or sources.

    ``m`` / ``m_assistant``: metric -> ``[S, R, K, L]`` arrays, references rendered as user /
    assistant messages; ``roles``/``tags``/``endings``: one per snapshot."""
    d = ScanArrays(m=m, sources=list(sources), labels=list(labels), roles=list(roles),
                   tags=list(tags), position=position, m_assistant=m_assistant,
                   endings=None if endings is None else list(endings))
    return [conversation_finding(spec, d) for spec in SPECS]


def pool_findings(per_conversation: dict[str, list[dict]], *, n_refs: int, n_layers: int,
                  position: str, n_boot: int = N_BOOT, seed: int = 0) -> list[dict]:
    """Pool each finding over conversations, the conversation being the unit.

    ``per_conversation``: conversation name -> its findings (as :func:`all_findings` returns).
    Each quantity is the mean of the per-conversation estimates, with a percentile bootstrap
    over conversations (:func:`llmct.analysis.stats.cluster_bootstrap_mean`); conversations where a
    finding is not testable (e.g. no tagged turns) are left out of it and counted in ``detail``.
    The verdict uses the same rule as one conversation. Each pooled finding carries
    ``per_conversation``: name -> headline value.
    """
    names = list(per_conversation)
    out = []
    for spec in SPECS:
        got = {n: next((f for f in per_conversation[n] if f["id"] == spec.id), None) for n in names}
        usable = {n: f for n, f in got.items() if f and f["verdict"] != NOT_TESTABLE
                  and f.get("quantities")}
        left_out = [n for n in names if n not in usable]
        if len(usable) < 2:
            reasons = {f["reason"] for n, f in got.items()
                       if n not in usable and f and f.get("reason")}
            res = _not_testable(spec, f"{len(usable)} conversation(s) where it can be measured"
                                + (f" ({'; '.join(sorted(reasons))})" if reasons else ""),
                                POPULATION_UNIT, len(usable))
            res["per_conversation"] = {n: (f or {}).get("value") for n, f in got.items()}
            out.append(res)
            continue
        keys = list(next(iter(usable.values()))["quantities"])
        q = {}
        for k in keys:
            vals = [(n, f["quantities"][k]["estimate"]) for n, f in usable.items()
                    if f["quantities"].get(k, {}).get("estimate") is not None]
            if not vals:
                q[k] = UnitInterval(float("nan"), float("nan"), float("nan"), POPULATION_UNIT, "0")
                continue
            q[k] = cluster_bootstrap_mean([v for _, v in vals], [n for n, _ in vals],
                                          unit=POPULATION_UNIT, n_boot=n_boot, seed=seed)
        n = len(usable)
        note = " " + SMALL_N_NOTE.format(n=n) + "."
        if left_out:
            note += f" Left out (not measurable there): {', '.join(left_out)}."
        ctx = {"n_refs": n_refs, "n_layers": n_layers, "position": position}
        res = _assemble(spec, q, ctx, POPULATION_UNIT, n, note)
        res["per_conversation"] = {nm: (f or {}).get("value") for nm, f in got.items()}
        out.append(res)
    return out


__all__ = ["SPECS", "VERDICTS", "ScanArrays", "Spec", "all_findings", "conversation_finding",
           "pool_findings"]
