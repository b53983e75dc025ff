"""Pairwise preferences: ratings recover known truths, order swapping cancels position bias,
bootstrap CIs cover, the activity bootstrap is paired and stratified, and shared-prefix batched
logits equal independent forwards."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from llmct.core.steering import random_direction, steer, steer_copies
from llmct.emotion.preferences import (
    ELO_SCALE,
    _elo_runs,
    activity_bootstrap_ratings,
    activity_draws,
    ask_preferences,
    ask_preferences_copies,
    bootstrap_ratings,
    bt_ratings,
    combine_orders,
    elo_ratings,
    group_means,
    hard_outcomes,
    last_token_logits,
    rating_table,
    ratings,
    sample_pairs,
)
from llmct.errors import LLMCTError
from tests.test_scan_snapshots import tiny_chat_model
from tests.tiny_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _win_prob(r_i, r_j):
    return 1.0 / (1.0 + 10.0 ** ((r_j - r_i) / 400.0))


@pytest.fixture(scope="module")
def truth():
    return np.linspace(-300, 300, 12) + 1500.0


def test_bt_is_exact_on_exact_probabilities(truth):
    pairs = sample_pairs(len(truth))
    scores = _win_prob(truth[pairs[:, 0]], truth[pairs[:, 1]])
    got = bt_ratings(pairs, scores, len(truth), prior=0.0)
    np.testing.assert_allclose(got, truth, atol=1e-6)


@pytest.mark.parametrize("method", ["elo", "bt"])
def test_ratings_recover_ranking_from_simulated_choices(truth, method):
    rng = np.random.default_rng(0)
    pairs = sample_pairs(len(truth))
    p = _win_prob(truth[pairs[:, 0]], truth[pairs[:, 1]])
    scores = rng.binomial(6, p) / 6.0  # six noisy binary choices per pair
    got = (elo_ratings(pairs, scores, len(truth), k=24, n_orders=10) if method == "elo"
           else bt_ratings(pairs, scores, len(truth)))
    assert spearmanr(got, truth).statistic > 0.9
    assert got.mean() == pytest.approx(1500.0)


def test_elo_and_bt_agree_on_hard_and_soft_outcomes(truth):
    pairs = sample_pairs(len(truth))
    scores = _win_prob(truth[pairs[:, 0]], truth[pairs[:, 1]])
    elo = elo_ratings(pairs, scores, len(truth), k=16, n_orders=10)
    assert spearmanr(elo, bt_ratings(pairs, scores, len(truth))).statistic > 0.95
    hard = hard_outcomes(scores)  # items with a perfect record stay finite (prior)
    assert set(np.unique(hard)) <= {0.0, 1.0} and np.isfinite(bt_ratings(pairs, hard, 12)).all()
    assert hard_outcomes([0.2, 0.5, 0.51]).tolist() == [0.0, 0.5, 1.0]
    hard_elo = ratings("elo-hard", pairs, scores, len(truth), elo_k=16, elo_orders=10)
    assert spearmanr(hard_elo, truth).statistic > 0.9
    assert np.ptp(hard_elo) > np.ptp(elo)  # hard outcomes exaggerate small preferences


def test_order_swapping_cancels_a_pure_position_bias():
    pairs = sample_pairs(8)
    p_a = np.full(len(pairs), 0.83)  # the model always leans to "A", whatever the options
    scores = combine_orders(p_a, p_a)
    np.testing.assert_allclose(scores, 0.5)
    np.testing.assert_allclose(bt_ratings(pairs, scores, 8), 1500.0, atol=1e-9)
    np.testing.assert_allclose(elo_ratings(pairs, scores, 8), 1500.0, atol=1e-9)
    one_order = bt_ratings(pairs, p_a, 8)  # A is always the lower index: a spurious ranking
    assert one_order[0] - one_order[-1] > 300


def test_order_swapping_removes_bias_on_top_of_real_preferences(truth):
    pairs = sample_pairs(len(truth))
    gap = (truth[pairs[:, 0]] - truth[pairs[:, 1]]) / ELO_SCALE
    bias = 1.2  # log-odds in favour of whichever option is shown first
    p_ij = 1 / (1 + np.exp(-(gap + bias)))   # pairs[:, 0] shown as A
    p_ji = 1 / (1 + np.exp(-(-gap + bias)))  # swapped: pairs[:, 1] shown as A
    both = bt_ratings(pairs, combine_orders(p_ij, p_ji), len(truth), prior=0.0)
    assert spearmanr(both, truth).statistic == pytest.approx(1.0)
    # one order only, with A always the lower-indexed item: the bias inflates low indices
    one = bt_ratings(pairs, p_ij, len(truth), prior=0.0)
    assert (one - truth)[0] > 100 and (both - truth)[0] < (one - truth)[0]


def test_bootstrap_ci_covers_the_true_category_difference():
    rng = np.random.default_rng(1)
    truth = np.r_[np.full(6, 1600.0), np.full(6, 1450.0), np.full(6, 1450.0)] + rng.normal(0, 30, 18)
    truth = truth - truth.mean() + 1500
    cats = ["hi"] * 6 + ["lo"] * 6 + ["mid"] * 6
    _, true_c = group_means(truth, cats)
    pairs = sample_pairs(len(truth))
    p = _win_prob(truth[pairs[:, 0]], truth[pairs[:, 1]])
    covered = 0
    n_sim = 20
    for sim in range(n_sim):
        scores = rng.binomial(4, p) / 4.0
        boot = bootstrap_ratings("bt", pairs, scores, len(truth), n_boot=300, seed=sim)
        _, boot_c = group_means(boot[:, 0], cats)
        diff = boot_c[:, 0] - boot_c[:, 1]
        lo, hi = np.quantile(diff, [0.025, 0.975])
        covered += lo <= true_c[0] - true_c[1] <= hi
    assert covered >= 0.8 * n_sim


def test_rating_table_pairs_conditions_and_zeroes_the_baseline(truth):
    pairs = sample_pairs(len(truth), per_item=5, seed=2)
    base = _win_prob(truth[pairs[:, 0]], truth[pairs[:, 1]])
    shifted = truth + np.where(np.arange(len(truth)) < 6, 80.0, -80.0)
    steered = _win_prob(shifted[pairs[:, 0]], shifted[pairs[:, 1]])
    cats = ["low"] * 6 + ["high"] * 6
    table = rating_table(pairs, {"base": base, "steered": steered, "control": base}, cats,
                         baseline="base", controls={"steered": ["control"]}, n_boot=100,
                         elo_orders=5)
    assert set(table.method) == {"elo", "bt", "elo-hard"}
    assert (table[table.condition == "base"].delta.abs() < 1e-9).all()
    bt = table[(table.method == "bt") & (table.condition == "steered")].set_index("category")
    assert bt.loc["low", "delta"] == pytest.approx(80.0, abs=2.0)
    assert bt.loc["low", "delta_lo"] > 0 and bt.loc["high", "delta_hi"] < 0
    np.testing.assert_allclose(bt.excess, bt.delta, atol=1e-9)  # the control equals the baseline
    assert table[table.condition == "base"].excess.isna().all()
    elo = table[(table.method == "elo") & (table.condition == "steered")].set_index("category")
    assert elo.loc["low", "delta"] > 0 > elo.loc["high", "delta"]


def test_sample_pairs_balanced_and_unique():
    everything = sample_pairs(10)
    assert len(everything) == 45 and (everything[:, 0] < everything[:, 1]).all()
    some = sample_pairs(48, per_item=6, seed=0)
    assert len({tuple(p) for p in some}) == len(some) and (some[:, 0] < some[:, 1]).all()
    counts = np.bincount(some.ravel(), minlength=48)
    assert counts.min() >= 4 and counts.max() <= 6


def test_activity_draws_are_stratified_and_seeded():
    groups = np.repeat(["a", "b", "c"], [4, 6, 2])
    draws = activity_draws(groups, 200, seed=1)
    assert draws.shape == (200, 12)
    for g, k in (("a", 4), ("b", 6), ("c", 2)):
        assert (draws[:, groups == g].sum(1) == k).all()
    np.testing.assert_array_equal(draws, activity_draws(groups, 200, seed=1))


def test_padded_elo_schedule_equals_the_unpadded_one():
    pairs = sample_pairs(8, 3, seed=0)
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=(2, len(pairs)))
    sched = np.stack([rng.permutation(len(pairs)) for _ in range(2)])
    padded = np.concatenate([sched, np.full((2, 5), -1)], axis=1)
    np.testing.assert_array_equal(_elo_runs(pairs, scores, sched, 8, 32.0),
                                  _elo_runs(pairs, scores, padded, 8, 32.0))


@pytest.mark.parametrize("method", ["bt", "elo-hard"])
def test_activity_bootstrap_is_paired_and_wider_than_the_pair_bootstrap(method):
    n, cats = 24, np.repeat(list("abcd"), 6)
    truth = np.random.default_rng(0).normal(size=n)
    pairs = sample_pairs(n, 6, seed=0)
    p = 1 / (1 + np.exp(-(truth[pairs[:, 0]] - truth[pairs[:, 1]])))
    boot, draws = activity_bootstrap_ratings(method, pairs, np.stack([p, p]), cats, n_boot=50)
    assert boot.shape == (50, 2, n) and draws.shape == (50, n)
    np.testing.assert_allclose(boot[:, 0], boot[:, 1])  # same resample for every condition
    np.testing.assert_allclose((boot[:, 0] * draws).sum(1) / draws.sum(1), 1500.0)
    wide = {}
    for unit in ("pairs", "activities"):
        t = rating_table(pairs, {"base": p}, cats, baseline="base", methods=[method],
                         n_boot=100, unit=unit)
        wide[unit] = float((t.hi - t.lo).mean())
        assert t.ci_unit.str.startswith(unit).all()
    assert wide["activities"] > wide["pairs"]


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_shared_prefix_logits_equal_independent_forwards(kind):
    model = tiny_model(kind)
    g = torch.Generator().manual_seed(0)
    common = torch.randint(3, 128, (6,), generator=g).tolist()
    seqs, groups = [], []
    for grp in range(3):
        option = torch.randint(3, 128, (3 + grp,), generator=g).tolist()
        for k in range(3 + grp):
            tail = torch.randint(3, 128, (1 + (k * 2) % 5,), generator=g).tolist()
            seqs.append(common + option + tail)
            groups.append(grp)
    seqs.append(common[:4])  # shorter than the common part of the others
    groups.append(9)

    def independent():
        with torch.inference_mode():
            return torch.stack([model(torch.tensor([s])).logits[0, -1] for s in seqs])

    got = last_token_logits(model, seqs, groups, batch_size=4)
    torch.testing.assert_close(got, independent(), atol=1e-4, rtol=1e-4)
    with steer(model, random_direction(64, 5), 1, alpha=3.0, start=3):
        steered = last_token_logits(model, seqs, groups, batch_size=4)
        ref = independent()
    torch.testing.assert_close(steered, ref, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(steered, got, atol=1e-3)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_shared_prefix_logits_of_steered_copies_equal_one_condition_at_a_time(kind):
    model = tiny_model(kind)
    g = torch.Generator().manual_seed(1)
    common = torch.randint(3, 128, (5,), generator=g).tolist()
    seqs = [common + torch.randint(3, 128, (2 + k % 4,), generator=g).tolist() for k in range(9)]
    groups = [k // 4 for k in range(9)]  # a group of 4 extends the shared cache by its prefix
    seqs[4:8] = [common + [7, 7] + s[len(common):] for s in seqs[4:8]]
    dirs, alphas = [random_direction(64, s) for s in (5, 6, 7)], [0.0, 2.0, 3.0]
    refs = []
    for direction, alpha in zip(dirs, alphas, strict=True):
        with steer(model, direction, 1, alpha=alpha, start=2):
            refs.append(last_token_logits(model, seqs, groups, batch_size=4))
    with steer_copies(model, dirs, 1, alphas, start=2):
        got = last_token_logits(model, seqs, groups, batch_size=4, copies=3)
        with pytest.raises(LLMCTError, match="rows for 2 copies"):
            last_token_logits(model, seqs, groups, batch_size=4, copies=2)
    assert got.shape == (3, len(seqs), 128)
    for c, ref in enumerate(refs):
        torch.testing.assert_close(got[c], ref, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(refs[1], refs[0], atol=1e-3)


def test_ask_preferences_copies_equal_ask_preferences_per_condition():
    model, tok = tiny_chat_model()
    items = ["read a book", "go for a walk", "cook dinner", "call a friend"]
    pairs = sample_pairs(len(items))
    d = model.config.hidden_size
    dirs, alphas = [random_direction(d, s) for s in (1, 2)], [0.0, 4.0]
    refs = []
    for direction, alpha in zip(dirs, alphas, strict=True):
        with steer(model, direction, 0, alpha=alpha):
            refs.append(ask_preferences(model, tok, items, pairs, batch_size=3))
    with steer_copies(model, dirs, 0, alphas):
        got = ask_preferences_copies(model, tok, items, pairs, copies=2, batch_size=3)
    assert len(got) == 2
    for ch, ref in zip(got, refs, strict=True):
        np.testing.assert_array_equal(ch.pairs, ref.pairs)
        np.testing.assert_allclose(ch.p_a, ref.p_a, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ch.mass, ref.mass, rtol=1e-5, atol=1e-9)
    assert np.abs(refs[1].p_a - refs[0].p_a).max() > 1e-6
