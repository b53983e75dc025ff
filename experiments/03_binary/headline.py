"""03_binary headline: Set B vs its matched controls, beside text-only and length-only
baselines, and Set C scored at the ~2/3-depth layer (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.emotion.vectors import default_layer
from llmct.io.headline import Claim, guarded, table, value

INPUTS = ("01_extract",)


def claims(folder: Path, source: str = "hidden_out") -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (03's ``binary_summary.csv``, ``binary_results.csv``,
    ``scored_sets.csv``)."""
    s = table(folder, "binary_summary.csv")
    out, notes = [], []

    def free():
        r = table(folder, "binary_results.csv")
        return [Claim("binary_text_only_auroc", "text-only TF-IDF baseline",
                      value(r, "auroc", control="text_tfidf")),
                Claim("binary_length_only_auroc", "token-length-only baseline",
                      value(r, "auroc", control="length_only"))]

    guarded(out, notes, free, "layer-free controls")
    text_only = out[0].value if out else float("nan")
    out[:0] = [
        Claim("binary_auroc", "Set B vs matched controls: max AUROC (h)",
              value(s, "max_auroc", control="none", source=source),
              control="text-only TF-IDF, same folds", control_value=text_only),
        Claim("binary_saturation_depth", "first layer within 0.005 of the max, as depth",
              value(s, "saturation_depth", control="none", source=source))]
    guarded(out, notes, lambda: [Claim(
        "binary_saturation_depth_length_matched", "same on a token-length-matched subsample",
        value(s, "saturation_depth", control="length_matched", source=source))],
        "length-matched")

    def set_c():
        sc = table(folder, "scored_sets.csv")
        layer = default_layer(int(sc.layer.max()) + 1)
        return [Claim("set_c_p_emotional", "mean P(emotional) of Set C at the ~2/3-depth layer",
                      value(sc, "mean_p_emotional", source=source, layer=layer,
                            scored="set_c (neutral)")),
                Claim("set_c_p_emotional_layer", "the layer used for Set C", layer)]

    guarded(out, notes, set_c, "Set C")
    return out, notes
