"""06_knockout headline: the largest effect of one read-out knockout on answer accuracy and on
the downstream probe, and how many knockouts pass each criterion
(contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import Claim, Missing, rows, table, value

INPUTS = ("01_extract",)


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (06's ``knockout_summary.csv``, read-out positions)."""
    s = rows(table(folder, "knockout_summary.csv"), positions="readout")
    if s.empty:
        raise Missing("no read-out knockout rows")
    worst = s.sort_values(["accuracy_drop", "layer"], ascending=[False, True]).iloc[0]
    short = {"attn_out": "a", "mlp_out": "m"}.get(worst.source, worst.source)
    out = [Claim(f"ko_clean_accuracy_{tag}", f"{name} answer accuracy without knockout "
                 "(greedy token)", value(s, "accuracy_clean", set=name))
           for tag, name in (("a", "set_a"), ("b", "set_b")) if name in set(s.set)]
    return out + [
        Claim("ko_max_accuracy_drop", "largest accuracy drop from one read-out knockout (a or m, "
              "one layer, zero/mean/noise)", worst.accuracy_drop),
        Claim("ko_max_drop_at", "where (set, a/m@layer, mode)",
              f"{worst.set} {short}@L{int(worst.layer)} {worst['mode']}"),
        Claim("ko_max_probe_drop", "largest drop of the downstream probe's accuracy",
              s.probe_drop.max()),
        Claim("ko_n_critical_accuracy", "knockouts with accuracy drop >= 0.20",
              int(s.critical_accuracy.astype(bool).sum())),
        Claim("ko_n_critical_changed", "knockouts changing the top token of >= 20% of items "
              "(the original's criterion)", int(s.critical_changed.astype(bool).sum())),
        Claim("ko_n_ablations", "read-out knockouts scored", len(s))], []
