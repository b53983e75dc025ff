"""02_probes headline: within-set and transfer probes beside layer 0, text-only and shuffled
controls on the same folds (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from llmct.io.headline import NAN, Claim, rows, table, value

INPUTS = ("01_extract",)
SET_PAIRS = {"set_a": ("set_a", "set_a"), "set_b": ("set_b", "set_b"),
             "a_to_b": ("set_a", "set_b"), "b_to_a": ("set_b", "set_a")}
LABEL = {"set_a": "Set A 5-fold", "set_b": "Set B 5-fold", "a_to_b": "A->B transfer",
         "b_to_a": "B->A transfer"}


def _best_text(row: pd.DataFrame) -> float:
    """The best text-only baseline as 02 scored it (``max_auroc - probe_minus_best_text``)."""
    if not len(row) or "probe_minus_best_text" not in row.columns:
        return NAN
    return float(row.max_auroc.iloc[0] - row.probe_minus_best_text.iloc[0])


def _range(row: pd.DataFrame, lo: str, hi: str, digits: int) -> str | float:
    """``"lo-hi"`` from two columns of a one-row frame (NaN when absent: older runs)."""
    if not len(row) or lo not in row.columns or hi not in row.columns:
        return NAN
    a, b = float(row[lo].iloc[0]), float(row[hi].iloc[0])
    if not (math.isfinite(a) and math.isfinite(b)):
        return NAN
    return f"{a:.{digits}f}-{b:.{digits}f}"


def _pair(s: pd.DataFrame, tag: str, train: str, test: str, source: str) -> list[Claim]:
    def get(col):
        return value(s, col, train_set=train, test_set=test, source=source)

    name = LABEL[tag]
    if tag == "b_to_a":
        return [Claim("b_to_a_auroc", f"{name}: max AUROC (h)", get("max_auroc"))]
    row = rows(s, train_set=train, test_set=test, source=source)
    within = train == test
    best_text = _best_text(row) if within else get("text_tfidf_auroc")
    claims = [
        Claim(f"{tag}_auroc", f"{name}: max 8-class macro AUROC over layers (h)",
              get("max_auroc"), control="best text-only baseline, same folds" if within
              else "text-only TF-IDF, same split", control_value=best_text),
        Claim(f"{tag}_peak_depth_argmax", f"{name}: depth of the argmax layer",
              get("argmax_depth")),
        Claim(f"{tag}_peak_depth_first", f"{name}: depth of the first layer within 0.005 of "
              "the max", get("first_within_depth")),
        Claim(f"{tag}_layer0_auroc", f"{name}: layer-0 baseline", get("layer0_auroc")),
        Claim(f"{tag}_text_only_auroc", f"{name}: text-only TF-IDF baseline",
              get("text_tfidf_auroc")),
        Claim(f"{tag}_shuffled_auroc", f"{name}: shuffled labels (mean over layers)",
              get("shuffled_mean"))]
    if within:
        claims += [
            Claim(f"{tag}_best_text_auroc", f"{name}: best text-only baseline, same folds "
                  "(word/char TF-IDF, stylometrics)", best_text),
            Claim(f"{tag}_fold_seed_range", f"{name}: AUROC at the argmax layer, min-max over "
                  "5 fold seeds", _range(row, "argmax_seed_min", "argmax_seed_max", 3)),
            Claim(f"{tag}_peak_layer_ci", f"{name}: argmax layer, 95% interval over items",
                  _range(row, "argmax_lo", "argmax_hi", 0), ci_unit="items")]
    return claims


def claims(folder: Path, source: str = "hidden_out") -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (02's ``probe_summary.csv``)."""
    s = table(folder, "probe_summary.csv")
    out: list[Claim] = []
    for tag, (train, test) in SET_PAIRS.items():
        out += _pair(s, tag, train, test, source)
    return out, []
