"""00_ct_scan headline: the CT-scan findings at the ``message_end`` read-out, each with its
interval, control and verdict as the scan decided them (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmct.io.headline import Claim, Missing, guarded, table, value

INPUTS: tuple[str, ...] = ()
FINDINGS = {"user_assistant_gap": ("ct_user_assistant_gap", "user - assistant mean cosine, "
                                   "residual, paired; references rendered as user messages"),
            "fading_memory": ("ct_fading_slope", "centred margin of the matched reference per "
                              "turn (slope)"),
            "top_reference": ("ct_joy_first_fraction", "fraction of turns where joy ranks first "
                              "(raw cosine)"),
            "residual_vs_branches": ("ct_residual_minus_branches", "residual minus attn/mlp "
                                     "mean cosine (user turns)")}


def _findings(folder: Path) -> tuple[pd.DataFrame, Path]:
    tables = sorted(folder.glob("findings_by_position*.csv"), key=lambda p: p.stat().st_mtime)
    if not tables:
        raise Missing("no findings_by_position.csv")
    f = pd.read_csv(tables[-1])
    position = "message_end" if "message_end" in set(f.position) else f.position.iloc[0]
    f = f[f.position == position]
    return f, folder / str(f.folder.iloc[0])


def _finding(f: pd.DataFrame, fid: str) -> Claim:
    cid, meaning = FINDINGS[fid]
    row = f[f.id == fid]
    if row.empty:
        raise Missing(f"no finding {fid!r}")
    r = row.iloc[0]
    def text(col: str) -> str:
        return str(r[col]) if col in r.index and pd.notna(r[col]) else ""

    return Claim(cid, meaning, r.value, r.ci_low, r.ci_high, ci_unit=text("ci_unit"),
                 control=text("control"), verdict=text("verdict"))


def _top_reference(scan: Path) -> list[Claim]:
    m = table(scan, "metrics.csv")
    src = "hidden_in" if "hidden_in" in set(m.source) else m.source.iloc[0]
    m = m[(m.source == src) & m.role.isin(["user", "assistant"])]
    out = []
    for name, cid, what in (("cosine", "ct_top_reference_raw", "raw cosine"),
                            ("cosine_centered", "ct_top_reference_centred", "centred cosine")):
        score = m.groupby(["snapshot", "reference"], sort=False)[name].mean().unstack()
        out.append(Claim(cid, f"most frequent first-ranked reference, {what}",
                         score.idxmax(axis=1).value_counts().idxmax()))
    return out


def _layers(scan: Path) -> list[Claim]:
    lm = table(scan, "layer_map.csv")
    src = "hidden_in" if "hidden_in" in set(lm.source) else lm.source.iloc[0]
    lm = lm[lm.source == src]
    return [Claim("ct_most_discriminative_layer", "layer of maximal spread over references (raw)",
                  int(lm.layer.iloc[lm.spread.argmax()])),
            Claim("ct_most_discriminative_layer_centred", "same, centred cosine",
                  int(lm.layer.iloc[lm.spread_centered.argmax()])),
            Claim("ct_peak_spread", "maximal spread (raw cosine)", float(lm.spread.max()))]


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (00's ``findings_by_position.csv`` and the scan folder of the
    ``message_end`` read-out)."""
    f, scan = _findings(folder)
    out = [Claim("ct_position", "read-out position rule of the scan used",
                 str(value(f, "position")))]
    out += [_finding(f, fid) for fid in FINDINGS]
    notes: list[str] = []
    guarded(out, notes, lambda: _top_reference(scan), "top reference")
    guarded(out, notes, lambda: _layers(scan), "layer map")
    return out, notes
