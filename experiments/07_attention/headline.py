"""07_attention headline: where the read-out token attends, Set B vs its matched controls
(contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

from pathlib import Path

from llmct.io.headline import NAN, Claim, Missing, guarded, rows, table

INPUTS = ("01_extract",)


def claims(folder: Path) -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (07's ``attention_by_head.csv``, ``attention_heads_differing.csv``,
    ``attention_tests.csv``)."""
    mass = table(folder, "attention_by_head.csv").groupby(["set", "type"]).mass.mean()
    if "set_b" not in mass.index.get_level_values(0):
        raise Missing("no set_b rows")
    control = mass.get(("set_b_control", "emotion"), NAN)
    out = [Claim("attn_top_type_set_b", "token type the read-out attends to most (Set B, mean "
                 "over layers and heads)", str(mass["set_b"].idxmax())),
           Claim("attn_emotion_mass_set_b", "mean attention mass on emotion-bearing words, Set B",
                 mass.get(("set_b", "emotion"), NAN), control="matched neutral controls",
                 control_value=control),
           Claim("attn_emotion_mass_control", "same, matched neutral controls", control)]
    notes: list[str] = []

    def heads():
        h = rows(table(folder, "attention_heads_differing.csv"), measure="mass")
        return [Claim("attn_heads_differing", "heads whose 6-type pattern differs B vs control "
                      "(Bonferroni)", f"{int(h.differs.astype(bool).sum())}/{len(h)}")]

    def cells():
        t = rows(table(folder, "attention_tests.csv"), measure="per_token", type="emotion")
        return [Claim("attn_emotion_cells_fdr", "(layer, head) cells with emotion-word attention "
                      "per token differing (FDR)", f"{int(t.significant.astype(bool).sum())}/{len(t)}")]

    guarded(out, notes, heads, "heads")
    guarded(out, notes, cells, "tests")
    return out, notes
