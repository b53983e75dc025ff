"""Probe protocol on synthetic data: separable -> AUROC ~1, shuffled -> ~0.5, peak rules, transfer,
the probe equals the plain sklearn pipeline, and the stats helpers."""

import os

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from llmct.analysis import probes, stats


def blobs(n_per=12, k=4, d=64, sep=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep / np.sqrt(d)
    y = np.repeat(np.arange(k), n_per)
    return rng.normal(size=(len(y), d)) + centres[y] * np.sqrt(d), y


def test_folds_are_the_papers_stratified_kfold():
    _, y = blobs()
    folds = probes.make_folds(y)
    assert len(folds) == 5
    test_idx = np.concatenate([te for _, te in folds])
    assert sorted(test_idx) == list(range(len(y)))
    for _, te in folds:  # stratified: every class in every held-out fold
        assert set(y[te]) == set(y)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, probes.make_folds(y), strict=True))


def test_grouped_folds_keep_groups_together():
    y = np.tile([0, 1], 20)
    groups = np.repeat(np.arange(20), 2)
    for tr, te in probes.make_folds(y, groups):
        assert not set(groups[tr]) & set(groups[te])


def test_separable_classes_give_auroc_one_and_shuffled_chance():
    X, y = blobs(sep=6.0)
    folds = probes.make_folds(y)
    assert probes.cv_auroc(X, y, folds).mean() > 0.99
    null = [probes.cv_auroc(X, probes.shuffled(y, s), folds).mean() for s in range(4)]
    assert abs(np.mean(null) - 0.5) < 0.1


def test_probe_equals_plain_sklearn_pipeline():
    X, y = blobs(n_per=10, k=3, d=120, sep=1.0, seed=1)
    probe = probes.fit_probe(X, y, tol=1e-8)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=10_000, tol=1e-8))
    ref.fit(X, y)
    Xt, yt = blobs(n_per=10, k=3, d=120, sep=1.0, seed=2)
    np.testing.assert_allclose(probe.predict_proba(Xt), ref.predict_proba(Xt), atol=1e-4)
    assert probe.auroc(Xt, yt) == pytest.approx(
        roc_auc_score(yt, ref.predict_proba(Xt), multi_class="ovr", average="macro"), abs=5e-3)


def test_binary_probe_and_constant_features():
    X, y = blobs(k=2, d=30, sep=5.0)
    X[:, 0] = 7.0  # a constant column must not break the scaler
    probe = probes.fit_probe(X, y)
    assert probe.predict_proba(X).shape == (len(y), 2)
    assert probe.auroc(X, y) > 0.99
    flat = probes.fit_probe(np.ones((10, 5)), np.tile([0, 1], 5))  # nothing to learn
    assert probe.auroc(X, y) > 0.99 and flat.auroc(np.ones((10, 5)), np.tile([0, 1], 5)) == 0.5


def test_layer_sweep_and_transfer_frames():
    X, y = blobs(d=16, sep=4.0)
    rng = np.random.default_rng(3)
    acts = {"hidden_out": np.stack([rng.normal(size=X.shape), X], axis=1)}  # layer 0 noise
    folds = probes.make_folds(y)
    df = probes.layer_sweep(acts, y, folds, layers=[0, 1], n_layers=2)
    assert list(df.columns[:6]) == ["source", "layer", "depth", "auroc", "auroc_std", "n_folds"]
    assert df.auroc.iloc[0] < 0.75 and df.auroc.iloc[1] > 0.95 and df.depth.tolist() == [0.0, 1.0]
    X2, y2 = blobs(d=16, sep=4.0, seed=0)  # same centres, new noise
    X2 = X2 + np.random.default_rng(9).normal(size=X2.shape)
    test = {"hidden_out": np.stack([rng.normal(size=X2.shape), X2], axis=1)}
    tr = probes.transfer_sweep(acts, y, test, y2, layers=[0, 1], n_layers=2)
    assert tr.auroc.iloc[1] > 0.95 and tr.auroc.iloc[0] < 0.75


def test_peak_layer_rules_on_a_flat_curve():
    curve = [0.7, 0.9, 0.998, 1.0, 0.999, 1.0, 1.0]
    pk = probes.peak_layer(curve)
    assert pk.argmax_layer == 3 and pk.first_within_layer == 2
    assert pk.first_within_depth == pytest.approx(2 / 6) and pk.max_auroc == 1.0
    pk = probes.peak_layer([0.5, 0.6], layers=[10, 20], n_layers=21)
    assert pk.argmax_layer == 20 and pk.argmax_depth == 1.0 and pk.first_within_layer == 20
    with pytest.raises(ValueError):
        probes.peak_layer([])


def test_text_baseline_finds_keywords_and_fails_without():
    words = {0: "furious rage", 1: "joyful delight"}
    rng = np.random.default_rng(0)
    filler = ["the", "a", "walk", "table", "window", "street", "morning"]
    y = np.repeat([0, 1], 10)
    keyed = [f"{' '.join(rng.choice(filler, 6))} {words[c]}" for c in y]
    plain = [" ".join(rng.choice(filler, 8)) for _ in y]
    folds = probes.make_folds(y)
    assert probes.text_cv_auroc(keyed, y, folds).mean() > 0.95
    assert probes.text_cv_auroc(plain, y, folds).mean() < 0.8
    assert probes.text_transfer_auroc(keyed, y, keyed[::-1], y[::-1]) > 0.95


def test_stats_helpers():
    y = np.array([0, 0, 1, 1])
    assert stats.auroc(y, [0.1, 0.4, 0.35, 0.8]) == roc_auc_score(y, [0.1, 0.4, 0.35, 0.8])
    assert np.isnan(stats.auroc([1, 1], [0.2, 0.3]))
    ci = stats.bootstrap_ci(np.arange(100.0), seed=1)
    assert ci.lo < 49.5 < ci.hi and ci.estimate == 49.5
    assert ci == stats.bootstrap_ci(np.arange(100.0), seed=1)
    obs, p, null = stats.permutation_test(lambda lab: stats.auroc(lab, np.arange(20)),
                                          np.repeat([0, 1], 10), n_perm=200)
    assert obs == 1.0 and p < 0.01 and len(null) == 200
    assert stats.permutation_pvalue(0.0, np.ones(9)) == 1.0


def test_plan_transfers_every_ordered_pair_and_says_what_is_left_out():
    labels = ["joy"] * 5 + ["fear"] * 5 + ["anger"] * 2 + ["joy"] * 5 + ["fear"] * 5 + [
        "neutral"] * 5 + ["joy"] * 6
    sets = ["a"] * 12 + ["b"] * 15 + ["c"] * 6
    plan = probes.plan_suite(labels, sets)
    assert plan.within == {"a": ["fear", "joy"], "b": ["fear", "joy"]}
    assert [(tr, te) for tr, te, _ in plan.transfers] == [("a", "b"), ("b", "a")]
    reasons = {(d.get("set"), d.get("train_set"), d.get("test_set"), d["label"]): d["reason"]
               for d in plan.left_out}
    assert reasons[("a", None, None, "anger")].startswith("only 2 item(s)")
    assert reasons[("b", None, None, "neutral")] == "excluded (--exclude-labels)"
    assert "no within-set probe: 1 usable label(s)" in reasons[("c", None, None, None)]
    assert "no transfer: 1 shared" in reasons[(None, "a", "c", None)]
    assert not probes.plan_suite(["joy"] * 9, ["x"] * 9).transfers
    assert probes.plan_suite(["joy"] * 9, ["x"] * 9).empty
    with pytest.raises(ValueError, match="set\\(s\\) 'z' not in the stimuli"):
        probes.plan_suite(labels, sets, transfers=[("a", "z")])


def test_default_transfers_match_the_explicit_shipped_pairs():
    rng = np.random.default_rng(0)
    labels = np.repeat(["joy", "fear", "anger"], 6).tolist() * 2
    sets = ["set_a"] * 18 + ["set_b"] * 18
    cls = np.tile(np.repeat(np.arange(3), 6), 2)  # class index of each item, both sets
    acts = {"hidden_out": rng.normal(size=(36, 2, 8)) + cls[:, None, None]}
    texts = [f"text {i}" for i in range(36)]
    grid = {"layers": [0, 1], "n_layers": 2}
    explicit = probes.probe_suite(acts, labels, sets, texts, transfers=[("set_a", "set_b"),
                                                                       ("set_b", "set_a")], **grid)
    default = probes.probe_suite(acts, labels, sets, texts, transfers=None, **grid)
    import pandas as pd

    pd.testing.assert_frame_equal(explicit, default)
    assert {("set_a", "set_b"), ("set_b", "set_a")} <= set(zip(default.train_set, default.test_set,
                                                               strict=True))


# -- parallel sweeps (issue #17): any n_jobs gives exactly the sequential result -------------------

def _sweep_data(seed=0, n_per=8, k=3, n_layers=3, d=12):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(["anger", "joy", "fear"][:k]), n_per)
    cls = np.repeat(np.arange(k), n_per)
    acts = {s: rng.normal(size=(len(y), n_layers, d)) + cls[:, None, None] * rng.normal(size=d)
            for s in ("hidden_out", "attn_out")}
    return acts, y


def _both(fn):
    """``fn(n_jobs)`` sequentially and on 2 worker processes."""
    return fn(1), fn(2)


def test_layer_sweep_is_identical_on_worker_processes():
    acts, y = _sweep_data()
    folds = probes.make_folds(y)
    oofs = {1: {}, 2: {}}
    seq, par = _both(lambda n: probes.layer_sweep(acts, y, folds, layers=[0, 2, 4], n_layers=5,
                                                  oof=oofs[n], n_jobs=n))
    pd.testing.assert_frame_equal(seq, par, check_exact=True)
    assert list(oofs[1]) == list(oofs[2]) == ["hidden_out", "attn_out"]
    for source in oofs[1]:
        assert oofs[1][source].shape == (3, len(y), 3)
        np.testing.assert_array_equal(oofs[1][source], oofs[2][source])


def test_transfer_sweep_is_identical_on_worker_processes():
    acts, y = _sweep_data()
    test, y2 = _sweep_data(seed=1)
    out = {1: {}, 2: {}}
    seq, par = _both(lambda n: probes.transfer_sweep(acts, y, test, y2, layers=[0, 1, 2],
                                                     n_layers=3, proba_out=out[n], n_jobs=n))
    pd.testing.assert_frame_equal(seq, par, check_exact=True)
    for source in out[1]:
        np.testing.assert_array_equal(out[1][source], out[2][source])


def test_probe_suite_is_identical_on_worker_processes():
    a, y = _sweep_data(n_per=6)
    b, _ = _sweep_data(seed=2, n_per=6)
    acts = {s: np.concatenate([a[s], b[s]]) for s in a}
    labels, sets = np.tile(y, 2), np.repeat(["set_a", "set_b"], len(y))
    texts = [f"item {i} {lab}" for i, lab in enumerate(labels)]
    extra = {1: ([], {}, []), 2: ([], {}, [])}
    seq, par = _both(lambda n: probes.probe_suite(
        acts, labels, sets, texts, layers=[0, 1, 2], n_layers=3, transfers=None,
        peaks_out=extra[n][0], proba_out=extra[n][1], seeds_out=extra[n][2], fold_seeds=3,
        n_boot=20, n_jobs=n))
    pd.testing.assert_frame_equal(seq, par, check_exact=True)
    assert set(seq.control) >= {"none", "shuffled", "text_tfidf"}
    assert extra[1][0] and extra[1][2]
    pd.testing.assert_frame_equal(pd.DataFrame(extra[1][0]), pd.DataFrame(extra[2][0]),
                                  check_exact=True)
    pd.testing.assert_frame_equal(pd.DataFrame(extra[1][2]), pd.DataFrame(extra[2][2]),
                                  check_exact=True)
    assert list(extra[1][1]) == list(extra[2][1])
    for key, (yk, proba) in extra[1][1].items():
        np.testing.assert_array_equal(yk, extra[2][1][key][0])
        for source in proba:
            np.testing.assert_array_equal(proba[source], extra[2][1][key][1][source])


def test_cells_run_on_workers_only_when_there_are_enough():
    assert set(probes._run_cells(os.getpid, [()] * 4, 2)) != {os.getpid()}
    assert probes._run_cells(os.getpid, [()] * 3, 2) == [os.getpid()] * 3  # too few: in process
    assert probes._run_cells(os.getpid, [()] * 4, 1) == [os.getpid()] * 4


def test_llmct_jobs_is_checked(monkeypatch):
    from llmct.errors import UsageError

    assert probes.jobs_from_env(None) == probes.jobs_from_env(" ") == min(os.cpu_count(), 8)
    assert probes.jobs_from_env("3") == 3
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(UsageError, match="^LLMCT_JOBS=") as err:
            probes.jobs_from_env(bad)
        assert "\n" not in str(err.value)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UsageError, match="n_jobs"):
            probes.resolve_jobs(bad)
    probes.default_jobs.cache_clear()
    try:
        monkeypatch.setenv("LLMCT_JOBS", "0")
        acts, y = _sweep_data()
        with pytest.raises(UsageError, match="LLMCT_JOBS"):
            probes.layer_sweep(acts, y, probes.make_folds(y), layers=[0, 1, 2], n_layers=3)
        monkeypatch.setenv("LLMCT_JOBS", "1")
        probes.default_jobs.cache_clear()
        assert probes.resolve_jobs(None) == 1
        monkeypatch.setenv("LLMCT_JOBS", "5")  # read once: no change until the cache is cleared
        assert probes.resolve_jobs(None) == 1
    finally:
        probes.default_jobs.cache_clear()
