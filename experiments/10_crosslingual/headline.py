"""10_crosslingual headline: English-Japanese RSA and Procrustes fit of the emotion vectors,
each beside its shuffled null (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import Claim, metric, table

INPUTS = ("09_emotion_vectors",)
RSA = "RSA Spearman (upper triangles)"
PROC = "Procrustes fit (mean cosine, in-sample)"


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (10's long ``summary.csv``)."""
    s = table(folder, "summary.csv")
    rsa_null = metric(s, RSA, "null", kind="projected")
    proc_null = metric(s, PROC, "null", kind="projected")
    return [
        Claim("xling_rsa_r", "EN-JA RSA (Spearman of cosine upper triangles), projected",
              metric(s, RSA, kind="projected"), control="shuffle null, 95th percentile",
              control_value=rsa_null),
        Claim("xling_rsa_p", "10,000-shuffle permutation p", metric(s, RSA, "p", kind="projected")),
        Claim("xling_rsa_null_q95", "95th percentile of the shuffle null", rsa_null),
        Claim("xling_rsa_r_centred", "same for raw-centred vectors",
              metric(s, RSA, kind="centred")),
        Claim("xling_procrustes_fit", "Procrustes in-sample fit (mean cosine)",
              metric(s, PROC, kind="projected"),
              control="shuffled-correspondence null, 95th percentile", control_value=proc_null),
        Claim("xling_procrustes_null_q95", "its shuffled-correspondence null (95th pct)",
              proc_null),
        Claim("xling_layer", "analysis layer", int(s.layer.iloc[0]))], []
