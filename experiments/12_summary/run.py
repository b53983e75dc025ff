"""12 - One cross-model table gathered from every experiment's outputs.

Reads ``experiments/NN_name/outputs/<model-slug>/`` of every model found there and writes one row
per model: the emotion-circuit probes (Set A, Set B, A->B transfer, peak depth by argmax and by
first-within-0.005, layer-0 and text-only baselines), binary saturation, patching against its
random control, knockout, attention, geometry, the CT-scan findings, emotion-vector PC1~valence,
cross-lingual RSA and steering. Nothing is recomputed from activations: CSVs in, CSV out. A
missing experiment (or file, or column) gives NaN columns and a note in ``notes``, never a crash.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmct.emotion.vectors import default_layer
from llmct.runs import OneLineParser, Outputs, experiment_main, run_main

EXP_DIR = Path(__file__).resolve().parent
EXPERIMENTS = EXP_DIR.parent
RESULTS = ("summary_table.csv", "summary_table.md")
SET_PAIRS = {"set_a": ("set_a", "set_a"), "set_b": ("set_b", "set_b"),
             "a_to_b": ("set_a", "set_b")}
PATCH_PAIRINGS = {"patch_b": "within set_b", "patch_ab": "set_a -> set_b"}
PATCH_CONTROLS = {"random": "random vector of the same norm", "unpatched": "unpatched target",
                  "mean": "mean activation over all stimuli"}
NAN = float("nan")


class Missing(Exception):
    """A file, row or column the reader needs is absent (becomes NaN + a note)."""


@dataclass
class Section:
    """The columns one experiment contributes: name -> (meaning, source-work value)."""

    exp: str
    columns: dict[str, tuple[str, str]]
    read: Callable[[Path], dict]


# -- small readers -------------------------------------------------------------------------------

def csv(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.exists():
        raise Missing(f"no {name}")
    return pd.read_csv(path)


def rows(df: pd.DataFrame, **eq) -> pd.DataFrame:
    for col, value in eq.items():
        if col not in df.columns:
            raise Missing(f"no column {col!r}")
        df = df[df[col] == value]
    return df


def value(df: pd.DataFrame, col: str, **eq):
    """The ``col`` of the first row matching ``eq``."""
    sub = rows(df, **eq)
    if sub.empty:
        raise Missing(f"no row with {eq}")
    if col not in sub.columns:
        raise Missing(f"no column {col!r}")
    return sub[col].iloc[0]


def metric(df: pd.DataFrame, name: str, col: str = "value", **eq):
    """The ``col`` of the row of a long ``summary.csv`` (columns metric, value, p, ...) whose
    metric text starts with ``name`` (experiments append details such as how p was computed)."""
    if "metric" not in df.columns:
        raise Missing("no column 'metric'")
    sub = rows(df[df.metric.astype(str).str.startswith(name)], **eq)
    if sub.empty:
        raise Missing(f"no metric starting {name!r} with {eq}")
    return value(sub, col)


def guarded(out: dict, note: list, fn: Callable[[], dict], what: str) -> None:
    """``out.update(fn())``; a Missing/KeyError/ValueError becomes a note instead."""
    try:
        out.update(fn())
    except (Missing, KeyError, ValueError, IndexError) as exc:
        note.append(f"{what}: {exc}")


# -- one reader per experiment --------------------------------------------------------------------

def read_probes(folder: Path, source: str = "hidden_out") -> dict:
    s = csv(folder, "probe_summary.csv")
    out = {}
    for tag, (train, test) in SET_PAIRS.items():
        def get(col, train=train, test=test):
            return value(s, col, train_set=train, test_set=test, source=source)
        out.update({f"{tag}_auroc": get("max_auroc"),
                    f"{tag}_peak_depth_argmax": get("argmax_depth"),
                    f"{tag}_peak_depth_first": get("first_within_depth"),
                    f"{tag}_layer0_auroc": get("layer0_auroc"),
                    f"{tag}_text_only_auroc": get("text_tfidf_auroc"),
                    f"{tag}_shuffled_auroc": get("shuffled_mean")})
    out["b_to_a_auroc"] = value(s, "max_auroc", train_set="set_b", test_set="set_a",
                                source=source)
    for tag in ("set_a", "set_b"):  # within-set controls and spreads added in later runs
        row = rows(s, train_set=tag, test_set=tag, source=source)
        out[f"{tag}_best_text_auroc"] = _best_text(row)
        out[f"{tag}_fold_seed_range"] = _range(row, "argmax_seed_min", "argmax_seed_max", 3)
        out[f"{tag}_peak_layer_ci"] = _range(row, "argmax_lo", "argmax_hi", 0)
    return out


def _best_text(row: pd.DataFrame) -> float:
    """The best text-only baseline as 02's summary scored it (``max_auroc`` minus its
    ``probe_minus_best_text``; NaN for runs older than that column)."""
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


def read_binary(folder: Path, source: str = "hidden_out") -> dict:
    s = csv(folder, "binary_summary.csv")
    out, notes = {}, []
    out["binary_auroc"] = value(s, "max_auroc", control="none", source=source)
    out["binary_saturation_depth"] = value(s, "saturation_depth", control="none", source=source)
    guarded(out, notes, lambda: {"binary_saturation_depth_length_matched": value(
        s, "saturation_depth", control="length_matched", source=source)}, "length-matched")

    def free():
        r = csv(folder, "binary_results.csv")
        return {"binary_text_only_auroc": value(r, "auroc", control="text_tfidf"),
                "binary_length_only_auroc": value(r, "auroc", control="length_only")}

    def set_c():
        sc = csv(folder, "scored_sets.csv")
        layer = default_layer(int(sc.layer.max()) + 1)
        return {"set_c_p_emotional": value(sc, "mean_p_emotional", source=source, layer=layer,
                                           scored="set_c (neutral)"),
                "set_c_p_emotional_layer": layer}

    guarded(out, notes, free, "layer-free controls")
    guarded(out, notes, set_c, "Set C")
    return {**out, "_notes": notes}


def read_zeroshot(folder: Path, source: str = "hidden_out") -> dict:
    s = csv(folder, "zeroshot_summary.csv")
    return {f"zeroshot_{tag}_auroc": value(s, "max_auroc", prompt="zeroshot", train_set=train,
                                           test_set=test, source=source)
            for tag, (train, test) in SET_PAIRS.items() if tag != "set_a"}


def read_patching(folder: Path) -> dict:
    """Best patch cell per pairing and its paired differences from the random-vector, unpatched
    and mean-activation controls (05's ``patching_vs_controls.csv``, one row per control)."""
    vs = csv(folder, "patching_vs_controls.csv")
    out = {}
    for tag, pairing in PATCH_PAIRINGS.items():
        sub = rows(vs, pairing=pairing)
        if sub.empty:
            raise Missing(f"no pairing {pairing!r}")
        best = sub.sort_values(["success_patch", "layer"], ascending=[False, True]).iloc[0]
        cell = sub[(sub.source == best.source) & (sub.layer == best.layer)]
        short = {"hidden_out": "h", "attn_out": "a", "mlp_out": "m"}.get(best.source, best.source)
        out.update({f"{tag}_peak_success": best.success_patch,
                    f"{tag}_peak_at": f"{short}@L{int(best.layer)}"})
        for control in PATCH_CONTROLS:
            out[f"{tag}_{control}_success"] = value(cell, "success_control", control=control)
            out[f"{tag}_minus_{control}_lo"] = value(cell, "success_diff_lo", control=control)
            out[f"{tag}_minus_{control}_hi"] = value(cell, "success_diff_hi", control=control)
    for control in PATCH_CONTROLS:
        sub = rows(vs, control=control)
        out[f"patch_cells_beating_{control}"] = (
            f"{int(sub.verdict.astype(str).str.startswith('beats').sum())}/{len(sub)}")
    return out


def read_knockout(folder: Path) -> dict:
    s = rows(csv(folder, "knockout_summary.csv"), positions="readout")
    if s.empty:
        raise Missing("no read-out knockout rows")
    worst = s.sort_values(["accuracy_drop", "layer"], ascending=[False, True]).iloc[0]
    short = {"attn_out": "a", "mlp_out": "m"}.get(worst.source, worst.source)
    out = {f"ko_clean_accuracy_{tag}": value(s, "accuracy_clean", set=name)
           for tag, name in (("a", "set_a"), ("b", "set_b")) if name in set(s.set)}
    return {**out,
            "ko_max_accuracy_drop": worst.accuracy_drop,
            "ko_max_drop_at": f"{worst.set} {short}@L{int(worst.layer)} {worst['mode']}",
            "ko_max_probe_drop": s.probe_drop.max(),
            "ko_n_critical_accuracy": int(s.critical_accuracy.astype(bool).sum()),
            "ko_n_critical_changed": int(s.critical_changed.astype(bool).sum()),
            "ko_n_ablations": len(s)}


def read_attention(folder: Path) -> dict:
    by_head = csv(folder, "attention_by_head.csv")
    mass = by_head.groupby(["set", "type"]).mass.mean()
    if "set_b" not in mass.index.get_level_values(0):
        raise Missing("no set_b rows")
    out = {"attn_top_type_set_b": str(mass["set_b"].idxmax()),
           "attn_emotion_mass_set_b": mass.get(("set_b", "emotion"), NAN),
           "attn_emotion_mass_control": mass.get(("set_b_control", "emotion"), NAN)}
    notes = []

    def heads():
        h = rows(csv(folder, "attention_heads_differing.csv"), measure="mass")
        return {"attn_heads_differing": f"{int(h.differs.astype(bool).sum())}/{len(h)}"}

    def cells():
        t = rows(csv(folder, "attention_tests.csv"), measure="per_token", type="emotion")
        return {"attn_emotion_cells_fdr": f"{int(t.significant.astype(bool).sum())}/{len(t)}"}

    guarded(out, notes, heads, "heads")
    guarded(out, notes, cells, "tests")
    return {**out, "_notes": notes}


def read_geometry(folder: Path) -> dict:
    s = csv(folder, "summary.csv")
    return {
        "geo_centroid_cos_uncentred": metric(s, "centroid cosine uncentred: mean_cosine_all_pairs"),
        "geo_centroid_cos_centred": metric(s, "centroid cosine centred: mean_cosine_all_pairs"),
        "geo_silhouette_emotion": metric(s, "silhouette euclidean: emotion (all sets)"),
        "geo_silhouette_emotion_p": metric(s, "silhouette euclidean: emotion (all sets)", "p"),
        "geo_cross_set_diff": metric(s, "centroid cosine centred_per_set: difference"),
        "geo_cross_set_diff_p": metric(s, "centroid cosine centred_per_set: difference", "p"),
    }


def read_vectors(folder: Path) -> dict:
    s = csv(folder, "summary.csv")
    name = "PC1 x valence (LOO pole projection) r"
    return {"vec_pc1_valence_r": abs(metric(s, name, kind="projected")),  # PC sign arbitrary
            "vec_pc1_valence_p": metric(s, name, "p", kind="projected"),
            "vec_pc1_valence_r_centred": abs(metric(s, name, kind="centred")),
            "vec_layer": int(s.layer.iloc[0])}


def read_crosslingual(folder: Path) -> dict:
    s = csv(folder, "summary.csv")
    rsa = "RSA Spearman (upper triangles)"
    proc = "Procrustes fit (mean cosine, in-sample)"
    return {"xling_rsa_r": metric(s, rsa, kind="projected"),
            "xling_rsa_p": metric(s, rsa, "p", kind="projected"),
            "xling_rsa_null_q95": metric(s, rsa, "null", kind="projected"),
            "xling_rsa_r_centred": metric(s, rsa, kind="centred"),
            "xling_procrustes_fit": metric(s, proc, kind="projected"),
            "xling_procrustes_null_q95": metric(s, proc, "null", kind="projected"),
            "xling_layer": int(s.layer.iloc[0])}


def read_steering(folder: Path, method: str = "bt") -> dict:
    """Bradley-Terry category ratings (Elo scale, order-swapped soft outcomes; 11's headline)."""
    t = csv(folder, "category_ratings.csv")
    t = rows(t, method=method)
    alpha = float(t.loc[t.kind == "emotion", "alpha"].max())
    if math.isnan(alpha):
        raise Missing("no emotion-steering condition")
    at = t[np.isclose(t.alpha, alpha)]
    rand = at[at.kind == "random"]
    out = {"steer_alpha": alpha,
           "steer_angry_misaligned": value(at, "delta", emotion="angry", category="misaligned"),
           "steer_angry_helpful": value(at, "delta", emotion="angry", category="helpful"),
           "steer_random_max_abs": float(rand.delta.abs().max()) if len(rand) else NAN}
    if "excess" in at.columns:  # emotion minus the mean of the random directions, with its CI
        for cat in ("misaligned", "helpful"):
            for col, suffix in (("excess", ""), ("excess_lo", "_lo"), ("excess_hi", "_hi")):
                out[f"steer_angry_{cat}_excess{suffix}"] = value(at, col, emotion="angry",
                                                                 category=cat)
    return out


def _ct_findings(folder: Path) -> tuple[pd.DataFrame, Path]:
    tables = sorted(folder.glob("findings_by_position*.csv"), key=lambda p: p.stat().st_mtime)
    if not tables:
        raise Missing("no findings_by_position.csv")
    f = pd.read_csv(tables[-1])
    position = "message_end" if "message_end" in set(f.position) else f.position.iloc[0]
    f = f[f.position == position]
    return f, folder / str(f.folder.iloc[0])


def read_ct_scan(folder: Path) -> dict:
    f, scan = _ct_findings(folder)
    out = {"ct_position": f.position.iloc[0]}
    for fid, col in (("user_assistant_gap", "ct_user_assistant_gap"),
                     ("fading_memory", "ct_fading_slope"),
                     ("top_reference", "ct_joy_first_fraction"),
                     ("residual_vs_branches", "ct_residual_minus_branches")):
        out[col] = value(f, "value", id=fid)
        if fid in ("user_assistant_gap", "fading_memory"):
            out[f"{col}_lo"] = value(f, "ci_low", id=fid)
            out[f"{col}_hi"] = value(f, "ci_high", id=fid)
    notes = []

    def top_reference():
        m = csv(scan, "metrics.csv")
        src = "hidden_in" if "hidden_in" in set(m.source) else m.source.iloc[0]
        m = m[(m.source == src) & m.role.isin(["user", "assistant"])]
        res = {}
        for metric_name, col in (("cosine", "ct_top_reference_raw"),
                                 ("cosine_centered", "ct_top_reference_centred")):
            score = m.groupby(["snapshot", "reference"], sort=False)[metric_name].mean().unstack()
            res[col] = score.idxmax(axis=1).value_counts().idxmax()
        return res

    def layers():
        lm = csv(scan, "layer_map.csv")
        src = "hidden_in" if "hidden_in" in set(lm.source) else lm.source.iloc[0]
        lm = lm[lm.source == src]
        return {"ct_most_discriminative_layer": int(lm.layer.iloc[lm.spread.argmax()]),
                "ct_most_discriminative_layer_centred":
                    int(lm.layer.iloc[lm.spread_centered.argmax()]),
                "ct_peak_spread": float(lm.spread.max())}

    guarded(out, notes, top_reference, "top reference")
    guarded(out, notes, layers, "layer map")
    return {**out, "_notes": notes}


def _cols(*triples) -> dict:
    return {name: (meaning, paper) for name, meaning, paper in triples}


def _probe_cols() -> dict:
    paper = {"set_a": ("0.999-1.000", "52-100%", "0.74-0.83"),
             "set_b": ("0.934-0.989", "52-100%", "0.83-0.88"),
             "a_to_b": ("0.792-0.924", "-", "-")}
    label = {"set_a": "Set A 5-fold", "set_b": "Set B 5-fold", "a_to_b": "A->B transfer"}
    triples = []
    for tag, (auc, depth, l0) in paper.items():
        triples += [
            (f"{tag}_auroc", f"{label[tag]}: max 8-class macro AUROC over layers (h)", auc),
            (f"{tag}_peak_depth_argmax", f"{label[tag]}: depth of the argmax layer", depth),
            (f"{tag}_peak_depth_first", f"{label[tag]}: depth of the first layer within 0.005 "
             "of the max", "-"),
            (f"{tag}_layer0_auroc", f"{label[tag]}: layer-0 baseline", l0),
            (f"{tag}_text_only_auroc", f"{label[tag]}: text-only TF-IDF baseline", "-"),
            (f"{tag}_shuffled_auroc", f"{label[tag]}: shuffled labels (mean over layers)", "~0.5"),
        ]
    triples.append(("b_to_a_auroc", "B->A transfer: max AUROC (h)", "-"))
    for tag in ("set_a", "set_b"):
        triples += [
            (f"{tag}_best_text_auroc", f"{label[tag]}: best text-only baseline, same folds "
             "(word/char TF-IDF, stylometrics)", "-"),
            (f"{tag}_fold_seed_range", f"{label[tag]}: AUROC at the argmax layer, min-max over "
             "5 fold seeds", "-"),
            (f"{tag}_peak_layer_ci", f"{label[tag]}: argmax layer, 95% interval over items", "-")]
    return _cols(*triples)


SECTIONS = [
    Section("00_ct_scan", _cols(
        ("ct_position", "read-out position rule of the scan used", "-"),
        ("ct_residual_minus_branches", "residual minus attn/mlp mean cosine (user turns)",
         "0.83-0.88 vs 0.47-0.64"),
        ("ct_user_assistant_gap", "user - assistant mean cosine, residual, paired; references "
         "rendered as user messages", "~0.03"),
        ("ct_user_assistant_gap_lo", "bootstrap 95% CI low", "-"),
        ("ct_user_assistant_gap_hi", "bootstrap 95% CI high", "-"),
        ("ct_joy_first_fraction", "fraction of turns where joy ranks first (raw cosine)", "most"),
        ("ct_top_reference_raw", "most frequent first-ranked reference, raw cosine", "joy"),
        ("ct_top_reference_centred", "most frequent first-ranked reference, centred cosine", "-"),
        ("ct_fading_slope", "centred margin of the matched reference per turn (slope)",
         "negative (0.90->0.70)"),
        ("ct_fading_slope_lo", "bootstrap 95% CI low (over tagged turns)", "-"),
        ("ct_fading_slope_hi", "bootstrap 95% CI high (over tagged turns)", "-"),
        ("ct_most_discriminative_layer", "layer of maximal spread over references (raw)",
         "31 of 36"),
        ("ct_most_discriminative_layer_centred", "same, centred cosine", "-"),
        ("ct_peak_spread", "maximal spread (raw cosine)", "0.111"),
    ), read_ct_scan),
    Section("02_probes", _probe_cols(), read_probes),
    Section("03_binary", _cols(
        ("binary_auroc", "Set B vs matched controls: max AUROC (h)", "1.000"),
        ("binary_saturation_depth", "first layer within 0.005 of the max, as depth", "9-38%"),
        ("binary_saturation_depth_length_matched", "same on a token-length-matched subsample",
         "-"),
        ("binary_text_only_auroc", "text-only TF-IDF baseline", "-"),
        ("binary_length_only_auroc", "token-length-only baseline", "-"),
        ("set_c_p_emotional", "mean P(emotional) of Set C at the ~2/3-depth layer", "~0.04"),
        ("set_c_p_emotional_layer", "the layer used for Set C", "-"),
    ), read_binary),
    Section("04_zeroshot", _cols(
        ("zeroshot_set_b_auroc", "zero-shot prompt: Set B max AUROC (h)", "-"),
        ("zeroshot_a_to_b_auroc", "zero-shot prompt: A->B max AUROC (h)", "-"),
    ), read_zeroshot),
    Section("05_patching", _cols(*[
        c for tag, name in PATCH_PAIRINGS.items() for c in (
            (f"{tag}_peak_success", f"{name}: best patch success (source, layer)",
             "0.45-0.75" if tag == "patch_b" else "-"),
            (f"{tag}_peak_at", f"{name}: where (h/a/m@layer)", "-"),
            *[col for control, what in PATCH_CONTROLS.items() for col in (
                (f"{tag}_{control}_success", f"{name}: {what}, same cell", "-"),
                (f"{tag}_minus_{control}_lo", f"{name}: patch - {control}, paired bootstrap "
                 "95% CI low", "-"),
                (f"{tag}_minus_{control}_hi", "CI high", "-"))])],
        *[(f"patch_cells_beating_{control}", f"(pairing, source, layer) cells beating the "
           f"{control} control (CI of the difference > 0)", "-") for control in PATCH_CONTROLS],
    ), read_patching),
    Section("06_knockout", _cols(
        ("ko_clean_accuracy_a", "Set A answer accuracy without knockout (greedy token)", "-"),
        ("ko_clean_accuracy_b", "Set B answer accuracy without knockout", "-"),
        ("ko_max_accuracy_drop", "largest accuracy drop from one read-out knockout (a or m, "
         "one layer, zero/mean/noise)", "-"),
        ("ko_max_drop_at", "where (set, a/m@layer, mode)", "-"),
        ("ko_max_probe_drop", "largest drop of the downstream probe's accuracy", "-"),
        ("ko_n_critical_accuracy", "knockouts with accuracy drop >= 0.20", "-"),
        ("ko_n_critical_changed", "knockouts changing the top token of >= 20% of items "
         "(the original's criterion)", "critical layers found"),
        ("ko_n_ablations", "read-out knockouts scored", "-"),
    ), read_knockout),
    Section("07_attention", _cols(
        ("attn_top_type_set_b", "token type the read-out attends to most (Set B, mean over "
         "layers and heads)", "-"),
        ("attn_emotion_mass_set_b", "mean attention mass on emotion-bearing words, Set B", "-"),
        ("attn_emotion_mass_control", "same, matched neutral controls", "-"),
        ("attn_heads_differing", "heads whose 6-type pattern differs B vs control "
         "(Bonferroni)", "-"),
        ("attn_emotion_cells_fdr", "(layer, head) cells with emotion-word attention per token "
         "differing (FDR)", "-"),
    ), read_attention),
    Section("08_geometry", _cols(
        ("geo_centroid_cos_uncentred", "mean cosine of emotion centroids, uncentred", "~0.95"),
        ("geo_centroid_cos_centred", "same after centring on the grand mean", "-"),
        ("geo_silhouette_emotion", "Euclidean silhouette by emotion (A+B)", "-"),
        ("geo_silhouette_emotion_p", "its label-permutation p", "-"),
        ("geo_cross_set_diff", "same - different emotion centroid cosine across sets "
         "(centred per set)", "-"),
        ("geo_cross_set_diff_p", "its permutation p", "-"),
    ), read_geometry),
    Section("09_emotion_vectors", _cols(
        ("vec_pc1_valence_r", "|r| of PC1 of the (projected) vectors with the LOO valence "
         "pole projection (PC sign is arbitrary)", "0.82-0.89"),
        ("vec_pc1_valence_p", "its p (as 09 computes it)", "-"),
        ("vec_pc1_valence_r_centred", "same |r| for raw-centred vectors", "-"),
        ("vec_layer", "analysis layer", "~2/3 depth"),
    ), read_vectors),
    Section("10_crosslingual", _cols(
        ("xling_rsa_r", "EN-JA RSA (Spearman of cosine upper triangles), projected", "0.864"),
        ("xling_rsa_p", "10,000-shuffle permutation p", "<1e-4"),
        ("xling_rsa_null_q95", "95th percentile of the shuffle null", "-"),
        ("xling_rsa_r_centred", "same for raw-centred vectors", "-"),
        ("xling_procrustes_fit", "Procrustes in-sample fit (mean cosine)", ">0.9"),
        ("xling_procrustes_null_q95", "its shuffled-correspondence null (95th pct)", "-"),
        ("xling_layer", "analysis layer", "-"),
    ), read_crosslingual),
    Section("11_steering", _cols(
        ("steer_alpha", "largest steering strength (x mean residual norm)", "-"),
        ("steer_angry_misaligned", "change of 'misaligned' under angry steering (Bradley-Terry, "
         "Elo scale)", "+30.6 Elo"),
        ("steer_angry_helpful", "change of 'helpful' under angry steering (BT)", "-23.0 Elo"),
        ("steer_random_max_abs", "largest |change| of any category under a random direction",
         "-"),
        ("steer_angry_misaligned_excess", "angry 'misaligned' change minus the random "
         "directions' (BT)", "-"),
        ("steer_angry_misaligned_excess_lo", "its paired bootstrap 95% CI low", "-"),
        ("steer_angry_misaligned_excess_hi", "CI high", "-"),
        ("steer_angry_helpful_excess", "angry 'helpful' change minus the random directions'",
         "-"),
        ("steer_angry_helpful_excess_lo", "its CI low", "-"),
        ("steer_angry_helpful_excess_hi", "CI high", "-"),
    ), read_steering),
]


# -- assembly -------------------------------------------------------------------------------------

def model_slugs(root: Path) -> list[str]:
    """Every non-empty ``<slug>`` folder under ``<root>/*/outputs/`` (not this experiment's)."""
    slugs = {p.name for p in root.glob("*/outputs/*") if p.is_dir() and any(p.iterdir())
             and p.parents[1].name != EXP_DIR.name}  # empty: a run that failed to load
    return sorted(slugs)


def model_name(root: Path, slug: str) -> str:
    """The ``--model`` the experiments were run with (from any CSV with a ``model`` column)."""
    for path in sorted(root.glob(f"*/outputs/{slug}/*.csv")):
        try:
            head = pd.read_csv(path, nrows=1)
        except (ValueError, OSError):
            continue
        if "model" in head.columns and len(head):
            return str(head.model.iloc[0])
    return slug


def summary_row(root: Path, slug: str, sections=SECTIONS) -> dict:
    row: dict = {"model": slug, "model_name": model_name(root, slug)}
    notes = []
    for sec in sections:
        row.update({c: NAN for c in sec.columns})
        folder = root / sec.exp / "outputs" / slug
        if not folder.is_dir():
            notes.append(f"{sec.exp}: not run")
            continue
        try:
            got = sec.read(folder)
        except (Missing, KeyError, ValueError, IndexError) as exc:
            notes.append(f"{sec.exp}: {exc}")
            continue
        notes += [f"{sec.exp}: {n}" for n in got.pop("_notes", [])]
        unknown = set(got) - set(sec.columns)
        if unknown:
            raise RuntimeError(f"{sec.exp} reader returned undeclared columns {sorted(unknown)}")
        row.update(got)
    row["notes"] = "; ".join(notes)
    return row


def summary_table(root: Path, slugs: list[str] | None = None) -> pd.DataFrame:
    slugs = slugs or model_slugs(root)
    return pd.DataFrame([summary_row(root, s) for s in slugs])


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


def markdown(table: pd.DataFrame) -> str:
    """Transposed (one column per model) with each column's meaning and the source works' value."""
    slugs = list(table.model)
    lines = ["# Cross-model summary", "",
             "Generated by `experiments/12_summary/run.py` from each experiment's CSVs "
             "(— = not available; see notes). *source works* = the published value or range "
             "(METHODS.md).", ""]
    for sec in SECTIONS:
        lines += [f"## {sec.exp}", "",
                  "| column | meaning | source works | " + " | ".join(slugs) + " |",
                  "|---|---|---|" + "---|" * len(slugs)]
        for col, (meaning, paper) in sec.columns.items():
            vals = [_fmt(v, col) for v in table[col]]
            cells = [c.replace("|", "\\|") for c in (meaning, paper, *vals)]
            lines.append(f"| `{col}` | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Notes", ""]
    lines += [f"- **{r.model}** (`--model {r.model_name}`): {r.notes or 'complete'}"
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
                    help="replace an existing table (it is recomputed from the CSVs)")
    args = ap.parse_args(argv)
    out = Outputs(args.out, args.overwrite)
    out.claim(RESULTS)
    table = summary_table(args.experiments, args.models)
    if table.empty:
        print(f"no outputs/<slug>/ folders under {args.experiments}: nothing to summarise")
        return 1
    out.csv("summary_table.csv", table)
    out.path("summary_table.md").write_text(markdown(table))
    for r in table.itertuples():
        print(f"{r.model}: {r.notes or 'complete'}")
    print(f"wrote {out.folder / RESULTS[0]} and {RESULTS[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, __file__))
