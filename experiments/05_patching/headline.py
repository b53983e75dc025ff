"""05_patching headline: the best patch cell per pairing, with its paired differences from the
random-vector, unpatched and mean-activation controls (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import Claim, Missing, rows, table, value

INPUTS = ("01_extract",)
PAIRINGS = {"patch_b": "within set_b", "patch_ab": "set_a -> set_b"}
CONTROLS = {"random": "random vector of the same norm", "unpatched": "unpatched target",
            "mean": "mean activation over all stimuli"}
SHORT = {"hidden_out": "h", "attn_out": "a", "mlp_out": "m"}


def _pairing(vs, tag: str, pairing: str) -> list[Claim]:
    sub = rows(vs, pairing=pairing)
    if sub.empty:
        raise Missing(f"no pairing {pairing!r}")
    best = sub.sort_values(["success_patch", "layer"], ascending=[False, True]).iloc[0]
    cell = sub[(sub.source == best.source) & (sub.layer == best.layer)]
    unit = str(value(cell, "ci_unit")) if "ci_unit" in cell.columns else ""
    out = [Claim(f"{tag}_peak_success", f"{pairing}: best patch success (source, layer)",
                 best.success_patch, control=CONTROLS["unpatched"],
                 control_value=value(cell, "success_control", control="unpatched"),
                 verdict=str(value(cell, "verdict", control="unpatched"))),
           Claim(f"{tag}_peak_at", f"{pairing}: where (h/a/m@layer)",
                 f"{SHORT.get(best.source, best.source)}@L{int(best.layer)}")]
    for control, what in CONTROLS.items():
        out += [Claim(f"{tag}_{control}_success", f"{pairing}: {what}, same cell",
                      value(cell, "success_control", control=control)),
                Claim(f"{tag}_minus_{control}", f"{pairing}: patch - {what}, paired bootstrap "
                      "95% CI", value(cell, "success_diff", control=control),
                      value(cell, "success_diff_lo", control=control),
                      value(cell, "success_diff_hi", control=control), unit, control=what,
                      control_value=value(cell, "success_control", control=control),
                      verdict=str(value(cell, "verdict", control=control)))]
    return out


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (05's ``patching_vs_controls.csv``, one row per control)."""
    vs = table(folder, "patching_vs_controls.csv")
    out = [c for tag, pairing in PAIRINGS.items() for c in _pairing(vs, tag, pairing)]
    for control, what in CONTROLS.items():
        sub = rows(vs, control=control)
        n = int(sub.verdict.astype(str).str.startswith("beats").sum())
        out.append(Claim(f"patch_cells_beating_{control}", f"(pairing, source, layer) cells "
                         f"beating the {what} (CI of the difference > 0)", f"{n}/{len(sub)}"))
    return out, []
