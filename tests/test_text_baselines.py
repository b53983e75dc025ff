"""Text-only baselines with grouped CV: they find a planted word, stay at chance on noise, and
never let a group straddle a fold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from llmct.analysis.text_baselines import (
    BASELINES,
    STYLOMETRIC_FEATURES,
    grouped_cv_auroc,
    grouped_folds,
    make_baseline,
    stylometric_features,
    top_features,
)

FILLER = ("table window river garden paper light stone market chair road cloud bread "
          "letter clock field door train coat shelf bottle street lamp wall spoon").split()


MARKERS = ("zephyr", "quokka", "jukebox", "vivid")


def _sentence(rng: np.random.Generator, n: int = 12) -> str:
    return " ".join(rng.choice(FILLER, size=n)) + "."


def _planted(n_groups: int = 15, per_group: int = 4, k: int = 2, seed: int = 0):
    """Texts of random filler where the label is given by one planted word (``MARKERS[K]``;
    the markers share no character trigram with each other, so char n-grams can see them)."""
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for g in range(n_groups):
        for i in range(per_group):
            lab = i % k
            words = _sentence(rng).split()
            words.insert(int(rng.integers(len(words))), MARKERS[lab])
            texts.append(" ".join(words))
            labels.append(f"c{lab}")
            groups.append(f"g{g}")
    return texts, np.array(labels), np.array(groups)


@pytest.mark.parametrize("baseline", ["word_tfidf", "char_tfidf"])
def test_one_planted_word_gives_auroc_near_one(baseline):
    texts, y, g = _planted()
    score = grouped_cv_auroc(texts, y, g, baseline)
    assert score.n_folds == 15  # leave-one-group-out by default
    assert score.auroc > 0.95
    assert score.fold_aurocs.shape == (15,)
    assert score.oof_proba.shape == (len(texts), 2)
    assert not np.isnan(score.oof_proba).any()


def test_planted_word_multiclass_macro_auroc_near_one():
    texts, y, g = _planted(n_groups=24, per_group=4, k=4)
    score = grouped_cv_auroc(texts, y, g, "word_tfidf", n_splits=4)
    assert list(score.classes) == ["c0", "c1", "c2", "c3"]
    assert score.n_folds == 4
    assert score.auroc > 0.95
    assert np.allclose(score.oof_proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("baseline", BASELINES)
def test_random_labels_stay_near_chance(baseline):
    rng = np.random.default_rng(1)
    texts = [_sentence(rng, int(rng.integers(8, 16))) for _ in range(240)]
    y = rng.permutation(np.repeat(["a", "b"], 120))
    g = np.repeat(np.arange(60), 4)
    score = grouped_cv_auroc(texts, y, g, baseline, n_splits=5, seed=0)
    assert abs(score.auroc - 0.5) < 0.12, score.auroc


def test_length_determines_label_stylometric_finds_it_words_do_not():
    rng = np.random.default_rng(2)
    texts, y, g = [], [], []
    for grp in range(20):
        for lab, n in (("short", 6), ("long", 30)):
            texts.append(_sentence(rng, n))
            y.append(lab)
            g.append(grp)
    score = grouped_cv_auroc(texts, y, g, "stylometric")
    assert score.auroc > 0.95


def test_groups_never_straddle_folds():
    texts, y, g = _planted(n_groups=10, per_group=4)
    for n_splits in (None, 2, 5):
        folds = grouped_folds(y, g, n_splits=n_splits, seed=3)
        seen = np.concatenate([te for _, te in folds])
        assert sorted(seen) == list(range(len(y)))  # every item tested exactly once
        for tr, te in folds:
            assert not set(g[tr]) & set(g[te])
            assert len(tr) + len(te) == len(y)
    with pytest.raises(ValueError, match="both sides"):
        grouped_cv_auroc(texts, y, g, "word_tfidf",
                         folds=list(StratifiedKFold(5, shuffle=True, random_state=0)
                                    .split(np.zeros(len(y)), y)))


def test_grouping_blocks_memorised_group_words():
    """Label constant within a group and a word unique to each group: ungrouped CV could
    memorise the group word; grouped CV cannot (it never saw the test group's word)."""
    rng = np.random.default_rng(4)
    texts, y, g = [], [], []
    for grp in range(30):
        lab = "a" if grp % 2 else "b"
        for _ in range(4):
            texts.append(_sentence(rng, 4) + f" grp{grp}word grp{grp}word")
            y.append(lab)
            g.append(grp)
    y, g = np.array(y), np.array(g)
    grouped = grouped_cv_auroc(texts, y, g, "word_tfidf", n_splits=5).auroc
    ungrouped_folds = list(StratifiedKFold(5, shuffle=True, random_state=0)
                           .split(np.zeros(len(y)), y))
    # the same data, folds ignoring the groups (fake distinct groups so the check passes)
    ungrouped = grouped_cv_auroc(texts, y, np.arange(len(y)), "word_tfidf",
                                 folds=ungrouped_folds).auroc
    assert ungrouped > 0.9
    assert grouped < 0.7


def test_stylometric_features_count_what_they_say():
    text = "He said, 'Two 3-hour waits?' She didn't answer. Then: \"No!\" (again) 42."
    f = dict(zip(STYLOMETRIC_FEATURES, stylometric_features([text])[0], strict=True))
    assert f["n_digits"] == 3
    assert f["n_questions"] == 1 and f["n_exclamations"] == 1
    assert f["n_quotes"] == 4  # two single quotes around speech, two double quotes
    assert f["n_apostrophes"] == 1  # didn't
    assert f["n_commas"] == 1 and f["n_colons"] == 1 and f["n_dashes"] == 1
    assert f["n_parentheses"] == 2
    assert f["n_chars"] == len(text)
    assert f["n_words"] == 13  # He said Two 3 hour waits She didn't answer Then No again 42
    assert f["n_sentences"] == 4
    assert stylometric_features([]).shape == (0, len(STYLOMETRIC_FEATURES))


def test_top_features_ranks_the_planted_word_first():
    texts, y, _ = _planted(n_groups=10)
    top = top_features(texts, y, "word_tfidf", k=3)
    assert set(top.columns) == {"label", "rank", "feature", "weight"}
    first = top[top["rank"] == 1].set_index("label")["feature"].to_dict()
    assert first == {"c0": "zephyr", "c1": "quokka"}
    assert len(top) == 6


def test_errors():
    with pytest.raises(ValueError, match="unknown text baseline"):
        make_baseline("bert")
    with pytest.raises(ValueError, match="lengths differ"):
        grouped_cv_auroc(["a b", "c d"], ["x", "y"], [0], "word_tfidf")
    with pytest.raises(ValueError, match="2 classes"):
        grouped_cv_auroc(["a b", "c d"], ["x", "x"], [0, 1], "word_tfidf")
    with pytest.raises(ValueError, match="n_splits"):
        grouped_folds(["x", "y", "x"], [0, 1, 2], n_splits=5)
