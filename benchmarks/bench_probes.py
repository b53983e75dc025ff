"""Time the per-layer probe sweeps of experiments 02/03 (30 layers x 3 sources x 5 folds).

Uses the stored few-shot activations of Set A, Set B and the Set B controls (experiment 01) when
present, else synthetic data of the same shape. Reports each sweep, the whole 02 battery
(probes + shuffled + transfer + text baseline), and a comparison with the plain sklearn pipeline
(StandardScaler + LogisticRegression) on the same folds in the same run: with BLAS pinned to one
thread (same algorithm: times and AUROCs should agree) and with default BLAS threads on a few
fits (on a shared 2-core machine OpenBLAS threading made each small fit 20-100x slower; llmct's
sweeps pin it). The sweeps and the battery run sequentially (``n_jobs=1``) as before; then
``n_jobs=1`` vs ``n_jobs=2`` worker processes (issue #17) side by side: ``--rounds`` interleaved
rounds of the Set A 8-class sweep with its out-of-fold probabilities (ratio of the medians), and
the whole 02 battery once each, every parallel result checked exactly equal to the sequential
one. Writes benchmarks/results/bench_probes.json.

    uv run --no-sync python benchmarks/bench_probes.py [--baseline-layers 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from llmct.analysis import probes
from llmct.analysis.stats import macro_ovr_auroc
from llmct.core.models import model_slug
from llmct.emotion.extract import load_extraction
from llmct.errors import StoreError
from stimuli.loader import load_sets

ROOT = Path(__file__).resolve().parents[1]
ACTS = ROOT / "experiments/01_extract/outputs" / model_slug("default") / "activations/fewshot"


def data():
    stimuli = load_sets("set_a", "set_b", "set_b_control")
    try:
        ext = load_extraction(ACTS, stimuli)
        return stimuli, ext.acts, ext.layers, ext.n_layers, "stored activations (" + str(ACTS.relative_to(ROOT)) + ")"
    except StoreError:
        rng = np.random.default_rng(0)
        labels = np.array([s.label for s in stimuli])
        centres = {lab: rng.normal(size=576) for lab in set(labels)}
        base = np.stack([centres[lab] for lab in labels])[:, None, :] * 0.3
        acts = {s: (rng.normal(size=(len(stimuli), 30, 576)) + base).astype(np.float32)
                for s in ("hidden_out", "attn_out", "mlp_out")}
        return stimuli, acts, list(range(30)), 30, "synthetic (no stored activations)"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def sklearn_sweep(acts, y, folds, n_layers):
    """The reference pipeline, fitted exactly as the paper's code does, on ``n_layers`` layers."""
    scores = []
    for source in acts:
        for j in range(n_layers):
            X = acts[source][:, j]
            for tr, te in folds:
                pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=10_000))
                pipe.fit(X[tr], y[tr])
                scores.append(macro_ovr_auroc(y[te], pipe.predict_proba(X[te]), pipe.classes_))
    return scores


def same_result(a, b) -> bool:
    """Exactly equal: ``(frame, {source: array})`` pairs (or frames alone)."""
    (fa, oa), (fb, ob) = (x if isinstance(x, tuple) else (x, {}) for x in (a, b))
    try:
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
    except AssertionError:
        return False
    return list(oa) == list(ob) and all(np.array_equal(oa[k], ob[k], equal_nan=True) for k in oa)


def jobs_rounds(run, rounds: int) -> dict:
    """``run(n_jobs)`` for n_jobs 1 and 2 in ``rounds`` interleaved rounds (the order alternates):
    seconds of each, the ratio of the medians, and whether every result equals the first."""
    probes.layer_sweep({"w": np.zeros((8, 4, 2))}, np.repeat([0, 1], 4),
                       probes.make_folds(np.repeat([0, 1], 4), n_splits=2), layers=range(4),
                       n_layers=4, n_jobs=2)  # start the workers (once per process, as 02 does)
    secs: dict[int, list[float]] = {1: [], 2: []}
    results = []
    for r in range(rounds):
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            out, sec = timed(lambda n=n: run(n))
            secs[n].append(round(sec, 2))
            results.append(out)
    med = {n: statistics.median(v) for n, v in secs.items()}
    return {"seconds_n_jobs_1": secs[1], "seconds_n_jobs_2": secs[2],
            "median_n_jobs_1": round(med[1], 2), "median_n_jobs_2": round(med[2], 2),
            "ratio_of_medians_1_to_2": round(med[1] / med[2], 2),
            "identical": all(same_result(results[0], x) for x in results[1:])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-layers", type=int, default=6,
                        help="layers per source timed with the plain sklearn pipeline")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of n_jobs=1 vs n_jobs=2")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/bench_probes.json"))
    args = parser.parse_args(argv)

    stimuli, acts, layers, n_layers, origin = data()
    labels = np.array([s.label for s in stimuli])
    sets = np.array([s.set for s in stimuli])
    texts = [s.text for s in stimuli]
    res: dict = {"data": origin, "n_layers": len(layers), "d_model": int(acts["hidden_out"].shape[-1]),
                 "sources": list(acts), "cpu_count": os.cpu_count(), "python": platform.python_version()}

    def sweep(mask, y, groups=None):
        sub = {s: a[mask] for s, a in acts.items()}
        folds = probes.make_folds(y, groups)
        return probes.layer_sweep(sub, y, folds, layers=layers, n_layers=n_layers, n_jobs=1)

    a = (sets == "set_a") & (labels != "neutral")
    b = sets == "set_b"
    ab = a | b
    bc = (sets == "set_b") | (sets == "set_b_control")
    groups = np.array([s.pair_id or s.id for s in stimuli])
    for name, mask, y, g in [
        ("sweep_set_a_8class", a, labels[a], None),
        ("sweep_set_b_8class", b, labels[b], None),
        ("sweep_set_a+b_8class", ab, labels[ab], None),
        ("sweep_b_vs_controls_binary_grouped", bc, (sets[bc] == "set_b").astype(int), groups[bc]),
    ]:
        df, sec = timed(lambda mask=mask, y=y, g=g: sweep(mask, y, g))
        res[name] = {"n_items": int(mask.sum()), "fits": len(df) * 5, "seconds": round(sec, 2),
                     "max_auroc": round(float(df.auroc.max()), 4)}
        print(f"{name:38s} n={mask.sum():3d} fits={len(df) * 5:4d} {sec:6.1f} s")

    keep = (sets == "set_a") | (sets == "set_b")

    def battery(n_jobs):
        return probes.probe_suite(
            {s: v[keep] for s, v in acts.items()}, labels[keep], sets[keep],
            [t for t, k in zip(texts, keep, strict=True) if k], layers=layers, n_layers=n_layers,
            transfers=[("set_a", "set_b"), ("set_b", "set_a")], n_jobs=n_jobs)

    seq, sec = timed(lambda: battery(1))
    res["experiment_02_battery_seconds"] = round(sec, 2)
    print(f"{'experiment 02 battery (all controls)':38s} {sec:6.1f} s")

    def sweep_a(n_jobs):  # the 02 within-set sweep, with the out-of-fold probabilities it keeps
        oof: dict = {}
        y = labels[a]
        df = probes.layer_sweep({s: v[a] for s, v in acts.items()}, y, probes.make_folds(y),
                                layers=layers, n_layers=n_layers, oof=oof, n_jobs=n_jobs)
        return df, oof

    par = jobs_rounds(sweep_a, args.rounds)
    par["workload"] = "sweep_set_a_8class with oof (450 fits), workers started beforehand"
    bat, sec2 = timed(lambda: battery(2))
    par["experiment_02_battery_seconds_n_jobs_2"] = round(sec2, 2)
    par["experiment_02_battery_ratio_1_to_2"] = round(sec / sec2, 2)
    par["experiment_02_battery_identical"] = same_result(seq, bat)
    res["n_jobs_1_vs_2"] = par
    print(f"n_jobs 1 vs 2, set A sweep: medians {par['median_n_jobs_1']} s vs "
          f"{par['median_n_jobs_2']} s (x{par['ratio_of_medians_1_to_2']}), identical: "
          f"{par['identical']}; battery {sec:.1f} s vs {sec2:.1f} s "
          f"(x{sec / sec2:.2f}), identical: {par['experiment_02_battery_identical']}")

    # the plain pipeline on the same folds: with BLAS pinned to one thread (the algorithmic
    # comparison) and with default threads on a few fits (the threading pathology)
    y = labels[ab]
    folds = probes.make_folds(y)
    n = args.baseline_layers
    sub = {s: v[ab][:, :n] for s, v in acts.items()}
    ours, t_ours = timed(lambda: probes.layer_sweep(sub, y, folds, layers=layers[:n],
                                                    n_layers=n_layers, n_jobs=1))
    with threadpool_limits(limits=1, user_api="blas"):
        ref, t_ref = timed(lambda: sklearn_sweep(sub, y, folds, n))
    one = {"hidden_out": sub["hidden_out"][:, :1]}
    ref1, t_thr = timed(lambda: sklearn_sweep(one, y, folds, 1))
    diff = np.abs(np.array(ref).reshape(-1, 5).mean(1) - ours.auroc.to_numpy())
    res["vs_sklearn_pipeline"] = {
        "fits": len(ref), "llmct_seconds": round(t_ours, 2),
        "sklearn_1_blas_thread_seconds": round(t_ref, 2), "time_ratio_sklearn_1thread_to_llmct": round(t_ref / t_ours, 2),
        "sklearn_default_threads_seconds_per_fit": round(t_thr / len(ref1), 3),
        "llmct_seconds_per_fit": round(t_ours / len(ref), 3),
        "speedup_from_pinning_blas": round((t_thr / len(ref1)) / (t_ours / len(ref)), 1),
        "max_abs_auroc_difference": round(float(diff.max()), 5)}
    print(f"vs plain sklearn on {len(ref)} fits (1 BLAS thread): {t_ref:.1f} s vs llmct "
          f"{t_ours:.1f} s (x{t_ref / t_ours:.1f}); max |AUROC diff| = {diff.max():.5f}")
    print(f"plain sklearn with default BLAS threads: {t_thr / len(ref1):.2f} s per fit "
          f"(llmct {t_ours / len(ref):.3f} s)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
