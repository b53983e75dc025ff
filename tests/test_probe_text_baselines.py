"""Probes grouped by frame and scored beside every text-only baseline on the same folds."""

from __future__ import annotations

import numpy as np
import pytest

from llmct.analysis import probes


def _frames(n_frames: int = 10, labels=("a", "b", "c"), d: int = 6, seed: int = 0):
    """Texts whose label is carried only by the activations (every text shares its frame's words),
    activations with a label signal plus a frame offset."""
    rng = np.random.default_rng(seed)
    y, g, texts, X = [], [], [], []
    centres = rng.normal(size=(len(labels), d)) * 2
    for f in range(n_frames):
        offset = rng.normal(size=d) * 3
        for k, lab in enumerate(labels):
            y.append(lab)
            g.append(f"F{f}")
            texts.append(f"frame{f} walks to the shop and sees item{f} near door{f}")
            X.append(centres[k] + offset + 0.3 * rng.normal(size=d))
    X = np.array(X, dtype=np.float32)
    return {"hidden_out": X[:, None, :].repeat(2, axis=1)}, np.array(y), np.array(g), texts


def test_grouped_probe_suite_scores_every_text_baseline_on_its_folds():
    acts, y, g, texts = _frames()
    res = probes.probe_suite(acts, y, ["s"] * len(y), texts, layers=[0, 1], n_layers=2,
                             transfers=None, groups=g)
    controls = set(res.control)
    assert {"none", "shuffled", "text_tfidf", "text_word_tfidf", "text_char_tfidf",
            "text_stylometric"} <= controls
    text = res[res.control.str.startswith("text_")].set_index("control").auroc
    # the texts carry the frame, never the label: every text baseline is near chance
    assert (text < 0.75).all(), text.to_dict()
    summary = probes.summarise(res, n_layers=2)
    row = summary.iloc[0]
    best_text = max(row[f"{c}_auroc"] for c in ("text_tfidf", "text_word_tfidf",
                                                "text_char_tfidf", "text_stylometric"))
    assert row.probe_minus_best_text == pytest.approx(row.max_auroc - best_text)
    assert row.max_auroc > 0.9  # the activations carry the label


def test_no_group_column_keeps_the_ungrouped_folds():
    acts, y, _, texts = _frames(seed=1)
    plain = probes.probe_suite(acts, y, ["s"] * len(y), texts, layers=[0, 1], n_layers=2,
                               transfers=None)
    nones = probes.probe_suite(acts, y, ["s"] * len(y), texts, layers=[0, 1], n_layers=2,
                               transfers=None, groups=[None] * len(y))
    assert plain.auroc.tolist() == pytest.approx(nones.auroc.tolist(), nan_ok=True)


def test_grouped_folds_never_split_a_frame():
    _, y, g, _ = _frames()
    for tr, te in probes.make_folds(y, g):
        assert not set(g[tr]) & set(g[te])
