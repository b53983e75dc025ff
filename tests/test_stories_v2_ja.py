"""Japanese stories v2 and neutral stories (issue #15, item 4).

The v2 stories convey their emotion without naming it: no term of
validation/story_terms_ja.json (emotion names, their inflection stems and compounds, generic
feeling words, worn expressive cliches) may occur in them, nor in the neutral stories. The
matcher is a plain substring search, so the same check on the v1 stories (which do name their
emotion) shows that it finds terms where there are some.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STIMULI = ROOT / "stimuli"
V1 = STIMULI / "stories_ja.jsonl"
V2 = STIMULI / "stories_v2_ja.jsonl"
NEUTRAL = STIMULI / "neutral_stories_ja.jsonl"
TERMS = ROOT / "validation" / "story_terms_ja.json"

TOPICS = ("family", "friendship", "health", "hobby", "home", "school", "travel", "work")
V2_FIELDS = ("id", "text", "label", "set", "language", "topic", "valence", "arousal")
NEUTRAL_FIELDS = ("id", "text", "label", "set", "language", "topic")
# Per-story length bounds (characters), around the v1 range of 260-305.
MIN_CHARS, MAX_CHARS = 230, 340


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        pytest.skip(f"{path.name} not written yet")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                obj = json.loads(line)
                assert isinstance(obj, dict), f"{path.name}:{lineno} is not a JSON object"
                rows.append(obj)
    return rows


@pytest.fixture(scope="module")
def v1() -> list[dict]:
    return _read(V1)


@pytest.fixture(scope="module")
def v2() -> list[dict]:
    return _read(V2)


@pytest.fixture(scope="module")
def neutral() -> list[dict]:
    return _read(NEUTRAL)


@pytest.fixture(scope="module")
def term_data() -> dict:
    return json.loads(TERMS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def terms(term_data) -> list[str]:
    out = [t for ts in term_data["terms"].values() for t in ts]
    return out + term_data["generic"] + term_data["stock_expressions"]


def _hits(text: str, terms: list[str]) -> list[str]:
    return [t for t in terms if t in text]


# ----------------------------------------------------------------------------- term list


def test_term_list_is_data_with_sources(term_data, v1):
    assert len(term_data["sources"]) >= 3
    assert any("感情表現辞典" in s for s in term_data["sources"])
    assert any("compiled for llmct" in s.lower() for s in term_data["sources"])
    labels = {r["label"] for r in v1}
    assert set(term_data["terms"]) == labels, "one term list per v1 label"
    for label, ts in term_data["terms"].items():
        assert len(ts) >= 8, f"{label}: only {len(ts)} terms"
        assert all(isinstance(t, str) and t.strip() == t and t for t in ts), label
    for key in ("generic", "stock_expressions"):
        assert len(term_data[key]) >= 20, key


def test_term_list_has_no_duplicates(terms):
    dup = [t for t, n in Counter(terms).items() if n > 1]
    assert not dup, f"duplicate terms: {dup}"


def test_term_list_covers_the_core_words(terms):
    # The words the brief names, as they inflect in running text.
    core = ["嬉しかった", "悲しみ", "怖くて", "恐ろしい", "寂しさ", "喜び", "幸せ", "幸福", "感謝",
            "誇り", "不安", "恐怖", "怒り", "嫉妬", "後悔", "罪悪感", "恥ずかしい", "安心した",
            "興奮", "驚き", "嫌悪", "退屈", "孤独", "懐かしい", "希望", "絶望", "怒った",
            "悲しんだ", "喜んだ", "胸がいっぱいだった", "心が温かくなった", "疲れた"]
    missed = [w for w in core if not _hits(w, terms)]
    assert not missed, f"core emotion words the list does not catch: {missed}"


def test_matcher_has_no_false_hits_on_ordinary_words(terms):
    # Ordinary words that share characters with emotion stems (see the file's 'matching').
    ordinary = ["音楽", "恐らく", "大切な", "焦げ", "熱中症", "休暇", "愛知県", "消耗品",
                "昔むかし", "向かって", "楽器", "運動場", "だるま", "ねじれ", "汗をかいた",
                "逆上がり", "赤くなったトマト"]
    false = {w: _hits(w, terms) for w in ordinary if _hits(w, terms)}
    assert not false, f"ordinary words matched: {false}"


def test_v1_stories_do_contain_terms(v1, term_data, terms):
    """The v1 stories name their emotion: the check must find it (sensitivity)."""
    with_any = [r["id"] for r in v1 if _hits(r["text"], terms)]
    with_own = [r["id"] for r in v1 if _hits(r["text"], term_data["terms"][r["label"]])]
    print(f"\nv1 ja stories with any term: {len(with_any)}/{len(v1)}; "
          f"with a term of their own label: {len(with_own)}/{len(v1)}")
    assert len(with_any) >= 0.9 * len(v1)
    assert len(with_own) >= 0.8 * len(v1)


# ----------------------------------------------------------------------------- stories v2


def test_v2_fields_and_ids(v2):
    for r in v2:
        missing = [k for k in V2_FIELDS if k not in r]
        assert not missing, f"{r.get('id')}: missing {missing}"
        assert set(r) == set(V2_FIELDS), f"{r['id']}: unexpected fields {set(r) - set(V2_FIELDS)}"
        assert r["set"] == "stories_v2" and r["language"] == "ja", r["id"]
        assert r["id"] == f"S2-ja-{r['label']}-{r['topic']}", r["id"]
        assert isinstance(r["text"], str) and r["text"].strip() == r["text"] and r["text"]
    ids = [r["id"] for r in v2]
    dup = [i for i, n in Counter(ids).items() if n > 1]
    assert not dup, f"duplicate ids: {dup}"


def test_v2_one_story_per_label_and_topic(v1, v2):
    labels = sorted({r["label"] for r in v1})
    assert len(labels) == 20
    cells = Counter((r["label"], r["topic"]) for r in v2)
    want = {(lab, t) for lab in labels for t in TOPICS}
    assert set(cells) == want, (
        f"missing: {sorted(want - set(cells))[:10]}; extra: {sorted(set(cells) - want)[:10]}"
    )
    assert all(n == 1 for n in cells.values())
    assert len(v2) == 160


def test_v2_affect_values_copy_v1(v1, v2):
    v1_affect = {r["label"]: (r["valence"], r["arousal"]) for r in v1}
    for r in v2:
        assert (r["valence"], r["arousal"]) == v1_affect[r["label"]], r["id"]


def test_v2_names_no_emotion(v2, terms):
    offenders = {r["id"]: _hits(r["text"], terms) for r in v2 if _hits(r["text"], terms)}
    listing = "\n".join(f"  {i}: {h}" for i, h in offenders.items())
    assert not offenders, f"{len(offenders)} v2 stories contain listed terms:\n{listing}"


def test_v2_length_matches_v1(v1, v2):
    lens = {r["id"]: len(r["text"]) for r in v2}
    bad = {i: n for i, n in lens.items() if not MIN_CHARS <= n <= MAX_CHARS}
    assert not bad, f"stories outside {MIN_CHARS}-{MAX_CHARS} characters: {bad}"
    m1 = statistics.mean(len(r["text"]) for r in v1)
    m2 = statistics.mean(lens.values())
    assert abs(m2 - m1) <= 0.10 * m1, f"v2 mean {m2:.1f} chars vs v1 {m1:.1f}"


def test_v2_does_not_reuse_v1_text(v1, v2):
    # No sentence of a v1 story appears in a v2 story.
    v1_sentences = {s for r in v1 for s in r["text"].split("。") if len(s) >= 12}
    reused = [(r["id"], s) for r in v2 for s in r["text"].split("。") if s in v1_sentences]
    assert not reused, f"v1 sentences reused: {reused[:5]}"


def test_v2_openings_differ_from_v1(v1, v2):
    # The same (label, topic) cell tells a different story: the v1 opening is not reused.
    first = {(r["label"], r["topic"]): r["text"][:20] for r in v1}
    same = [r["id"] for r in v2 if r["text"][:20] == first[(r["label"], r["topic"])]]
    assert not same, same


# ----------------------------------------------------------------------------- neutral


def test_neutral_fields_counts_and_ids(neutral):
    for r in neutral:
        assert set(r) == set(NEUTRAL_FIELDS), f"{r.get('id')}: fields {sorted(r)}"
        assert r["label"] == "neutral" and r["set"] == "neutral_stories", r["id"]
        assert r["language"] == "ja" and r["topic"] in TOPICS, r["id"]
        assert r["id"].startswith(f"NS-ja-{r['topic']}-"), r["id"]
    ids = [r["id"] for r in neutral]
    assert len(ids) == len(set(ids)), "duplicate neutral ids"
    assert len(neutral) >= 32
    per_topic = Counter(r["topic"] for r in neutral)
    assert all(per_topic[t] >= 4 for t in TOPICS), per_topic


def test_neutral_names_no_emotion(neutral, terms):
    offenders = {r["id"]: _hits(r["text"], terms) for r in neutral if _hits(r["text"], terms)}
    assert not offenders, f"neutral stories contain listed terms: {offenders}"


def test_neutral_length_matches_stories(neutral, v2):
    lens = [len(r["text"]) for r in neutral]
    bad = [(r["id"], len(r["text"])) for r in neutral
           if not MIN_CHARS <= len(r["text"]) <= MAX_CHARS]
    assert not bad, bad
    ms = statistics.mean(len(r["text"]) for r in v2)
    mn = statistics.mean(lens)
    assert abs(mn - ms) <= 0.10 * ms, f"neutral mean {mn:.1f} chars vs stories v2 {ms:.1f}"


def test_neutral_are_narratives_not_dialogues(neutral):
    # Same genre as the stories: prose, not A:/B: turns.
    dialog = [r["id"] for r in neutral if "\n" in r["text"] or r["text"].startswith(("A:", "A:"))]
    assert not dialog, dialog
