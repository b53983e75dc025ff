"""09_emotion_vectors headline: does the first principal component of the emotion vectors follow
valence? (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import Claim, metric, table

INPUTS: tuple[str, ...] = ()
PC1 = "PC1 x valence (LOO pole projection) r"


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (09's long ``summary.csv``). The sign of a principal component
    is arbitrary, so correlations are reported as ``|r|``."""
    s = table(folder, "summary.csv")
    centred = abs(metric(s, PC1, kind="centred"))
    return [
        Claim("vec_pc1_valence_r", "|r| of PC1 of the (projected) vectors with the LOO valence "
              "pole projection (PC sign is arbitrary)", abs(metric(s, PC1, kind="projected")),
              control="raw-centred vectors (no neutral projection)", control_value=centred),
        Claim("vec_pc1_valence_p", "its p (as 09 computes it)",
              metric(s, PC1, "p", kind="projected")),
        Claim("vec_pc1_valence_r_centred", "same |r| for raw-centred vectors", centred),
        Claim("vec_layer", "analysis layer", int(s.layer.iloc[0]))], []
