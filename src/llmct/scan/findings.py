"""The seed's five CT-scan findings, re-tested with a number, an uncertainty and a verdict.

All inputs are the metric arrays of one scan: ``m[metric]`` shaped ``[S, R, n_sources, L]``
(snapshots x references x sources x layers). Uncertainty: bootstrap over conversation turns.
"""

from __future__ import annotations

import numpy as np

from ..stats import bootstrap_indices, percentile_ci

RESIDUAL = ("hidden_in", "hidden_out")
BRANCHES = ("attn_out", "mlp_out")


def _finding(fid, title, seed_claim, value, ci, unit, verdict, detail) -> dict:
    lo, hi = ci
    return {"id": fid, "title": title, "seed_claim": seed_claim, "value": _r(value),
            "ci_low": _r(lo), "ci_high": _r(hi), "unit": unit, "verdict": verdict,
            "detail": detail}


def _r(x):
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _source_mean(cos: np.ndarray, sources: list[str], group) -> np.ndarray | None:
    """Per-snapshot mean cosine over references, layers and the sources of ``group``."""
    idx = [sources.index(s) for s in group if s in sources]
    return cos[:, :, idx].mean(axis=(1, 2, 3)) if idx else None


def residual_vs_branches(cos, sources, user) -> dict:
    res, br = _source_mean(cos, sources, RESIDUAL), _source_mean(cos, sources, BRANCHES)
    seed = "residual stream 0.83-0.88 vs references; attention/MLP outputs 0.47-0.64"
    if res is None or br is None:
        return _finding("residual_vs_branches", "Residual stream vs attention/MLP", seed, None,
                        (None, None), "cosine", "n/a", "needs residual and branch sources")
    d = (res - br)[user]
    boots = bootstrap_indices(len(d))
    ci = percentile_ci(d[boots].mean(1))
    detail = (f"user turns: residual mean cosine {res[user].mean():.3f} "
              f"(range over turns {res[user].min():.3f}-{res[user].max():.3f}); attention/MLP "
              f"{br[user].mean():.3f} ({br[user].min():.3f}-{br[user].max():.3f}). Value = "
              "residual minus branches.")
    in_range = 0.83 <= res[user].mean() <= 0.88 and 0.47 <= br[user].mean() <= 0.64
    verdict = "reproduced" if in_range and ci[0] > 0 else ("partly" if ci[0] > 0 else "not reproduced")
    return _finding("residual_vs_branches", "Residual stream vs attention/MLP", seed,
                    d.mean(), ci, "cosine difference", verdict, detail)


def user_assistant_gap(cos, sources, user, assistant) -> dict:
    seed = "assistant turns weaker than user turns: gap ~0.03 (residual), 0.10-0.13 (attn/mlp)"
    parts, verdicts = [], []
    value, ci = None, (None, None)
    for name, group in (("residual", RESIDUAL), ("attn/mlp", BRANCHES)):
        per = _source_mean(cos, sources, group)
        if per is None or not user.any() or not assistant.any():
            continue
        u, a = per[user], per[assistant]
        bu, ba = bootstrap_indices(len(u), seed=1), bootstrap_indices(len(a), seed=2)
        gaps = u[bu].mean(1) - a[ba].mean(1)
        g_ci = percentile_ci(gaps)
        parts.append(f"{name}: gap {u.mean() - a.mean():+.3f} [{g_ci[0]:+.3f}, {g_ci[1]:+.3f}]")
        verdicts.append(g_ci[0] > 0)
        if name == "residual":
            value, ci = u.mean() - a.mean(), g_ci
    if not parts:
        return _finding("user_assistant_gap", "User-assistant gap ('shock absorber')", seed, None,
                        (None, None), "cosine", "n/a", "needs user and assistant turns")
    verdict = "reproduced" if all(verdicts) else ("partly" if any(verdicts) else "not reproduced")
    return _finding("user_assistant_gap", "User-assistant gap ('shock absorber')", seed, value, ci,
                    "cosine (user - assistant, residual)", verdict, "; ".join(parts))


def top_reference(m, sources, labels, snapshots_mask, ref_label="joy") -> dict:
    seed = "joy ranks first (or near) on most turns, even sad and angry ones"
    src = sources.index("hidden_in") if "hidden_in" in sources else 0
    counts = {}
    fractions = {}
    for metric in ("cosine", "cosine_centered"):
        score = m[metric][snapshots_mask][:, :, src].mean(-1)  # [S, R]
        top = score.argmax(1)
        counts[metric] = {labels[i]: int((top == i).sum()) for i in range(len(labels))}
        fractions[metric] = top
    if ref_label not in labels:
        return _finding("top_reference", "Which reference ranks first ('joy bias')", seed, None,
                        (None, None), "fraction of turns", "n/a", f"no {ref_label!r} reference")
    j = labels.index(ref_label)
    raw_top = (fractions["cosine"] == j).astype(float)
    cen_top = (fractions["cosine_centered"] == j).astype(float)
    boots = bootstrap_indices(len(raw_top))
    ci = percentile_ci(raw_top[boots].mean(1))
    raw_winner = max(counts["cosine"], key=counts["cosine"].get)
    cen_winner = max(counts["cosine_centered"], key=counts["cosine_centered"].get)
    detail = (f"first-place counts over {len(raw_top)} turns ({sources[src]}, mean over layers): "
              f"raw {counts['cosine']}; centred {counts['cosine_centered']}. "
              f"{ref_label} first on {raw_top.mean():.0%} of turns raw, {cen_top.mean():.0%} centred.")
    if raw_winner == ref_label:
        verdict = "reproduced" if cen_winner == ref_label else "partly"
        detail += " Survives centring." if cen_winner == ref_label else " Does NOT survive centring."
    else:
        verdict = "not reproduced"
        detail += f" Most frequent first place: {raw_winner} (raw), {cen_winner} (centred)."
    return _finding("top_reference", "Which reference ranks first ('joy bias')", seed,
                    raw_top.mean(), ci, "fraction of turns", verdict, detail)


def fading_memory(m, sources, labels, tags, turn_index, user) -> dict:
    seed = "matched-reference cosine fades over the conversation (0.90 first turn -> 0.67-0.73)"
    src = sources.index("hidden_in") if "hidden_in" in sources else 0
    rows = [i for i in np.nonzero(user)[0] if tags[i] in labels]
    if len(rows) < 3:
        return _finding("fading_memory", "Emotional memory fades", seed, None, (None, None),
                        "cosine per turn", "n/a", "fewer than 3 user turns tagged with a reference")
    rows = np.array(rows)
    ref = np.array([labels.index(tags[i]) for i in rows])
    x = np.asarray(turn_index)[rows].astype(float)
    out = {}
    for metric in ("cosine", "cosine_centered"):
        score = m[metric][:, :, src].mean(-1)  # [S, R]
        matched = score[rows, ref]
        others = np.array([np.delete(score[i], r).mean() for i, r in zip(rows, ref, strict=True)])
        out[metric] = (matched, matched - others)
    matched, margin = out["cosine"]
    boots = bootstrap_indices(len(rows))
    slopes = np.array([np.polyfit(x[b], matched[b], 1)[0] if len(set(x[b])) > 1 else np.nan
                       for b in boots])
    margin_c = out["cosine_centered"][1]
    slope = np.polyfit(x, matched, 1)[0]
    slope_margin = np.polyfit(x, margin_c, 1)[0]
    ci = percentile_ci(slopes)
    detail = (f"matched reference, {sources[src]} raw cosine: first tagged turn {matched[0]:.3f}, "
              f"last {matched[-1]:.3f}; slope {slope:+.4f}/turn. Control: the centred margin of the "
              f"matched reference over the others has slope {slope_margin:+.4f}/turn "
              "(a fading margin means fading emotion-specific signal, not just drift).")
    verdict = "reproduced" if ci[1] < 0 else "not reproduced"
    return _finding("fading_memory", "Emotional memory fades", seed, slope, ci, "cosine per turn",
                    verdict, detail)


def discriminative_layers(m, sources, user) -> dict:
    seed = "spread tiny in early layers (<0.01), maximal deep (layer 31/36, 0.111: ~15x early)"
    cos = m["cosine"][user]  # [S, R, src, L]
    spread = cos.max(1) - cos.min(1)  # [S, src, L]
    n_layers = spread.shape[-1]
    early = max(1, int(round(0.15 * n_layers)))
    parts = []
    boots = bootstrap_indices(spread.shape[0])
    for k, s in enumerate(sources):
        curve = spread[:, k].mean(0)
        peak = int(curve.argmax())
        peak_ci = percentile_ci([spread[b, k].mean(0).argmax() for b in boots])
        ratio = curve[peak] / max(curve[:early].mean(), 1e-9)
        parts.append(f"{s}: peak layer {peak} ({peak / max(n_layers - 1, 1):.0%} depth; bootstrap "
                     f"[{peak_ci[0]:.0f}, {peak_ci[1]:.0f}]), spread {curve[peak]:.3f}, early "
                     f"(layers 0-{early - 1}) {curve[:early].mean():.4f}, ratio {ratio:.1f}x")
    k = sources.index("hidden_in") if "hidden_in" in sources else 0
    curve = spread[:, k].mean(0)
    peak = int(curve.argmax())
    ratio_boot = [spread[b, k].mean(0).max() / max(spread[b, k].mean(0)[:early].mean(), 1e-9)
                  for b in boots]
    early_small = curve[:early].mean() < 0.01
    deep = peak / max(n_layers - 1, 1) >= 0.5
    verdict = "reproduced" if early_small and deep else ("partly" if deep or early_small else "not reproduced")
    return _finding("discriminative_layers", "Most discriminative layers", seed,
                    curve[peak] / max(curve[:early].mean(), 1e-9), percentile_ci(ratio_boot),
                    f"peak/early spread ratio ({sources[k]})", verdict, "; ".join(parts))


def nearest_reference_accuracy(m, sources, labels, tags, user) -> dict:
    """Control for the whole scan: can the nearest reference name the tagged emotion at all?"""
    rows = np.array([i for i in np.nonzero(user)[0] if tags[i] in labels])
    seed = "(not in the seed) nearest reference recovers the user turn's intended emotion"
    if len(rows) == 0:
        return _finding("nearest_reference", "Nearest-reference accuracy", seed, None,
                        (None, None), "accuracy", "n/a", "no user turn is tagged with a reference")
    truth = np.array([labels.index(tags[i]) for i in rows])
    best = {}
    for metric in ("cosine", "cosine_centered"):
        hit = m[metric][rows].argmax(1) == truth[:, None, None]  # [n, src, L]
        acc = hit.mean(0)
        s, layer = np.unravel_index(acc.argmax(), acc.shape)
        best[metric] = (acc.max(), sources[s], int(layer), hit[:, s, layer].astype(float))
    acc, src, layer, hits = best["cosine_centered"]
    boots = bootstrap_indices(len(hits))
    chance = 1 / len(labels)
    detail = (f"{len(rows)} tagged user turns; chance {chance:.2f}. Best raw: {best['cosine'][0]:.2f} "
              f"({best['cosine'][1]} layer {best['cosine'][2]}); best centred: {acc:.2f} ({src} "
              f"layer {layer}). Best-of-{m['cosine'].shape[2] * m['cosine'].shape[3]} layers is "
              "optimistic: treat it as an upper bound.")
    return _finding("nearest_reference", "Nearest-reference accuracy", seed, acc,
                    percentile_ci(hits[boots].mean(1)), "accuracy (centred)",
                    "n/a", detail)


def all_findings(m, sources, labels, roles, tags) -> list[dict]:
    roles = np.asarray(roles)
    user, assistant = roles == "user", roles == "assistant"
    turn_index = np.arange(len(roles))
    return [
        residual_vs_branches(m["cosine"], sources, user),
        user_assistant_gap(m["cosine"], sources, user, assistant),
        top_reference(m, sources, labels, user | assistant),
        fading_memory(m, sources, labels, tags, turn_index, user),
        discriminative_layers(m, sources, user),
        nearest_reference_accuracy(m, sources, labels, tags, user),
    ]
