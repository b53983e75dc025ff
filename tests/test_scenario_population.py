"""The population of conversations for the CT scan (issue #16): stimuli/scenarios/population/.

Checked with the project's scenario loader only (no model): every file validates, shares one
set of references and one baseline, has the kind its name says (arc_ / assistant_ / control_),
and its description's bookkeeping (explicit / implicit turns, assistant-expressed emotions)
agrees with its messages.
"""

import re
from pathlib import Path

import pytest

from llmct.scan.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
POP = ROOT / "stimuli" / "scenarios" / "population"
FILES = sorted(POP.glob("*.yaml"))
KINDS = ("arc", "assistant", "control")
LABELS = {"joy", "sadness", "anger", "fear", "surprise", "disgust", "trust", "anticipation"}
# ~700 tokens at ~4 characters a token: a scan of the whole population stays short
MAX_CONTENT_CHARS = 2800


def _kind(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def _indices(text: str | None) -> set[int]:
    return set() if text is None else {int(i) for i in re.findall(r"\[(\d+)\]", text)}


def _field(description: str, label: str) -> str | None:
    """The index list after ``label ...:`` in a description (``none`` -> empty), else None."""
    m = re.search(label + r"[^:.]*:\s*(none|\[\d+\](?:,\s*\[\d+\])*)", description)
    return None if m is None else m.group(1)


def _assistant_emotions(sc) -> dict[int, str]:
    """Assistant-expressed emotions: declared in the description as ``[i]=label`` and tagged
    (``emotion``) on those assistant turns; the two must agree exactly."""
    pattern = r"Assistant-expressed emotion[^:]*:\s*((?:\[\d+\]=[a-z]+(?:,\s*)?)+)"
    m = re.search(pattern, sc.description or "")
    pairs = [] if m is None else re.findall(r"\[(\d+)\]=([a-z]+)", m.group(1))
    declared = {int(i): lab for i, lab in pairs}
    tagged = {i: msg.emotion for i, msg in enumerate(sc.messages)
              if msg.role == "assistant" and msg.emotion}
    assert tagged == declared, f"{sc.name}: assistant tags {tagged} != description {declared}"
    return tagged


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _ngrams(words: list[str], n: int) -> set[tuple]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@pytest.fixture(scope="module")
def population():
    return {p.stem: load_scenario(p) for p in FILES}


def test_population_size_and_kinds():
    assert len(FILES) >= 14
    kinds = [_kind(p) for p in FILES]
    assert set(kinds) <= set(KINDS), f"file names must start with one of {KINDS}: {kinds}"
    assert kinds.count("arc") >= 8 and kinds.count("assistant") >= 3 and kinds.count("control") >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_file_is_a_complete_written_conversation(path):
    sc = load_scenario(path)  # raises ScenarioError naming file, line and key if invalid
    assert sc.name == path.stem
    assert 8 <= len(sc.messages) <= 20
    assert sc.messages[0].role == "system" and sc.system_prompt == "You are a helpful assistant"
    roles = [m.role for m in sc.messages[1:]]
    expected = [("user", "assistant")[i % 2] for i in range(len(roles))]
    assert roles == expected, "user and assistant turns must alternate"
    # every turn is written out: a scan over the population generates nothing
    assert all(m.content and m.content.strip() for m in sc.messages)
    assert sum(len(m.content) for m in sc.messages) <= MAX_CONTENT_CHARS
    assert sc.model.id == "default" and sc.model.dtype == "auto" and sc.model.device == "auto"
    assert sc.capture.position == "message_end" and sc.capture.layers == "all"
    assert sc.description and sc.description.startswith(f"Kind: {_kind(path)}.")


def test_names_are_unique_and_do_not_clash_with_other_scenarios(population):
    others = {load_scenario(p).name for p in (ROOT / "stimuli" / "scenarios").glob("*.yaml")}
    names = [sc.name for sc in population.values()]
    assert len(names) == len(set(names))
    assert not set(names) & others


def test_one_shared_set_of_references_and_baseline(population):
    scs = list(population.values())
    first = scs[0]
    assert set(first.references) == LABELS
    for sc in scs[1:]:
        assert sc.references == first.references, sc.name
        assert sc.baseline == first.baseline, sc.name
    texts = [r.text for r in first.references.values()]
    assert len(set(texts)) == len(texts)
    # matched in length: every reference within 20-23 words
    assert all(20 <= len(t.split()) <= 23 for t in texts), [len(t.split()) for t in texts]
    refs = first.references.values()
    assert all(r.family and r.valence is not None and r.arousal is not None for r in refs)
    assert len(first.baseline) >= 6 and not set(first.baseline) & set(texts)


def test_every_tag_matches_a_reference(population):
    for sc in population.values():
        for i, m in enumerate(sc.messages):
            if m.emotion is not None:
                assert m.emotion in sc.references, f"{sc.name} messages[{i}]: {m.emotion!r}"
        for i, lab in _assistant_emotions(sc).items():
            assert lab in sc.references, f"{sc.name} messages[{i}]: {lab!r}"


def test_controls_carry_no_emotion(population):
    controls = [sc for name, sc in population.items() if name.startswith("control_")]
    assert len(controls) >= 3
    for sc in controls:
        assert not any(m.emotion for m in sc.messages), sc.name
        assert not _assistant_emotions(sc), sc.name
        assert "Explicit" not in sc.description


def test_controls_are_matched_in_length_and_turns(population):
    emotional = [sc for name, sc in population.items() if not name.startswith("control_")]
    controls = [sc for name, sc in population.items() if name.startswith("control_")]
    n_lo, n_hi = min(len(s.messages) for s in emotional), max(len(s.messages) for s in emotional)

    def chars(s):
        return sum(len(m.content) for m in s.messages)

    c_lo, c_hi = min(map(chars, emotional)), max(map(chars, emotional))
    for sc in controls:
        assert n_lo <= len(sc.messages) <= n_hi, sc.name
        assert c_lo <= chars(sc) <= c_hi, sc.name


def test_assistant_expressed_emotion(population):
    expressive = {name: sc for name, sc in population.items() if name.startswith("assistant_")}
    assert len(expressive) >= 3
    for name, sc in expressive.items():
        emotions = _assistant_emotions(sc)
        assert len(emotions) >= 3, name
        assert all(sc.messages[i].role == "assistant" for i in emotions), name
        # the design point: at least one assistant emotion differs from the user's turn before it
        assert any(sc.messages[i - 1].emotion != lab for i, lab in emotions.items()), name
    # only the assistant_ files declare assistant emotions
    for name, sc in population.items():
        if not name.startswith("assistant_"):
            assert not _assistant_emotions(sc), name


def test_arcs_change_emotion_and_tag_every_user_turn(population):
    arcs = {name: sc for name, sc in population.items() if name.startswith("arc_")}
    assert len(arcs) >= 8
    for name, sc in arcs.items():
        tags = [m.emotion for m in sc.messages if m.role == "user"]
        assert all(tags), f"{name}: every user turn of an arc is tagged"
        assert len(set(tags)) >= 4, name
        repeats = [a for a, b in zip(tags, tags[1:], strict=False) if a == b]
        assert not repeats, f"{name}: consecutive user turns repeat {repeats}"


def test_descriptions_record_explicit_and_implicit_turns(population):
    n_explicit = n_implicit = 0
    for name, sc in population.items():
        if name.startswith("control_"):
            continue
        tagged = {i for i, m in enumerate(sc.messages) if m.role == "user" and m.emotion}
        untagged = {i for i, m in enumerate(sc.messages) if m.role == "user" and not m.emotion}
        explicit = _field(sc.description, "Explicit")
        implicit = _field(sc.description, "Implicit")
        assert explicit is not None and implicit is not None, f"{name}: no Explicit/Implicit lists"
        explicit, implicit = _indices(explicit), _indices(implicit)
        assert not explicit & implicit, name
        listed = explicit | implicit
        assert listed == tagged, f"{name}: listed {sorted(listed)} != tagged {sorted(tagged)}"
        assert _indices(_field(sc.description, "Untagged user turns")) == untagged, name
        n_explicit += len(explicit)
        n_implicit += len(implicit)
    # a mix, mostly implicit: emotions carried by the situation more than named
    assert 0 < n_explicit < n_implicit


def test_labels_are_spread_over_the_population(population):
    convs = {lab: set() for lab in LABELS}
    last = set()
    for name, sc in population.items():
        tags = [m.emotion for m in sc.messages if m.role == "user" and m.emotion]
        for t in tags:
            convs[t].add(name)
        if tags:
            last.add(tags[-1])
    assert all(len(c) >= 4 for c in convs.values()), {k: len(c) for k, c in convs.items()}
    assert len(last) >= 4, f"conversations should not all end on the same emotion: {last}"


def test_no_turn_copies_a_reference(population):
    """Turns must carry their emotion in their own words: no 4-word run of a reference text."""
    sc = next(iter(population.values()))
    ref_grams = {lab: _ngrams(_words(r.text), 4) for lab, r in sc.references.items()}
    for name, s in population.items():
        for i, m in enumerate(s.messages):
            grams = _ngrams(_words(m.content), 4)
            for lab, rg in ref_grams.items():
                assert not grams & rg, f"{name} messages[{i}] repeats {lab!r}: {grams & rg}"


def test_readme_lists_every_file():
    readme = (POP / "README.md").read_text(encoding="utf-8")
    for p in FILES:
        assert f"`{p.name}`" in readme, p.name
