"""The cross-model summary (experiments/12_summary) and the figure script (run_all) on a small
synthetic outputs tree: every experiment's headline.py reads its CSVs, the summary reads only the
headline.csv files, and a missing experiment gives NaN columns, a note and a skipped figure --
never a crash."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmct.errors import LLMCTError
from llmct.runs import write_headline_for

ROOT = Path(__file__).resolve().parents[1]
LAYERS = range(4)
SOURCES = ("hidden_out", "attn_out", "mlp_out")


def _load_summary():
    spec = importlib.util.spec_from_file_location("summary12",
                                                  ROOT / "experiments/12_summary/run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["summary12"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


summary12 = _load_summary()


def _write(folder: Path, name: str, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / name, index=False)


def synthetic_tree(root: Path, slug: str = "tiny", skip=("06_knockout",)) -> None:
    """Minimal versions of every experiment's CSVs (column names as the run.py files write)."""
    def out(exp):
        return None if exp in skip else root / exp / "outputs" / slug

    if f := out("00_ct_scan"):
        _write(f, "findings_by_position.csv", [
            {"position": "message_end", "folder": "message_end", "id": i, "value": v,
             "ci_low": v - 0.01, "ci_high": v + 0.01, "verdict": "n/a"}
            for i, v in (("residual_vs_branches", 0.3), ("user_assistant_gap", 0.02),
                         ("top_reference", 0.4), ("fading_memory", -0.004),
                         ("discriminative_layers", 5.0))])
        scan = f / "message_end"
        refs = ("joy", "sadness", "peace")
        _write(scan, "metrics.csv", [
            {"snapshot": s, "role": "user" if s % 2 else "assistant", "source": src,
             "layer": la, "reference": r, "cosine": 0.9 - 0.1 * k - 0.01 * s,
             "cosine_centered": 0.1 * k - 0.02 * s}
            for s in range(4) for src in ("hidden_in", "attn_out") for la in LAYERS
            for k, r in enumerate(refs)])
        _write(scan, "layer_map.csv", [
            {"source": src, "layer": la, "spread": 0.01 * la, "spread_centered": 0.1 * (3 - la)}
            for src in ("hidden_in", "attn_out") for la in LAYERS])
        _write(scan, "spread.csv", [
            {"snapshot": s, "role": "user" if s % 2 else "assistant", "source": src, "layer": la,
             "spread": 0.01 * la * s, "spread_centered": 0.02 * la, "mean_cosine": 0.8 - 0.01 * s}
            for s in range(4) for src in ("hidden_in", "attn_out") for la in LAYERS])
    if f := out("02_probes"):
        pairs = [("set_a", "set_a"), ("set_b", "set_b"), ("set_a", "set_b"), ("set_b", "set_a")]
        _write(f, "probe_summary.csv", [
            {"model": "tiny-id", "train_set": tr, "test_set": te, "source": src,
             "max_auroc": 0.9 + 0.01 * i, "argmax_layer": 3, "argmax_depth": 1.0,
             "first_within_layer": 2, "first_within_depth": 0.667, "tol": 0.005,
             "layer0_auroc": 0.7, "shuffled_mean": 0.5, "shuffled_max": 0.6,
             "text_tfidf_auroc": 0.8}
            for i, (tr, te) in enumerate(pairs) for src in SOURCES])
        _write(f, "probe_results.csv", [
            {"model": "tiny-id", "train_set": tr, "test_set": te, "source": src, "layer": la,
             "auroc": 0.6 + 0.1 * la, "auroc_std": 0.02, "control": c}
            for tr, te in pairs for src in SOURCES for la in LAYERS
            for c in ("none", "shuffled")]
            + [{"model": "tiny-id", "train_set": tr, "test_set": te, "source": "text",
                "layer": -1, "auroc": 0.8, "auroc_std": 0.0, "control": "text_tfidf"}
               for tr, te in pairs])
    if f := out("03_binary"):
        task = "set_b vs set_b_control"
        _write(f, "binary_summary.csv", [
            {"control": c, "source": src, "max_auroc": 1.0, "first_within_layer": 1,
             "saturation_depth": 0.333} for c in ("none", "length_matched") for src in SOURCES])
        _write(f, "binary_results.csv", [
            {"train_set": task, "source": src, "layer": la, "auroc": 0.9, "control": "none"}
            for src in SOURCES for la in LAYERS]
            + [{"train_set": task, "source": s, "layer": -1, "auroc": a, "control": c}
               for s, a, c in (("text", 0.95, "text_tfidf"), ("length", 0.6, "length_only"))])
        _write(f, "scored_sets.csv", [
            {"source": "hidden_out", "layer": la, "scored": "set_c (neutral)",
             "mean_p_emotional": 0.1 * la, "ci_lo": 0.0, "ci_hi": 0.5} for la in LAYERS])
    if f := out("04_zeroshot"):
        _write(f, "zeroshot_summary.csv", [
            {"prompt": p, "train_set": tr, "test_set": te, "source": src, "max_auroc": 0.88}
            for p in ("zeroshot", "fewshot") for tr, te in (("set_b", "set_b"), ("set_a", "set_b"))
            for src in SOURCES])
        _write(f, "zeroshot_vs_fewshot.csv", [
            {"train_set": "set_b", "test_set": "set_b", "source": src, "layer": la,
             "control": "none", "auroc_zeroshot": 0.8, "auroc_fewshot": 0.85,
             "difference": -0.05} for src in SOURCES for la in LAYERS])
    if f := out("05_patching"):
        _write(f, "patching_vs_controls.csv", [
            {"pairing": p, "source": src, "layer": la, "control": c, "n_pairs": 10,
             "success_patch": 0.1 * la, "success_control": 0.05, "success_diff": 0.1 * la - 0.05,
             "success_diff_lo": 0.1 * la - 0.1, "success_diff_hi": 0.1 * la,
             "verdict": f"beats {c}" if la >= 2 else f"no better than {c}"}
            for p in ("within set_a", "within set_b", "set_a -> set_b") for src in SOURCES
            for la in LAYERS for c in ("random", "unpatched", "mean")])
    if f := out("06_knockout"):
        _write(f, "knockout_summary.csv", [
            {"set": s, "positions": "readout", "source": src, "layer": la, "mode": m,
             "accuracy_clean": 0.6, "accuracy": 0.6 - 0.1 * la, "accuracy_drop": 0.1 * la,
             "probe_accuracy_clean": 0.9, "probe_accuracy": 0.9, "probe_drop": 0.0,
             "changed_rate": 0.1 * la, "critical_accuracy": la >= 2, "critical_probe": False,
             "critical_changed": la >= 2}
            for s in ("set_a", "set_b") for src in ("attn_out", "mlp_out") for la in LAYERS
            for m in ("zero", "mean")])
    if f := out("07_attention"):
        types = ("first", "template", "emotion", "content", "function", "other")
        _write(f, "attention_by_head.csv", [
            {"set": s, "layer": la, "head": h, "type": t,
             "mass": (0.5 if t == "first" else 0.1) + (0.05 if s == "set_b" else 0),
             "per_token": 0.01} for s in ("set_b", "set_b_control") for la in LAYERS
            for h in range(2) for t in types])
        _write(f, "attention_tests.csv", [
            {"measure": m, "layer": la, "head": h, "type": t, "mean_diff": 0.01 * h,
             "significant": h == 1 and t == "emotion"}
            for m in ("mass", "per_token") for la in LAYERS for h in range(2) for t in types])
        _write(f, "attention_heads_differing.csv", [
            {"measure": m, "layer": la, "head": h, "differs": h == 0}
            for m in ("mass", "per_token") for la in LAYERS for h in range(2)])
    if f := out("08_geometry"):
        _write(f, "summary.csv", [
            {"metric": m, "layer": 2, "value": v, "p": p} for m, v, p in (
                ("silhouette euclidean: emotion (all sets)", 0.05, 0.001),
                ("centroid cosine uncentred: mean_cosine_all_pairs", 0.95, np.nan),
                ("centroid cosine centred: mean_cosine_all_pairs", -0.1, np.nan),
                ("centroid cosine centred_per_set: difference", 0.3, 0.002))])
        _write(f, "pca_probe_layer.csv", [
            {"view": v, "id": f"x{i}", "set": "set_a" if i % 2 else "set_b",
             "label": ("joy", "fear")[i % 2], "pc1": i, "pc2": -i, "pc1_ratio": 0.3,
             "pc2_ratio": 0.1} for v in ("joint", "per_set") for i in range(8)])
        _write(f, "silhouette_by_layer.csv", [
            {"layer": la, "grouping": "emotion (all sets)", "metric": "euclidean",
             "silhouette": 0.01 * la, "null_q95": 0.01} for la in LAYERS])
    emotions = ("happy", "sad", "angry", "calm")
    if f := out("09_emotion_vectors"):
        _write(f, "summary.csv", [
            {"language": "en", "layer": 2, "kind": k, "metric": m, "value": v, "p": 0.01}
            for k in ("centred", "projected") for m, v in (
                ("PC1 x valence (LOO pole projection) r", 0.85),
                ("PC1 x arousal (LOO pole projection) r", 0.2))])
        _write(f, "cosine_matrix.csv", [
            {"kind": "projected", "layer": 2, "a": a, "b": b, "cosine": 1.0 if a == b else -0.2}
            for a in emotions for b in emotions])
        _write(f, "clusters.csv", [
            {"kind": "projected", "layer": 2, "emotion": e, "valence": (1, -1, -1, 1)[i],
             "arousal": 0, "quadrant": "q", "kmeans": i % 2, "hier_order": (2, 0, 1, 3)[i],
             "pc1": i, "pc2": 1 - i, "pc1_ratio": 0.4, "pc2_ratio": 0.2}
            for i, e in enumerate(emotions)])
    if f := out("10_crosslingual"):
        _write(f, "summary.csv", [
            {"languages": "en-ja", "layer": 2, "kind": k, "metric": m, "value": v, "null": 0.3,
             "p": 1e-4} for k in ("centred", "projected") for m, v in (
                ("RSA Spearman (upper triangles)", 0.86),
                ("Procrustes fit (mean cosine, in-sample)", 0.95))])
        _write(f, "rsa_null_at_layer.csv", [
            {"kind": k, "layer": 2, "shuffle": i, "null_spearman": np.sin(i)}
            for k in ("centred", "projected") for i in range(50)])
        _write(f, "rsa_by_layer.csv", [
            {"kind": k, "layer": la, "rsa_spearman": 0.2 * la, "p": 0.01, "null_q95": 0.3}
            for k in ("centred", "projected") for la in LAYERS])
    if f := out("11_steering"):
        conds = [("baseline", "baseline", "baseline", 0.0)] + [
            (f"{e}@{a}", kind, e, a) for a in (0.1, 0.4)
            for e, kind in (("angry", "emotion"), ("happy", "emotion"), ("random0", "random"))]
        _write(f, "category_ratings.csv", [
            {"condition": c, "kind": kind, "emotion": e, "alpha": a, "method": m,
             "category": cat, "rating": 1000.0, "lo": 990.0, "hi": 1010.0,
             "delta": 10.0 * a * (1 if cat == "misaligned" else -1),
             "delta_lo": -1.0, "delta_hi": 5.0}
            for c, kind, e, a in conds for m in ("elo", "bt")
            for cat in ("helpful", "misaligned")])


def write_headlines(root: Path) -> None:
    """What each experiment's run does on success: headline.csv from its own CSVs."""
    for folder in sorted(root.glob("*/outputs/*")):
        write_headline_for(ROOT / "experiments" / folder.parents[1].name, folder)


def test_summary_row_per_model_missing_experiment_gives_nan_and_note(tmp_path):
    synthetic_tree(tmp_path, "alpha")
    synthetic_tree(tmp_path, "beta", skip=("06_knockout", "02_probes"))
    write_headlines(tmp_path)
    table = summary12.summary_table(tmp_path)
    assert list(table.model) == ["alpha", "beta"]
    a = table.set_index("model").loc["alpha"]
    assert a.model_name == "tiny-id"
    assert a.set_a_auroc == pytest.approx(0.9)
    assert a.a_to_b_auroc == pytest.approx(0.92)
    assert a.set_b_peak_depth_argmax == 1.0 and a.set_b_peak_depth_first == pytest.approx(0.667)
    assert a.binary_saturation_depth == pytest.approx(0.333)
    assert a.set_c_p_emotional == pytest.approx(0.2)  # ~2/3 depth of 4 layers = layer 2
    assert a.patch_b_peak_success == pytest.approx(0.3) and a.patch_b_peak_at == "h@L3"
    assert a.patch_cells_beating_random == "18/36" and a.patch_cells_beating_mean == "18/36"
    assert a.patch_b_mean_success == 0.05 and a.patch_b_minus_unpatched_hi == pytest.approx(0.3)
    assert a.ct_top_reference_raw == "joy" and a.ct_top_reference_centred == "peace"
    assert a.ct_most_discriminative_layer == 3 and a.ct_most_discriminative_layer_centred == 0
    assert a.vec_pc1_valence_r == pytest.approx(0.85)
    assert a.xling_rsa_r == pytest.approx(0.86) and a.xling_rsa_p == pytest.approx(1e-4)
    assert a.steer_alpha == 0.4 and a.steer_angry_misaligned == pytest.approx(4.0)
    assert a.steer_angry_helpful == pytest.approx(-4.0) and a.steer_random_max_abs == 4.0
    assert a.attn_top_type_set_b == "first" and a.attn_heads_differing == "4/8"
    assert a.attn_emotion_cells_fdr == "4/8"
    assert a.ct_user_assistant_gap_lo == pytest.approx(0.01)  # intervals travel as _lo / _hi
    assert "ko_max_accuracy_drop" not in table.columns or math.isnan(a.ko_max_accuracy_drop)
    assert "06_knockout: not run" in a.notes
    b = table.set_index("model").loc["beta"]
    assert math.isnan(b.set_a_auroc) and "02_probes: not run" in b.notes


def test_summary_survives_broken_csv(tmp_path, capsys):
    synthetic_tree(tmp_path, "m", skip=())
    path = tmp_path / "05_patching/outputs/m/patching_vs_controls.csv"
    pd.read_csv(path).drop(columns=["success_patch"]).to_csv(path, index=False)
    (tmp_path / "03_binary/outputs/m/scored_sets.csv").unlink()
    write_headlines(tmp_path)
    err = capsys.readouterr().err
    assert "05_patching: no headline.csv" in err and "success_patch" in err
    assert "03_binary: headline: Set C: no scored_sets.csv" in err
    row = summary12.summary_table(tmp_path).iloc[0]
    assert "patch_b_peak_success" not in row.index
    assert "05_patching: no headline.csv" in row.notes
    assert row.binary_auroc == 1.0 and "set_c_p_emotional" not in row.index
    assert row.ko_max_accuracy_drop == pytest.approx(0.3)
    assert row.ko_max_drop_at == "set_a a@L3 zero" and row.ko_n_critical_accuracy == 16


def test_summary_cli_writes_csv_and_markdown_and_never_silently_overwrites(tmp_path):
    synthetic_tree(tmp_path / "exp", "m")
    write_headlines(tmp_path / "exp")
    out = tmp_path / "out"
    args = ["--experiments", str(tmp_path / "exp"), "--out", str(out)]
    assert summary12.main(args) == 0
    table = pd.read_csv(out / "summary_table.csv")
    assert len(table) == 1 and table.model.iloc[0] == "m"
    md = (out / "summary_table.md").read_text()
    assert "| `set_a_auroc` |" in md and "06_knockout: not run" in md
    with pytest.raises(LLMCTError, match="refusing to overwrite"):
        summary12.main(args)
    assert summary12.main([*args, "--overwrite"]) == 0


def test_figures_png_svg_from_csvs_alone_and_missing_ones_skipped(tmp_path, capsys):
    from visualization.figures import run_all

    synthetic_tree(tmp_path / "exp", "m")  # no 06_knockout
    written, notes = run_all.run_all(tmp_path / "exp", tmp_path / "figs", models=["m", "zz"],
                                     only=["02", "06", "11"])
    assert sorted(p.name for p in written) == ["fig02_probes.png", "fig02_probes.svg",
                                               "fig11_steering.png", "fig11_steering.svg"]
    assert all(p.parent == tmp_path / "figs" / "m" and p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "figs/m/fig02_probes.svg").read_text().lstrip().startswith("<?xml")
    out = capsys.readouterr().out
    assert "skip fig06_knockout [m]" in out and "[zz]" in out
    assert len(notes) == 4  # knockout for m; all three for the unknown model zz


def test_every_figure_builds_from_synthetic_csvs(tmp_path):
    """Each figure function on the synthetic tree (drawing/saving is covered above)."""
    import matplotlib.pyplot as plt

    from visualization.figures import run_all, style_config

    synthetic_tree(tmp_path, "m", skip=())
    style_config.apply_style()
    for name, (exp, fn) in run_all.FIGURES.items():
        fig = fn(tmp_path / exp / "outputs" / "m", "m")
        assert fig.axes, name
        plt.close(fig)
    with pytest.raises(run_all.Skip):
        run_all.fig02_probes(tmp_path / "nowhere", "m")


def test_cross_model_figures_one_panel_per_model_and_missing_inputs_said(tmp_path):
    from visualization.figures import cross_model

    synthetic_tree(tmp_path / "exp", "m1", skip=())
    synthetic_tree(tmp_path / "exp", "m2", skip=("09_emotion_vectors",))
    written = cross_model.run_cross_model(tmp_path / "exp", tmp_path / "figs")
    assert sorted(p.name for p in written) == sorted(
        f"{name}.{ext}" for name in cross_model.FIGURES for ext in ("png", "svg"))
    svg = (tmp_path / "figs" / "figX3_affect_plane.svg").read_text()
    assert "no 09_emotion_vectors/clusters.csv" in svg  # m2's empty panel says why
    assert cross_model.run_cross_model(tmp_path / "exp", tmp_path / "one", models=["m1"]) == []
