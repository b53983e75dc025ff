"""Text-only baselines scored with cross-validation grouped by a key (the lexical ceiling).

If a classifier that sees only the surface of a text (its words, its characters, its length and
punctuation) already separates the labels, an activation probe that does the same is no evidence
of an internal representation. This module scores three such baselines on the *same* grouped
folds the probes use, so that e.g. a vignette and its matched control, or the nine versions of one
appraisal frame, are never split between training and test:

``word_tfidf``
    word 1-2-gram TF-IDF (``sublinear_tf``, lower-cased) + L2 logistic regression;
``char_tfidf``
    character 3-5-gram TF-IDF inside word boundaries (``analyzer="char_wb"``) + L2 logistic
    regression;
``stylometric``
    :data:`STYLOMETRIC_FEATURES` (counts of words, characters, sentences, punctuation, digits,
    quotes ...), standardised, + L2 logistic regression.

Every step is an sklearn :class:`~sklearn.pipeline.Pipeline` fitted on the training fold only.
The AUROC is computed once on the pooled out-of-fold probabilities (each item scored by the
model that did not see its group): with leave-one-group-out a test fold may hold a single pair
or frame, so per-fold AUROCs are coarse or undefined; they are returned too (NaN where a fold
holds one class). Pooling mixes scores of different fitted models, so it can be slightly
pessimistic when the folds' models are calibrated differently; this is the usual trade-off of
leave-one-group-out (e.g. Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*,
7.10; Forman & Scholz 2010, "Apples-to-apples in cross-validation studies").

This is the project's keyword-spotting test (issue #15); ``probes.text_cv_auroc`` is the older
per-fold TF-IDF baseline used by experiments 02-04 and is kept as it is.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

__all__ = [
    "BASELINES",
    "STYLOMETRIC_FEATURES",
    "BaselineScore",
    "StylometricFeatures",
    "grouped_cv_auroc",
    "grouped_folds",
    "make_baseline",
    "stylometric_features",
    "top_features",
]

#: The baselines :func:`make_baseline` knows, in report order.
BASELINES: tuple[str, ...] = ("word_tfidf", "char_tfidf", "stylometric")

#: Column names of :func:`stylometric_features`, in order.
STYLOMETRIC_FEATURES: tuple[str, ...] = (
    "n_words",
    "n_chars",
    "n_sentences",
    "mean_sentence_words",
    "mean_word_chars",
    "n_commas",
    "n_periods",
    "n_semicolons",
    "n_colons",
    "n_dashes",
    "n_parentheses",
    "n_apostrophes",
    "n_digits",
    "n_quotes",
    "n_questions",
    "n_exclamations",
)

MAX_ITER = 10_000

_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)*")
_SENT_RE = re.compile(r"[.!?]+(?=\s|$|['\"\u2019\u201d])")
# a quote mark: any double quote, or a single quote not between two letters (an apostrophe is)
_QUOTE_RE = re.compile(r"[\"\u201c\u201d]|(?<![A-Za-z])['\u2018\u2019]|['\u2018\u2019](?![A-Za-z])")
_APOS_RE = re.compile(r"(?<=[A-Za-z])['\u2019](?=[A-Za-z])")


def stylometric_features(texts: Sequence[str]) -> np.ndarray:
    """Surface statistics of each text, ``[n_texts, len(STYLOMETRIC_FEATURES)]`` float64.

    Counts (not rates) of words (letters/digits, internal apostrophes kept), characters,
    sentences (runs of ``.!?`` followed by space, quote or end; at least 1), mean words per
    sentence, mean characters per word, commas, full stops, semicolons, colons, dashes (``-``,
    en and em dash), parentheses, apostrophes inside words, digits, quote marks (double quotes,
    and single quotes not between two letters), question and exclamation marks.
    """
    rows = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"stylometric_features needs strings, got {type(text).__name__}")
        words = _WORD_RE.findall(text)
        n_words = len(words)
        n_sent = max(1, len(_SENT_RE.findall(text.strip())))
        rows.append([
            n_words,
            len(text),
            n_sent,
            n_words / n_sent,
            (sum(len(w) for w in words) / n_words) if n_words else 0.0,
            text.count(","),
            text.count("."),
            text.count(";"),
            text.count(":"),
            sum(text.count(c) for c in "-\u2013\u2014"),
            text.count("(") + text.count(")"),
            len(_APOS_RE.findall(text)),
            sum(c.isdigit() for c in text),
            len(_QUOTE_RE.findall(text)),
            text.count("?"),
            text.count("!"),
        ])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(STYLOMETRIC_FEATURES))


class StylometricFeatures(TransformerMixin, BaseEstimator):
    """sklearn transformer: a sequence of texts -> :func:`stylometric_features` (stateless)."""

    def fit(self, X, y=None):  # noqa: D102 - stateless
        return self

    def transform(self, X) -> np.ndarray:  # noqa: D102
        return stylometric_features(list(X))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:  # noqa: D102
        return np.asarray(STYLOMETRIC_FEATURES, dtype=object)


def make_baseline(name: str, *, C: float = 1.0) -> Pipeline:
    """A fresh, unfitted pipeline for baseline ``name`` (steps ``features`` [, ``scale``], ``clf``).

    Raises ``ValueError`` for a name not in :data:`BASELINES`.
    """
    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=MAX_ITER)  # L2 by default
    if name == "word_tfidf":
        feats = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), lowercase=True,
                                sublinear_tf=True)
        return Pipeline([("features", feats), ("clf", clf)])
    if name == "char_tfidf":
        feats = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True,
                                sublinear_tf=True)
        return Pipeline([("features", feats), ("clf", clf)])
    if name == "stylometric":
        return Pipeline([("features", StylometricFeatures()), ("scale", StandardScaler()),
                         ("clf", clf)])
    raise ValueError(f"unknown text baseline {name!r}; known: {', '.join(BASELINES)}")


Folds = list[tuple[np.ndarray, np.ndarray]]


def grouped_folds(labels: Sequence | np.ndarray, groups: Sequence | np.ndarray, *,
                  n_splits: int | None = None, seed: int = 0) -> Folds:
    """``(train_idx, test_idx)`` folds in which no group is on both sides.

    ``n_splits=None``: leave-one-group-out (one fold per distinct group, in sorted group order).
    Otherwise sklearn's ``StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)``.
    Raises ``ValueError`` if lengths differ, there are fewer than 2 groups, or ``n_splits`` is
    larger than the number of groups.
    """
    y, g = np.asarray(labels), np.asarray(groups)
    if len(y) != len(g):
        raise ValueError(f"{len(y)} labels but {len(g)} groups")
    n_groups = len(np.unique(g))
    if n_groups < 2:
        raise ValueError("grouped cross-validation needs at least 2 distinct groups")
    dummy = np.zeros(len(y))
    if n_splits is None:
        return [(tr, te) for tr, te in LeaveOneGroupOut().split(dummy, y, g)]
    if not 2 <= n_splits <= n_groups:
        raise ValueError(f"n_splits={n_splits} must be between 2 and the {n_groups} groups")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(dummy, y, g)]


def _auroc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Binary AUROC of ``classes[1]`` or macro one-vs-rest AUROC; NaN if ``y`` has one class."""
    present = np.isin(classes, y)
    if present.sum() < 2:
        return float("nan")
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    vals = [roc_auc_score(y == c, proba[:, j]) for j, c in enumerate(classes) if present[j]]
    return float(np.mean(vals))


@dataclass(frozen=True)
class BaselineScore:
    """The result of :func:`grouped_cv_auroc`.

    ``auroc``: on the pooled out-of-fold probabilities (binary AUROC of ``classes[1]`` for two
    classes, macro one-vs-rest otherwise). ``fold_aurocs``: ``[n_folds]``, the same metric within
    each test fold (NaN where the fold holds fewer than 2 classes). ``oof_proba``: ``[n,
    n_classes]`` out-of-fold probabilities, columns in ``classes`` order (sorted labels).
    """

    baseline: str
    auroc: float
    fold_aurocs: np.ndarray
    n_folds: int
    classes: np.ndarray
    oof_proba: np.ndarray

    @property
    def fold_mean(self) -> float:
        """Mean of the finite per-fold AUROCs (NaN if none is finite)."""
        finite = self.fold_aurocs[np.isfinite(self.fold_aurocs)]
        return float(finite.mean()) if finite.size else float("nan")


def grouped_cv_auroc(
    texts: Sequence[str] | np.ndarray,
    labels: Sequence | np.ndarray,
    groups: Sequence | np.ndarray,
    baseline: str,
    *,
    n_splits: int | None = None,
    seed: int = 0,
    C: float = 1.0,
    folds: Folds | None = None,
) -> BaselineScore:
    """Cross-validated AUROC of a text-only baseline with folds grouped by ``groups``.

    ``texts``, ``labels``, ``groups``: length ``n``. ``baseline``: one of :data:`BASELINES`.
    Folds come from :func:`grouped_folds` (leave-one-group-out if ``n_splits`` is None) unless
    ``folds`` is given (e.g. the probes' own folds); the pipeline is refitted on every training
    fold. The headline ``auroc`` is computed on the pooled out-of-fold probabilities (see the
    module docstring); per-fold values are in ``fold_aurocs``.

    Raises ``ValueError`` for mismatched lengths, fewer than 2 classes, an unknown baseline, or
    given ``folds`` in which a group straddles train and test.
    """
    texts = np.asarray([str(t) for t in texts], dtype=object)
    y, g = np.asarray(labels), np.asarray(groups)
    if not len(texts) == len(y) == len(g):
        raise ValueError(f"lengths differ: {len(texts)} texts, {len(y)} labels, {len(g)} groups")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("grouped_cv_auroc needs at least 2 classes")
    make_baseline(baseline)  # validate the name before any fitting
    if folds is None:
        folds = grouped_folds(y, g, n_splits=n_splits, seed=seed)
    for tr, te in folds:
        if np.intersect1d(g[tr], g[te]).size:
            raise ValueError("a group is on both sides of a fold")
    proba = np.full((len(y), len(classes)), np.nan)
    per_fold = []
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for tr, te in folds:
            if len(np.unique(y[tr])) < 2:
                raise ValueError("a training fold holds a single class")
            pipe = make_baseline(baseline, C=C).fit(texts[tr], y[tr])
            p = np.zeros((len(te), len(classes)))
            cols = np.searchsorted(classes, pipe.classes_)
            p[:, cols] = pipe.predict_proba(texts[te])
            proba[te] = p
            per_fold.append(_auroc(y[te], p, classes))
    scored = ~np.isnan(proba).any(axis=1)
    return BaselineScore(
        baseline=baseline,
        auroc=_auroc(y[scored], proba[scored], classes),
        fold_aurocs=np.asarray(per_fold, dtype=float),
        n_folds=len(folds),
        classes=classes,
        oof_proba=proba,
    )


def top_features(texts: Sequence[str], labels: Sequence, baseline: str = "word_tfidf", *,
                 k: int = 15, C: float = 1.0) -> pd.DataFrame:
    """The ``k`` features that most favour each class in ``baseline`` fitted on *all* the data.

    A diagnostic for finding leaked words (not a held-out score). Returns a frame with columns
    ``label, rank, feature, weight`` (``rank`` 1 = strongest), where ``weight`` is the logistic
    regression coefficient of the feature toward that class (for two classes, the second class's
    coefficients and their negation for the first). For ``stylometric`` the weights are on
    standardised features. Raises ``ValueError`` for an unknown baseline or fewer than 2 classes.
    """
    y = np.asarray(labels)
    if len(np.unique(y)) < 2:
        raise ValueError("top_features needs at least 2 classes")
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_baseline(baseline, C=C).fit(np.asarray(list(texts), dtype=object), y)
    names = np.asarray(pipe.named_steps["features"].get_feature_names_out())
    clf = pipe.named_steps["clf"]
    coef = clf.coef_
    if coef.shape[0] == 1:  # binary: one row, for classes_[1]
        coef = np.vstack([-coef[0], coef[0]])
    rows = []
    for c, w in zip(clf.classes_, coef, strict=True):
        order = np.argsort(-w, kind="stable")[:k]
        rows += [{"label": c, "rank": r + 1, "feature": str(names[j]), "weight": float(w[j])}
                 for r, j in enumerate(order)]
    return pd.DataFrame(rows, columns=["label", "rank", "feature", "weight"])
