"""Stories v2 (English) and neutral stories: they never name an emotion (issue #15, item 4).

Checks the data files ``stimuli/stories_v2_en.jsonl`` and ``stimuli/neutral_stories_en.jsonl``
against the term list ``validation/story_terms_en.json``: counts and fields, no emotion term in
any inflection, no stock expressive behaviour, word counts matched between the two sets, no
text reused from the v1 stories; and, as proof that the list works, that it does find the v1
stories that name their own emotion.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STIMULI = ROOT / "stimuli"
V1_PATH = STIMULI / "stories_en.jsonl"
V2_PATH = STIMULI / "stories_v2_en.jsonl"
NEUTRAL_PATH = STIMULI / "neutral_stories_en.jsonl"
TERMS_PATH = ROOT / "validation" / "story_terms_en.json"

MIN_WORDS, MAX_WORDS = 150, 200
N_PER_TOPIC_NEUTRAL = 4

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")
_DASHES = str.maketrans({"-": " ", "\u2010": " ", "\u2011": " ", "\u2013": " ", "\u2014": " "})


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; hyphens split words; possessive/contraction tails dropped."""
    text = text.lower().replace("\u2019", "'").translate(_DASHES)
    out = []
    for t in _TOKEN_RE.findall(text):
        head, _, tail = t.partition("'")
        out.append(head if tail in ("s", "d", "ll") else t)
    return out


class Matcher:
    """Whole-word matcher for single terms and multi-word phrases."""

    def __init__(self, words: dict[str, str], phrases: dict[str, str]):
        self.words = words  # term -> group
        self.phrases = {tuple(tokens(p)): g for p, g in phrases.items()}

    def find(self, text: str) -> list[tuple[str, str]]:
        toks = tokens(text)
        hits = [(t, self.words[t]) for t in toks if t in self.words]
        for seq, group in self.phrases.items():
            n = len(seq)
            hits += [(" ".join(seq), group) for i in range(len(toks) - n + 1)
                     if tuple(toks[i:i + n]) == seq]
        return hits


@pytest.fixture(scope="module")
def term_doc() -> dict:
    return json.loads(TERMS_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def emotion_matcher(term_doc) -> Matcher:
    words = {w: label for label, ws in term_doc["terms"].items() for w in ws}
    words.update({w: "generic" for w in term_doc["generic"]})
    phrases = {p: label for label, ps in term_doc["phrases"].items() for p in ps}
    return Matcher(words, phrases)


@pytest.fixture(scope="module")
def stock_matcher(term_doc) -> Matcher:
    return Matcher({w: "stock" for w in term_doc["stock_expressions"]},
                   {p: "stock" for p in term_doc["stock_expression_phrases"]})


@pytest.fixture(scope="module")
def v1() -> list[dict]:
    return _read(V1_PATH)


@pytest.fixture(scope="module")
def v2() -> list[dict]:
    return _read(V2_PATH)


@pytest.fixture(scope="module")
def neutral() -> list[dict]:
    return _read(NEUTRAL_PATH)


# ------------------------------------------------------------------------------ the term list


def test_term_list_covers_every_v1_label(term_doc, v1):
    labels = {r["label"] for r in v1}
    assert set(term_doc["terms"]) == labels
    assert set(term_doc["phrases"]) <= labels
    assert term_doc["sources"] and all(s.strip() for s in term_doc["sources"])
    assert any("NRC" in s for s in term_doc["sources"])
    assert any("WordNet-Affect" in s for s in term_doc["sources"])
    for label, words in term_doc["terms"].items():
        assert label in words, f"{label}: the emotion's own name is not in its list"
        assert len(words) == len(set(words)), f"{label}: duplicate terms"
        for w in words:
            assert w == w.lower() and _TOKEN_RE.fullmatch(w), f"{label}: bad term {w!r}"
    for w in ("emotion", "feeling", "mood", "felt"):
        assert w in term_doc["generic"]


def test_matcher_is_whole_word_and_handles_inflections(emotion_matcher):
    hits = emotion_matcher.find("Her happiness was HAPPY-go-lucky; the peacefully sleeping dog.")
    assert ("happiness", "happy") in hits and ("happy", "happy") in hits
    assert ("peacefully", "serene") in hits
    assert emotion_matcher.find("He was worn-out.") == [("worn out", "tired")]
    # whole words only: no substring hits
    assert emotion_matcher.find("The madrasa in Gladstone; a boredom-free scaredy") == [("boredom", "bored")]
    assert emotion_matcher.find("a sadhu, the glade, unhappiness") == [("unhappiness", "happy")]


def test_list_finds_the_v1_stories_that_name_their_emotion(term_doc, emotion_matcher, v1):
    """Proof the list works: v1 stories often name their own emotion (issue #15 counts 40/160)."""
    naming = Counter()
    any_term = 0
    for r in v1:
        hits = emotion_matcher.find(r["text"])
        any_term += bool(hits)
        if any(group == r["label"] for _, group in hits):
            naming[r["label"]] += 1
    total = sum(naming.values())
    print(f"\nv1 stories naming their own emotion: {total}/{len(v1)}; "
          f"with any emotion term: {any_term}/{len(v1)}; by label: {dict(sorted(naming.items()))}")
    assert total >= 40
    assert naming["happy"] == 8
    assert any_term >= 120


# ------------------------------------------------------------------------------ shape of the sets


REQUIRED_V2 = ("id", "text", "label", "set", "language", "topic", "valence", "arousal")
REQUIRED_NEUTRAL = ("id", "text", "label", "set", "language", "topic")


def test_stories_v2_counts_fields_and_ids(v1, v2):
    v1_labels = {r["label"] for r in v1}
    v1_topics = {r["topic"] for r in v1}
    affect = {r["label"]: (r["valence"], r["arousal"]) for r in v1}
    assert len(v2) == len(v1_labels) * len(v1_topics) == 160
    cells = Counter((r["label"], r["topic"]) for r in v2)
    assert set(cells) == {(label, topic) for label in v1_labels for topic in v1_topics}
    assert max(cells.values()) == 1
    assert len({r["id"] for r in v2}) == len(v2)
    for r in v2:
        missing = [k for k in REQUIRED_V2 if k not in r]
        assert not missing, f"{r.get('id')}: missing {missing}"
        assert r["id"] == f"S2-en-{r['label']}-{r['topic']}"
        assert (r["set"], r["language"]) == ("stories_v2", "en")
        assert (r["valence"], r["arousal"]) == affect[r["label"]], r["id"]


def test_neutral_counts_fields_and_ids(v1, neutral):
    topics = {r["topic"] for r in v1}
    assert len(neutral) >= 32
    per_topic = Counter(r["topic"] for r in neutral)
    assert set(per_topic) == topics
    assert min(per_topic.values()) >= N_PER_TOPIC_NEUTRAL, per_topic
    assert len({r["id"] for r in neutral}) == len(neutral)
    for r in neutral:
        missing = [k for k in REQUIRED_NEUTRAL if k not in r]
        assert not missing, f"{r.get('id')}: missing {missing}"
        assert re.fullmatch(rf"NS-en-{r['topic']}-\d+", r["id"]), r["id"]
        assert (r["label"], r["set"], r["language"]) == ("neutral", "neutral_stories", "en")
        assert "valence" not in r or r["valence"] == 0


# ------------------------------------------------------------------------------ no emotion names


@pytest.mark.parametrize("which", ["v2", "neutral"])
def test_no_emotion_term_in_any_story(which, request, emotion_matcher):
    rows = request.getfixturevalue(which)
    offending = {r["id"]: sorted({t for t, _ in hits})
                 for r in rows if (hits := emotion_matcher.find(r["text"]))}
    assert not offending, f"emotion terms found: {offending}"


@pytest.mark.parametrize("which", ["v2", "neutral"])
def test_no_emotion_term_of_the_project_screening_list(which, request):
    """The stricter project-wide list (stems included) finds nothing either."""
    from validation.lexical_screening import explicit_terms

    rows = request.getfixturevalue(which)
    offending = {r["id"]: sorted(set(t)) for r in rows if (t := explicit_terms(r["text"]))}
    assert not offending, f"validation/emotion_terms.json terms found: {offending}"


@pytest.mark.parametrize("which", ["v2", "neutral"])
def test_no_stock_expressive_behaviour(which, request, stock_matcher):
    rows = request.getfixturevalue(which)
    offending = {r["id"]: sorted({t for t, _ in hits})
                 for r in rows if (hits := stock_matcher.find(r["text"]))}
    assert not offending, f"stock expressions found: {offending}"


# ------------------------------------------------------------------------------ length and reuse


def _n_words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("which", ["v2", "neutral"])
def test_word_counts_in_range(which, request):
    rows = request.getfixturevalue(which)
    bad = {r["id"]: _n_words(r["text"]) for r in rows
           if not MIN_WORDS <= _n_words(r["text"]) <= MAX_WORDS}
    assert not bad, f"word counts outside [{MIN_WORDS}, {MAX_WORDS}]: {bad}"


def test_neutral_length_matches_stories(v2, neutral):
    mean_v2 = sum(_n_words(r["text"]) for r in v2) / len(v2)
    mean_n = sum(_n_words(r["text"]) for r in neutral) / len(neutral)
    print(f"\nmean words: stories v2 {mean_v2:.1f}, neutral stories {mean_n:.1f}")
    assert abs(mean_n - mean_v2) <= 0.10 * mean_v2


def test_texts_are_unique_and_not_reused_from_v1(v1, v2, neutral):
    def grams(text: str, n: int = 8) -> set[tuple[str, ...]]:
        t = tokens(text)
        return {tuple(t[i:i + n]) for i in range(len(t) - n + 1)}

    v1_grams = set().union(*(grams(r["text"]) for r in v1))
    new = v2 + neutral
    assert len({r["text"] for r in new}) == len(new)
    reused = [r["id"] for r in new if grams(r["text"]) & v1_grams]
    assert not reused, f"8-word sequences shared with the v1 stories: {reused}"


_CALENDAR = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
             "January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December", "Christmas", "New", "Year", "Eve"}
_STARTERS = {"On", "Every", "By", "In", "At", "The", "When", "After", "Before", "For", "Since",
             "Until", "During", "This", "That", "Last", "Next", "Each", "Then", "And", "But", "Mr",
             "Mrs", "Ms", "Dr", "Señora", "Signor", "Signora", "Madame", "Monsieur", "Uncle", "Aunt"}


def _full_names(text: str) -> set[str]:
    """Capitalised word pairs that are not calendar words or sentence starters: the characters."""
    name_re = re.compile(r"\b([A-Z][a-z\u00c0-\u024f'-]+) ([A-Z][a-z\u00c0-\u024f'-]+)\b")
    return {f"{a} {b}" for a, b in name_re.findall(text)
            if a not in _STARTERS and a not in _CALENDAR and b not in _CALENDAR}


def test_no_character_name_reused_from_v1(v1, v2, neutral):
    """The characters' full names (first + family name) of v1 do not recur in v2 or neutral."""
    v1_names = set().union(*(_full_names(r["text"]) for r in v1))
    assert {"Graciela Montoya", "Tevita Fifita"} <= v1_names  # the extractor finds v1's names
    clash = {r["id"]: sorted(_full_names(r["text"]) & v1_names) for r in v2 + neutral}
    clash = {k: v for k, v in clash.items() if v}
    assert not clash, f"full names shared with v1: {clash}"
