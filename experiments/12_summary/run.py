"""12 - One cross-model table gathered from every experiment's ``headline.csv``.

Reads ``experiments/NN_name/outputs/<model-slug>/headline.csv`` (the experiment contract,
:mod:`llmct.io.headline`) of every model found there and writes one row per model: each claim's
value, and ``<claim>_lo`` / ``<claim>_hi`` where the experiment computed an interval. Nothing is
read from an experiment's other files and nothing is recomputed: headlines in, table out. A
missing experiment or headline gives NaN columns and a note in ``notes``, never a crash. The
source works' published values sit beside each claim (:data:`PUBLISHED`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.errors import LLMCTError
from llmct.io.headline import FILENAME, as_columns, read_headline
from llmct.runs import OneLineParser, Outputs, experiment_headline, experiment_main, run_main

EXP_DIR = Path(__file__).resolve().parent
EXPERIMENTS = EXP_DIR.parent
RESULTS = ("summary_table.csv", "summary_table.md")
NAN = float("nan")

#: What the source works report for a claim (public references: docs/sources.md).
PUBLISHED = {
    "ct_residual_minus_branches": "0.83-0.88 vs 0.47-0.64", "ct_user_assistant_gap": "~0.03",
    "ct_joy_first_fraction": "most", "ct_top_reference_raw": "joy",
    "ct_fading_slope": "negative (0.90->0.70)", "ct_most_discriminative_layer": "31 of 36",
    "ct_peak_spread": "0.111",
    "set_a_auroc": "0.999-1.000", "set_a_peak_depth_argmax": "52-100%",
    "set_a_layer0_auroc": "0.74-0.83", "set_a_shuffled_auroc": "~0.5",
    "set_b_auroc": "0.934-0.989", "set_b_peak_depth_argmax": "52-100%",
    "set_b_layer0_auroc": "0.83-0.88", "set_b_shuffled_auroc": "~0.5",
    "a_to_b_auroc": "0.792-0.924", "a_to_b_shuffled_auroc": "~0.5",
    "binary_auroc": "1.000", "binary_saturation_depth": "9-38%", "set_c_p_emotional": "~0.04",
    "patch_b_peak_success": "0.45-0.75", "ko_n_critical_changed": "critical layers found",
    "geo_centroid_cos_uncentred": "~0.95", "vec_pc1_valence_r": "0.82-0.89",
    "vec_layer": "~2/3 depth", "xling_rsa_r": "0.864", "xling_rsa_p": "<1e-4",
    "xling_procrustes_fit": ">0.9", "steer_angry_misaligned": "+30.6 Elo",
    "steer_angry_helpful": "-23.0 Elo",
}


def experiments() -> list[str]:
    """The repository's experiments that declare a headline (``NN_name/headline.py``)."""
    return [p.name for p in sorted(EXPERIMENTS.glob("[0-9][0-9]_*"))
            if p.name != EXP_DIR.name and experiment_headline(p) is not None]


def model_slugs(root: Path) -> list[str]:
    """Every ``<slug>`` with a headline under ``<root>/*/outputs/<slug>/``."""
    return sorted({p.parent.name for p in root.glob(f"*/outputs/*/{FILENAME}")
                   if p.parents[2].name != EXP_DIR.name})


def headlines(root: Path, slug: str) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """``experiment -> headline table`` of one model, and notes on what is missing."""
    found, notes = {}, []
    for exp in experiments():
        path = root / exp / "outputs" / slug / FILENAME
        if not path.parent.is_dir():
            notes.append(f"{exp}: not run")
        elif not path.exists():
            notes.append(f"{exp}: no {FILENAME} (run it, or scripts/headlines.py)")
        else:
            try:
                found[exp] = read_headline(path)
            except (LLMCTError, ValueError) as exc:
                notes.append(f"{exp}: {exc}")
    return found, notes


def summary_row(root: Path, slug: str, read: tuple[dict, list[str]] | None = None) -> dict:
    """One model's row: ``model``, ``model_name`` and every claim of every headline."""
    found, notes = read or headlines(root, slug)
    row: dict = {"model": slug}
    names = {str(f.model.iloc[0]) for f in found.values() if len(f)} - {slug}
    row["model_name"] = names.pop() if len(names) == 1 else slug  # else: folder name only
    for frame in found.values():
        row.update(as_columns(frame))
    row["notes"] = "; ".join(notes)
    return row


def summary_table(root: Path, slugs: list[str] | None = None,
                  read: dict[str, tuple[dict, list[str]]] | None = None) -> pd.DataFrame:
    """One row per model (columns: the union of the claims, in experiment order)."""
    slugs = slugs or model_slugs(root)
    table = pd.DataFrame([summary_row(root, s, (read or {}).get(s)) for s in slugs])
    if not table.empty:
        table = table[[c for c in table.columns if c != "notes"] + ["notes"]]
    return table


def _fmt(v, col: str) -> str:
    """Layers and counts as integers, p-values in 2 significant digits, other numbers (an AUROC
    of exactly 1 included) to 3 decimals."""
    if isinstance(v, str) or not np.isscalar(v) or isinstance(v, bool | np.bool_):
        return str(v)
    if isinstance(v, int | np.integer) and not any(k in col for k in ("auroc", "depth")):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "—"
    if "layer" in col and "auroc" not in col:
        return str(int(v))
    if col.endswith("_p") or (abs(v) < 1e-3 and v != 0):
        return f"{v:.2g}"
    return f"{v:.3f}"


def _cell(table: pd.DataFrame, slug: str, claim: str, control_value) -> str:
    r = table.set_index("model").loc[slug]
    if claim not in r.index:
        return "—"
    text = _fmt(r[claim], claim)
    if f"{claim}_lo" in r.index and not pd.isna(r[f"{claim}_lo"]):
        text += f" [{_fmt(r[f'{claim}_lo'], claim)}, {_fmt(r[f'{claim}_hi'], claim)}]"
    if control_value is not None and not pd.isna(control_value):
        text += f" (control {_fmt(control_value, claim)})"
    return text


def markdown(table: pd.DataFrame, root: Path, frames: dict | None = None) -> str:
    """One section per experiment, one line per claim, one column per model (value, interval,
    and the control's value), with the claim's meaning, control and the source works' value.
    ``frames``: ``slug -> experiment -> headline table`` already read (read here when None)."""
    slugs = list(table.model)
    frames = frames or {s: headlines(root, s)[0] for s in slugs}
    lines = ["# Cross-model summary", "",
             f"Generated by `experiments/12_summary/run.py` from each experiment's `{FILENAME}` "
             "(— = not available; see notes). Cells: value [95% interval] (control's value). "
             "*source works* = the published value or range.", ""]
    for exp in experiments():
        present = [f[exp] for f in frames.values() if exp in f]
        if not present:
            continue
        claims = pd.concat(present, ignore_index=True)
        lines += [f"## {exp}", "",
                  "| claim | meaning | control | source works | " + " | ".join(slugs) + " |",
                  "|---|---|---|---|" + "---|" * len(slugs)]
        for cid, rows in claims.groupby("claim_id", sort=False):
            first = rows.iloc[0]
            ctrl = {s: frames[s][exp].set_index("claim_id").control_value.get(cid)
                    for s in slugs if exp in frames[s]}
            cells = [first.metric, "" if pd.isna(first.control) else str(first.control),
                     PUBLISHED.get(str(cid), "-"),
                     *[_cell(table, s, str(cid), ctrl.get(s)) for s in slugs]]
            lines.append(f"| `{cid}` | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    lines += ["## Notes", ""]
    lines += [f"- **{r.model}** (`{r.model_name}`): {r.notes or 'complete'}"
              for r in table.itertuples()]
    return "\n".join(lines) + "\n"


@experiment_main
def main(argv=None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=Path, default=EXPERIMENTS,
                    help="folder holding NN_name/outputs/<slug>/ (default: experiments/)")
    ap.add_argument("--models", nargs="*", default=None, metavar="SLUG",
                    help="only these model slugs (default: every slug found)")
    ap.add_argument("--out", type=Path, default=EXP_DIR / "outputs",
                    help="results folder (default: experiments/12_summary/outputs/)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing table (it is recomputed from the headlines)")
    args = ap.parse_args(argv)
    out = Outputs(args.out, args.overwrite)
    out.claim(RESULTS)
    slugs = args.models or model_slugs(args.experiments)
    read = {s: headlines(args.experiments, s) for s in slugs}  # each headline read once
    table = summary_table(args.experiments, slugs, read)
    if table.empty:
        print(f"no outputs/<slug>/{FILENAME} under {args.experiments}: nothing to summarise")
        return 1
    out.csv("summary_table.csv", table)
    out.path("summary_table.md").write_text(
        markdown(table, args.experiments, {s: found for s, (found, _) in read.items()}))
    for r in table.itertuples():
        print(f"{r.model}: {r.notes or 'complete'}")
    print(f"wrote {out.folder / RESULTS[0]} and {RESULTS[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, __file__))
