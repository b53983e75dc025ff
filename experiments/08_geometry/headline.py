"""08_geometry headline: centroid cosines before and after centring, silhouette by emotion and
the cross-set centroid difference, each with its permutation p (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import Claim, metric, table

INPUTS = ("01_extract", "02_probes")
DIFF = "centroid cosine centred_per_set: difference"


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (08's long ``summary.csv``)."""
    s = table(folder, "summary.csv")
    sil = "silhouette euclidean: emotion (all sets)"
    return [
        Claim("geo_centroid_cos_uncentred", "mean cosine of emotion centroids, uncentred",
              metric(s, "centroid cosine uncentred: mean_cosine_all_pairs")),
        Claim("geo_centroid_cos_centred", "same after centring on the grand mean",
              metric(s, "centroid cosine centred: mean_cosine_all_pairs")),
        Claim("geo_silhouette_emotion", "Euclidean silhouette by emotion (A+B)", metric(s, sil),
              control="label-permutation null, 95th percentile",
              control_value=metric(s, sil, "null_q95")),
        Claim("geo_silhouette_emotion_p", "its label-permutation p", metric(s, sil, "p")),
        Claim("geo_cross_set_diff", "same - different emotion centroid cosine across sets "
              "(centred per set)", metric(s, DIFF), metric(s, DIFF, "ci_low"),
              metric(s, DIFF, "ci_high"), str(metric(s, DIFF, "ci_unit"))),
        Claim("geo_cross_set_diff_p", "its permutation p", metric(s, DIFF, "p"))], []
