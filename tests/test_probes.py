"""Probe protocol on synthetic data: separable -> AUROC ~1, shuffled -> ~0.5, peak rules, transfer,
the probe equals the plain sklearn pipeline, and the stats helpers."""

import numpy as np
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
