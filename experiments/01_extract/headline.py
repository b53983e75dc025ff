"""01_extract headline: what was extracted, per stimulus set (contract: :mod:`llmct.io.headline`).
Extraction makes no claim; its rows say how many items and tokens the later experiments read."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import Claim, table

INPUTS: tuple[str, ...] = ()


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (01's ``extraction_summary.csv``: one row per prompt x set)."""
    s = table(folder, "extraction_summary.csv")
    out = []
    for r in s.itertuples(index=False):
        tag = f"extract_{r.prompt}_{r.set}"
        out += [Claim(f"{tag}_n_items", f"{r.set} under the {r.prompt} prompt: items extracted",
                      int(r.n_items)),
                Claim(f"{tag}_tokens_mean", f"{r.set} under the {r.prompt} prompt: mean tokens "
                      f"per item (read-out: {r.position})", float(r.tokens_mean))]
    return out, []
