"""11_steering headline: Bradley-Terry category ratings under 'angry' steering, beside random
directions of the same norm (contract: :mod:`llmct.io.headline`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from llmct.io.headline import NAN, Claim, Missing, rows, table, value

INPUTS = ("09_emotion_vectors",)


def claims(folder: Path, method: str = "bt") -> tuple[list[Claim], list[str]]:
    """Headline rows of ``folder`` (11's ``category_ratings.csv``; Bradley-Terry, Elo scale,
    order-swapped soft outcomes)."""
    t = rows(table(folder, "category_ratings.csv"), method=method)
    alpha = float(t.loc[t.kind == "emotion", "alpha"].max())
    if math.isnan(alpha):
        raise Missing("no emotion-steering condition")
    at = t[np.isclose(t.alpha, alpha)]
    rand = at[at.kind == "random"]
    rand_max = float(rand.delta.abs().max()) if len(rand) else NAN
    out = [Claim("steer_alpha", "largest steering strength (x mean residual norm)", alpha)]
    for cat in ("misaligned", "helpful"):
        out.append(Claim(f"steer_angry_{cat}", f"change of '{cat}' under angry steering "
                         "(Bradley-Terry, Elo scale)",
                         value(at, "delta", emotion="angry", category=cat),
                         control="largest |change| of any category under a random direction",
                         control_value=rand_max))
    out.append(Claim("steer_random_max_abs", "largest |change| of any category under a random "
                     "direction", rand_max))
    if "excess" in at.columns:  # emotion minus the mean of the random directions, with its CI
        for cat in ("misaligned", "helpful"):
            def get(col, cat=cat):
                return value(at, col, emotion="angry", category=cat)
            out.append(Claim(f"steer_angry_{cat}_excess", f"angry '{cat}' change minus the "
                             "random directions' (BT), paired bootstrap 95% CI", get("excess"),
                             get("excess_lo"), get("excess_hi"), str(get("ci_unit"))))
    return out, []
