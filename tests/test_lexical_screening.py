"""Lexical screening: the keyword-free sets name no emotion, and the term matcher is sound."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from stimuli.loader import SET_FILES, STIMULI_DIR, Stimulus, load_set
from validation import lexical_screening as ls
from validation.lexical_screening import compare, explicit_terms, load_terms, screen

# ----------------------------------------------------------------------------- shipped sets


def _need(*names: str) -> None:
    missing = [f for n in names for f in SET_FILES[n] if not (STIMULI_DIR / f).is_file()]
    if missing:
        pytest.skip(f"stimulus file(s) not written yet: {', '.join(missing)}")


@pytest.fixture(scope="module")
def screened() -> pd.DataFrame:
    names = ls.available_sets()
    if not names:
        pytest.skip("no stimulus set written yet")
    return screen([s for n in names for s in load_set(n)])


@pytest.fixture(scope="module")
def comparisons(screened) -> pd.DataFrame:
    return compare(screened)


def _row(comp: pd.DataFrame, a: str, b: str, metric: str) -> pd.Series:
    sel = comp[(comp.set1 == a) & (comp.set2 == b) & (comp.metric == metric)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_set_b_and_controls_name_no_emotion(screened):
    _need("set_b", "set_b_control")
    keyword_free = screened[screened["set"].isin(["set_b", "set_b_control"])]
    offenders = keyword_free[keyword_free.n_explicit > 0]
    listing = "\n".join(f"  {r.id}: {r.explicit_terms}" for r in offenders.itertuples())
    assert offenders.empty, (
        f"{len(offenders)} keyword-free items contain explicit emotion terms:\n{listing}"
    )


def test_controls_have_lower_affect_density_than_set_b(screened, comparisons):
    _need("set_b", "set_b_control")
    r = _row(comparisons, "set_b", "set_b_control", "nrc_density")
    assert r.median2 < r.median1, (
        f"NRC density median: controls {r.median2:.3f} not below set_b {r.median1:.3f}"
    )
    assert r.p < 0.01, f"set_b vs controls NRC density: Mann-Whitney p = {r.p:.3g} (>= 0.01)"


def test_set_a_has_more_explicit_terms_than_set_b(screened, comparisons):
    _need("set_a", "set_b")
    r = _row(comparisons, "set_a", "set_b", "n_explicit")
    assert r.mean1 > r.mean2 and r.p < 0.01, (
        f"explicit terms per item: set_a {r.mean1:.2f} vs set_b {r.mean2:.2f} (p = {r.p:.3g})"
    )


def test_outputs_written(tmp_path):
    if not ls.available_sets():
        pytest.skip("no stimulus set written yet")
    assert ls.main(["--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "lexical_screening.csv")
    assert list(df.columns) == [
        "id", "set", "label", "n_words", "n_explicit", "explicit_terms", "nrc_density",
        "vader_compound",
    ]  # fmt: skip
    assert (tmp_path / "lexical_comparisons.csv").is_file()
    assert (tmp_path / "summary.md").read_text().startswith("# Lexical screening")


# ----------------------------------------------------------------------------- term matcher


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She was terrified.", ["terrified"]),
        ("Terrifying, ANXIOUSLY, heartbreaking", ["terrifying", "anxiously", "heartbreaking"]),
        ("His anxiousness and her resentfulness", ["anxiousness", "resentfulness"]),
        ("Fear's grip; the dog’s joy", ["fear", "joy"]),
        ("He felt it; feelings ran high; a moody day", ["felt", "feelings", "moody"]),
        ("mad, madly, maddening", ["mad", "madly", "maddening"]),
        ("He was scared and she was scary.", ["scared", "scary"]),
        ("disgusted, revolted, appalled", ["disgusted", "revolted", "appalled"]),
    ],
)
def test_explicit_terms_catches_derived_forms(text, expected):
    assert explicit_terms(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "He made a scarf and a scarecrow; the scar healed.",
        "a joystick, dreadlocks, the Amazon, the environment, an admiral, a glade",
        "What happened? Please sit. The content of the box; a gladiator; a terrific meal.",
        "the alarm clock; optimise the pipeline; a tongue depressor; abdominal tenderness",
        "she filed a grievance; the revolt failed; a comfortable chair; excitation energy",
        "The terrorist cell; an impatiens in a pot; she was resentenced.",
        "The nurse checked his pulse, blood pressure and temperature.",
    ],
)
def test_explicit_terms_no_false_matches(text):
    assert explicit_terms(text) == []


def test_allow_list_is_respected(tmp_path):
    doc = {
        "sources": ["test"],
        "terms": {"general": ["cross", "mood"]},
        "stems": ["frustrat"],
        "allow": {"cross": "the street crossing sense", "frustrating": "test entry"},
    }
    path = tmp_path / "terms.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    terms = load_terms(path)
    assert explicit_terms("Cross the road in a mood", terms) == ["mood"]
    assert explicit_terms("frustrated, frustrating", terms) == ["frustrated"]


def test_shipped_term_list_is_well_formed():
    doc = json.loads(ls.TERMS_PATH.read_text(encoding="utf-8"))
    assert doc["sources"] and set(doc) == {"sources", "terms", "stems", "allow"}
    assert {"anger", "fear", "sadness", "joy", "disgust", "surprise", "trust", "anticipation",
            "general"} <= set(doc["terms"])  # fmt: skip
    for word, why in doc["allow"].items():
        assert why.strip(), f"allow-list entry {word!r} has no justification"
        assert explicit_terms(word) == []
    terms = load_terms()
    for fam, words in doc["terms"].items():
        for w in words:
            assert w in doc["allow"] or terms.matches(w), (fam, w)
    # every emotion label itself is caught
    for label in ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise",
                  "trust", "emotion", "feeling", "mood"):  # fmt: skip
        assert terms.matches(label)


# ----------------------------------------------------------------------------- screen / compare


def _stim(i: str, text: str, set_: str, label: str = "neutral") -> Stimulus:
    return Stimulus(id=i, text=text, label=label, set=set_)


def test_screen_columns_and_values():
    df = screen(
        [
            _stim("a1", "She was furious and afraid.", "set_a", "anger"),
            _stim("c1", "The funeral was held in the rain.", "set_b_control"),
            _stim("j1", "日本語だけ", "stories"),
        ]
    )
    assert list(df.columns) == [
        "id", "set", "label", "n_words", "n_explicit", "explicit_terms", "nrc_density",
        "vader_compound",
    ]  # fmt: skip
    a1, c1, j1 = (df.iloc[i] for i in range(3))
    assert (a1.n_words, a1.n_explicit, a1.explicit_terms) == (5, 2, "furious;afraid")
    assert a1.nrc_density == pytest.approx(2 / 5)  # furious, afraid
    assert a1.vader_compound < 0
    assert c1.n_explicit == 0 and c1.nrc_density == pytest.approx(1 / 7)  # funeral
    assert j1.n_words == 0 and pd.isna(j1.nrc_density)


def test_nrc_plural_fallback():
    assert ls.nrc_emotions("funerals") == ls.nrc_emotions("funeral") != frozenset()
    assert ls.nrc_emotions("the") == frozenset()
    assert all(e in ls.EMOTIONS for e in ls.nrc_emotions("abandoned"))


def test_compare_only_present_sets():
    rows = [_stim(f"b{i}", "furious angry rage " * (i + 1), "set_b") for i in range(6)]
    rows += [
        _stim(f"c{i}", "the table and the chair " * (i + 1), "set_b_control") for i in range(6)
    ]
    comp = compare(screen(rows))
    assert set(zip(comp.set1, comp.set2, strict=True)) == {("set_b", "set_b_control")}
    assert set(comp.metric) == {"nrc_density", "n_explicit", "n_words"}
    r = _row(comp, "set_b", "set_b_control", "n_explicit")
    assert r.mean1 > r.mean2 and r.rank_biserial > 0.5 and r.p < 0.05
