"""The CT-scan findings on synthetic metric arrays whose answer is known (issue #16, item 3):
the paired user-assistant gap and its role control, fading memory decided by the centred
margin, `not testable here` at template_end, the verdict vocabulary, units, and pooling over
conversations."""

from __future__ import annotations

import numpy as np
import pytest

from llmct.scan.findings import (
    EXPLAINED,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    SPECS,
    VERDICTS,
    all_findings,
    pool_findings,
)

SOURCES = ["hidden_in", "hidden_out", "attn_out", "mlp_out"]
LABELS = ["joy", "sadness", "anger", "fear"]
L = 6


def _base(S: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cos = 0.5 + 0.01 * rng.standard_normal((S, len(LABELS), len(SOURCES), L))
    return {"cosine": cos, "cosine_centered": cos - 0.5, "mae": cos * 0, "jaccard": cos * 0}


def _conv(n_pairs: int = 8):
    roles = ["system"] + ["user", "assistant"] * n_pairs
    tags = [None] + [t for i in range(n_pairs) for t in (LABELS[i % len(LABELS)], None)]
    return roles, tags


def _by_id(findings):
    return {f["id"]: f for f in findings}


def _with_role_shift(m, roles, user_shift, asst_shift):
    """Add ``user_shift`` to user snapshots and ``asst_shift`` to assistant snapshots."""
    out = {k: v.copy() for k, v in m.items()}
    r = np.asarray(roles)
    out["cosine"][r == "user"] += user_shift
    out["cosine"][r == "assistant"] += asst_shift
    return out


def test_gap_is_paired_and_survives_both_renderings():
    roles, tags = _conv()
    m = _with_role_shift(_base(len(roles)), roles, 0.05, 0.0)
    m_a = _with_role_shift(_base(len(roles), seed=1), roles, 0.04, 0.0)
    f = _by_id(all_findings(m, SOURCES, LABELS, roles, tags, m_assistant=m_a))["user_assistant_gap"]
    # paired by hand: each user turn minus the assistant turn that answers it
    res = m["cosine"][:, :, :2].mean(axis=(1, 2, 3))
    u = np.array([i for i in range(len(roles) - 1) if roles[i] == "user"])
    assert f["value"] == pytest.approx((res[u] - res[u + 1]).mean(), abs=1e-4)
    assert f["verdict"] == REPRODUCED and f["n_units"] == 8
    assert f["ci_unit"] == "user-assistant pairs (one conversation)"
    assert f["ci_low"] > 0


def test_gap_explained_by_the_rendering_when_it_flips_with_assistant_references():
    roles, tags = _conv()
    m = _with_role_shift(_base(len(roles)), roles, 0.05, 0.0)
    m_a = _with_role_shift(_base(len(roles), seed=1), roles, 0.0, 0.05)  # role match flips it
    f = _by_id(all_findings(m, SOURCES, LABELS, roles, tags, m_assistant=m_a))["user_assistant_gap"]
    assert f["verdict"] == EXPLAINED
    assert "assistant messages" in f["control"] and "explains the gap" in f["control"]
    assert "residual reverses" in f["control"]
    assert f["quantities"]["res_asstref"]["estimate"] < 0
    # without the assistant rendering the control cannot be run
    g = _by_id(all_findings(m, SOURCES, LABELS, roles, tags))["user_assistant_gap"]
    assert g["verdict"] == NOT_TESTABLE


def test_no_gap_is_not_reproduced():
    roles, tags = _conv()
    m = _base(len(roles))
    f = _by_id(all_findings(m, SOURCES, LABELS, roles, tags, m_assistant=_base(len(roles), 2)))
    assert f["user_assistant_gap"]["verdict"] == NOT_REPRODUCED


def _fading(m, roles, tags, raw_slope, margin_slope):
    """Matched raw cosine falls by ``raw_slope`` per message; the centred matched score's
    margin over the others changes by ``margin_slope``."""
    out = {k: v.copy() for k, v in m.items()}
    for i, (r, t) in enumerate(zip(roles, tags, strict=True)):
        if r == "user" and t in LABELS:
            j = LABELS.index(t)
            out["cosine"][i, j] += 0.2 + raw_slope * i
            out["cosine_centered"][i, j] += 0.2 + margin_slope * i
    return out


def test_fading_verdict_uses_the_centred_margin():
    roles, tags = _conv(10)
    m = _fading(_base(len(roles)), roles, tags, raw_slope=-0.01, margin_slope=+0.01)
    f = _by_id(all_findings(m, SOURCES, LABELS, roles, tags))["fading_memory"]
    assert f["verdict"] == EXPLAINED and "centred margin" in f["control"]
    assert f["value"] == pytest.approx(0.01, abs=2e-3)  # the headline is the margin slope
    assert f["quantities"]["slope_matched_raw"]["estimate"] == pytest.approx(-0.01, abs=2e-3)
    m2 = _fading(_base(len(roles)), roles, tags, raw_slope=-0.01, margin_slope=-0.01)
    assert _by_id(all_findings(m2, SOURCES, LABELS, roles, tags))["fading_memory"]["verdict"] == REPRODUCED
    m3 = _fading(_base(len(roles)), roles, tags, raw_slope=0.0, margin_slope=0.0)
    assert _by_id(all_findings(m3, SOURCES, LABELS, roles, tags))["fading_memory"]["verdict"] == NOT_REPRODUCED


def test_template_end_makes_ranking_and_fading_not_testable():
    roles, tags = _conv()
    m = _fading(_base(len(roles)), roles, tags, -0.01, -0.01)
    f = _by_id(all_findings(m, SOURCES, LABELS, roles, tags, position="template_end"))
    for fid in ("top_reference", "fading_memory"):
        assert f[fid]["verdict"] == NOT_TESTABLE
        assert "same template token" in f[fid]["reason"] and f[fid]["value"] is None
    assert f["residual_vs_branches"]["verdict"] != NOT_TESTABLE


def test_joy_bias_that_does_not_survive_centring_is_explained():
    roles, tags = _conv()
    m = _base(len(roles))
    m["cosine"][:, 0] += 0.1  # joy first on every turn, raw
    m["cosine_centered"][:, 1] += 0.1  # sadness first once centred
    f = _by_id(all_findings(m, SOURCES, LABELS, roles, tags))["top_reference"]
    assert f["value"] == 1.0 and f["verdict"] == EXPLAINED and "centring" in f["control"]


def test_every_finding_speaks_the_vocabulary_with_a_unit():
    roles, tags = _conv()
    fs = all_findings(_base(len(roles)), SOURCES, LABELS, roles, tags, m_assistant=_base(len(roles), 3))
    assert [f["id"] for f in fs] == [s.id for s in SPECS]
    for f in fs:
        assert f["verdict"] in VERDICTS
        assert f["ci_unit"].endswith("(one conversation)")
        assert (f["verdict"] == NOT_TESTABLE) == bool(f["reason"])
    # no tagged assistant turn: that control is not testable, and says why
    assert _by_id(fs)["nearest_reference_assistant"]["reason"] == "no assistant turn is tagged with a reference"


def test_pooling_takes_the_conversation_as_unit():
    roles, tags = _conv()
    per = {}
    shifts = {"a": 0.02, "b": 0.03, "c": 0.05, "d": 0.04}
    for k, (name, s) in enumerate(shifts.items()):
        m = _with_role_shift(_base(len(roles), k), roles, s, 0.0)
        m_a = _with_role_shift(_base(len(roles), 10 + k), roles, s, 0.0)
        per[name] = all_findings(m, SOURCES, LABELS, roles, tags, m_assistant=m_a)
    per["control"] = all_findings(_base(len(roles), 9), SOURCES, LABELS, roles, [None] * len(roles),
                                  m_assistant=_base(len(roles), 19))
    pooled = _by_id(pool_findings(per, n_refs=len(LABELS), n_layers=L, position="message_end",
                                  n_boot=500))
    gap = pooled["user_assistant_gap"]
    own = [_by_id(per[n])["user_assistant_gap"]["value"] for n in per]
    assert gap["value"] == pytest.approx(np.mean(own), abs=1e-4)
    assert gap["ci_unit"] == "conversations" and gap["n_units"] == 5
    assert gap["per_conversation"]["c"] == _by_id(per["c"])["user_assistant_gap"]["value"]
    assert "n = 5 conversations is small" in gap["detail"]
    near = pooled["nearest_reference"]
    assert near["n_units"] == 4 and "Left out (not measurable there): control" in near["detail"]
    assert pooled["nearest_reference_assistant"]["verdict"] == NOT_TESTABLE
    for f in pooled.values():
        assert f["verdict"] in VERDICTS
    # with fewer than two conversations there is nothing to pool
    one = pool_findings({"a": per["a"]}, n_refs=4, n_layers=L, position="message_end")
    assert all(f["verdict"] == NOT_TESTABLE for f in one)


def test_gap_carried_by_the_last_token_is_explained_by_it():
    roles, tags = _conv(12)
    # assistant turns all end in punctuation; half the user turns end in a word, and only those
    # differ from their answer: the gap is the read-out token's identity, not the role
    endings = [None] + [e for i in range(12) for e in (("word", "punct")[i % 2], "punct")]
    shift = np.array([0.08 if e == "word" and r == "user" else 0.0
                      for r, e in zip(roles, endings, strict=True)])
    m, m_a = _base(len(roles)), _base(len(roles), 1)
    for arr in (m, m_a):
        arr["cosine"] += shift[:, None, None, None]
    f = _by_id(all_findings(m, SOURCES, LABELS, roles, tags, m_assistant=m_a,
                            endings=endings))["user_assistant_gap"]
    assert f["verdict"] == EXPLAINED and f["control"].startswith("last token")
    q = f["quantities"]
    assert q["user_ends_in_punct"]["estimate"] == pytest.approx(0.5)
    assert abs(q["res_userref_same_ending"]["estimate"]) < 0.02 < q["res_userref"]["estimate"]
    # the control is a message_end control: the other read-outs do not use it
    g = _by_id(all_findings(m, SOURCES, LABELS, roles, tags, m_assistant=m_a, endings=endings,
                            position="mean"))["user_assistant_gap"]
    assert g["verdict"] == REPRODUCED and "user_ends_in_punct" not in g["quantities"]


def test_ending_class():
    from llmct.scan.findings import ending_class

    assert ending_class("It is fine.") == "punct" and ending_class("really?!  ") == "punct"
    assert ending_class("fingers crossed it's one of those") == "word"
    assert ending_class('she said "no."') == "punct" and ending_class("(see above)") == "word"
    assert ending_class("   ") is None
