"""Set D (appraisal frames, issue #15): structure, no emotion names, no stock expressive
behaviour, and the pre-registered lexical ceiling.

The JSONL files are read directly (one JSON object per line) so that these tests do not depend on
the loader's knowledge of the new sets.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from validation import set_d_ceiling
from validation.lexical_screening import explicit_terms, load_terms

ROOT = Path(__file__).resolve().parent.parent
SET_D = ROOT / "stimuli" / "set_d_appraisal.jsonl"
SET_D_CONFIRM = ROOT / "stimuli" / "set_d_confirmation.jsonl"
SET_D_CONFIRM_2 = ROOT / "stimuli" / "set_d_confirmation_2.jsonl"
SET_D_CONFIRM_3 = ROOT / "stimuli" / "set_d_confirmation_3.jsonl"

EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
LABELS = (*EMOTIONS, "neutral")
FIELDS = {"id", "text", "label", "set", "frame_id", "domain", "appraisal"}

#: Stock expressive behaviour that Set D must not use to convey an emotion (issue #15: "never by
#: stock expressive behaviour (no tears, fists, trembling, grins, wrinkled noses)"). Source:
#: written for llmct from the brief of issue #15 and from the behaviour cues that made Set B
#: lexically separable (slaps the counter, jabs a finger, wrinkles her nose, eyebrows shot up),
#: extended with the usual facial, vocal and bodily display words of each basic emotion (crying,
#: smiling/laughing, frowning/glaring, gasping, trembling/shaking, heart racing, screaming,
#: slamming, gagging, blushing, sighing). Matching: lower-case word tokens, exact forms.
BEHAVIOUR_TERMS = frozenset("""
tear tears tearful teary tearing cry cried cries crying sob sobs sobbed sobbing weep weeps wept
weeping whimper whimpered
fist fists clench clenched clenching knuckles gritted grit glare glared glaring glower glowered
scowl scowled scowling frown frowned frowning snarl snarled seethe stomp stomped slam slammed
slamming shout shouted shouting yell yelled yelling scream screamed screaming shriek shrieked
tremble trembled trembling trembles tremor shake shakes shaking shook shaky shiver shivered
shivering shudder shuddered quiver quivered quivering flinch flinched recoil recoiled cower
cowered froze frozen goosebumps sweat sweating sweated clammy pale paled
grin grins grinned grinning smile smiles smiled smiling beam beamed beaming laugh laughs laughed
laughing laughter giggle giggled chuckle chuckled cheer cheered cheering whoop whooped hug hugged
hugging hugs danced dancing hummed humming whistled whistling
gasp gasps gasped gasping eyebrow eyebrows jaw jaws blink blinked gape gaped gaping
wrinkle wrinkled wrinkling grimace grimaced gag gagged gagging retch retched retching nausea
nauseous nauseated queasy heave heaved
sigh sighs sighed sighing slump slumped blush blushed blushing flushed heart heartbeat pulse
""".split())

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _words(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower().replace("\u2019", "'"))


def _files() -> list[tuple[Path, str, str]]:
    """(path, set name, frame-id prefix) of every Set D file written so far."""
    out = [(SET_D, "set_d", "D-")]
    if SET_D_CONFIRM.is_file():
        out.append((SET_D_CONFIRM, "set_d_confirm", "DC-"))
    return out


def _structure_files() -> list[tuple[Path, str, str]]:
    """Every Set D file whose structure is tested: _files() plus the second and third
    confirmation sets (which the blind sheet of validation/set_d_blind.py does not include)."""
    out = _files()
    if SET_D_CONFIRM_2.is_file():
        out.append((SET_D_CONFIRM_2, "set_d_confirm_2", "DC2-"))
    if SET_D_CONFIRM_3.is_file():
        out.append((SET_D_CONFIRM_3, "set_d_confirm_3", "DC3-"))
    return out


@pytest.fixture(scope="module",
                params=["set_d", "set_d_confirm", "set_d_confirm_2", "set_d_confirm_3"])
def items(request) -> tuple[str, str, list[dict]]:
    files = {name: (path, name, prefix) for path, name, prefix in _structure_files()}
    if request.param not in files:
        pytest.skip("confirmation frames not written yet")
    path, set_name, prefix = files[request.param]
    return set_name, prefix, _read(path)


# ----------------------------------------------------------------------------- structure


def test_fields_ids_and_sets(items):
    set_name, prefix, rows = items
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate ids: {[i for i, n in Counter(ids).items() if n > 1]}"
    for r in rows:
        assert set(r) == FIELDS, f"{r.get('id')}: fields {sorted(r)}"
        assert r["set"] == set_name
        assert r["label"] in LABELS
        assert r["frame_id"].startswith(prefix)
        assert r["id"] == f"{r['frame_id']}-{r['label']}"
        assert r["domain"].strip() and r["appraisal"].strip() and "\n" not in r["appraisal"]


def test_every_frame_has_the_nine_labels_once(items):
    set_name, _, rows = items
    frames: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        frames[r["frame_id"]].append(r["label"])
    expected = {"set_d": 16, "set_d_confirm": 4, "set_d_confirm_2": 4,
                "set_d_confirm_3": 4}[set_name]
    assert len(frames) == expected
    for fid, labels in frames.items():
        assert sorted(labels) == sorted(LABELS), f"{fid}: labels {sorted(labels)}"


def test_domains_vary_across_frames(items):
    _, _, rows = items
    domains = {r["frame_id"]: r["domain"] for r in rows}
    assert len(set(domains.values())) == len(domains), "two frames share a domain"


def test_word_counts_80_130_and_within_10_percent_in_a_frame(items):
    _, _, rows = items
    by_frame: dict[str, dict[str, int]] = defaultdict(dict)
    for r in rows:
        n = len(_words(r["text"]))
        assert 80 <= n <= 130, f"{r['id']}: {n} words"
        by_frame[r["frame_id"]][r["label"]] = n
    for fid, counts in by_frame.items():
        lo, hi = min(counts.values()), max(counts.values())
        assert hi <= 1.10 * lo, f"{fid}: word counts {lo}..{hi} differ by more than 10%: {counts}"


def test_versions_of_a_frame_share_their_opening(items):
    """Same characters and setting: every version of a frame starts with the same sentences."""
    _, _, rows = items
    by_frame: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_frame[r["frame_id"]].append(r["text"])
    for fid, texts in by_frame.items():
        prefix = texts[0]
        for t in texts[1:]:
            i = 0
            while i < min(len(prefix), len(t)) and prefix[i] == t[i]:
                i += 1
            prefix = prefix[:i]
        assert len(prefix.split()) >= 25, f"{fid}: versions share only {prefix!r}"


def test_no_emotion_names(items):
    _, _, rows = items
    terms = load_terms()
    bad = {r["id"]: explicit_terms(r["text"], terms) for r in rows}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"emotion terms in: {bad}"


def test_no_stock_expressive_behaviour(items):
    _, _, rows = items
    bad = {r["id"]: sorted(set(_words(r["text"])) & BEHAVIOUR_TERMS) for r in rows}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"stock behaviour words in: {bad}"


def test_behaviour_matcher_catches_planted_words():
    planted = "She grinned, then her hands shook and she slammed the door; he wiped his tears."
    assert {"grinned", "shook", "slammed", "tears"} <= set(_words(planted)) & BEHAVIOUR_TERMS
    assert not set(_words("The manager said the shop was changing its hours.")) & BEHAVIOUR_TERMS


# ----------------------------------------------------------------------------- lexical ceiling


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory):
    out = tmp_path_factory.mktemp("set_d_ceiling")
    return set_d_ceiling.run(out, confirm=False, robustness=False), out


def test_ceiling_preregistered_set_d(ceiling):
    res, _ = ceiling
    pre = res[(res["eval"] == "set_d_cv") & res.preregistered]
    assert len(pre) == 6  # 3 baselines x 2 tasks
    for r in pre.itertuples():
        assert 0.0 <= r.auroc <= 1.0
        assert r.auroc <= r.threshold, (
            f"lexical ceiling broken on the frozen set: {r.task} {r.baseline} AUROC {r.auroc:.3f}"
            f" > {r.threshold}"
        )


def test_ceiling_outputs_written(ceiling):
    res, out = ceiling
    csv = out / "set_d_ceiling.csv"
    assert csv.is_file() and (out / "set_d_ceiling.md").read_text().startswith("# Set D lexical")
    assert list(res.columns) == set_d_ceiling.COLUMNS


def test_confirmation_holdout_is_scored_but_not_asserted():
    """The confirmation frames are scored once (train on the frozen 16, test on DC-01..04); the
    result is reported in validation/outputs/set_d_ceiling.csv as it came out, not asserted."""
    if not SET_D_CONFIRM.is_file():
        pytest.skip("confirmation frames not written yet")
    d = set_d_ceiling.load_items(SET_D)
    c = set_d_ceiling.load_items(SET_D_CONFIRM)
    rows = set_d_ceiling.holdout_rows(d, c)
    assert len(rows) == 6
    assert {r["n_frames"] for r in rows} == {4}
    assert all(0.0 <= r["auroc"] <= 1.0 for r in rows)
    recorded = set_d_ceiling.pd.read_csv(set_d_ceiling.DEFAULT_OUT / "set_d_ceiling.csv")
    held = recorded[(recorded["eval"] == "confirm_holdout") & recorded.preregistered]
    assert len(held) == 6, "confirmation result not recorded"


def test_second_confirmation_set_is_scored_like_the_first_and_recorded():
    """DC2-01..04 (frozen before scoring) are scored once like the first confirmation set; the
    result is reported as it came out (validation/outputs/set_d_ceiling.csv), not asserted."""
    if not SET_D_CONFIRM_2.is_file():
        pytest.skip("second confirmation set not written yet")
    d = set_d_ceiling.load_items(SET_D)
    c2 = set_d_ceiling.load_items(SET_D_CONFIRM_2)
    rows = set_d_ceiling.holdout_rows(d, c2, "confirm2_holdout", "train D-01..D-16, test DC2")
    assert len(rows) == 6 and {r["n_frames"] for r in rows} == {4}
    assert all(0.0 <= r["auroc"] <= 1.0 for r in rows)
    recorded = set_d_ceiling.pd.read_csv(set_d_ceiling.DEFAULT_OUT / "set_d_ceiling.csv")
    for ev in ("confirm2_holdout", "all2_cv"):
        held = recorded[(recorded["eval"] == ev) & recorded.preregistered]
        assert len(held) == 6, f"{ev}: second confirmation result not recorded"
    rec = recorded[(recorded["eval"] == "confirm2_holdout") & recorded.preregistered]
    now = {(r["task"], r["baseline"]): r["auroc"] for r in rows}
    for r in rec.itertuples():
        assert abs(now[(r.task, r.baseline)] - r.auroc) < 1e-3


def test_ceiling_folds_never_split_a_frame():
    import numpy as np

    from llmct.analysis.text_baselines import grouped_folds

    df = set_d_ceiling.load_items(SET_D)
    _, y, g = set_d_ceiling.task_data(df, "8class")
    for tr, te in grouped_folds(y, g):
        assert not set(g[tr]) & set(g[te])
        assert len(np.unique(g[te])) == 1


# ----------------------------------------------------------------------------- blind check


def test_blind_sheet_hides_labels_and_scoring_counts_agreement(tmp_path):
    from validation import set_d_blind

    sheet, key_path, out = tmp_path / "sheet.jsonl", tmp_path / "key.json", tmp_path / "out"
    n = set_d_blind.make_sheet(sheet, key_path=key_path, seed=3)
    rows = _read(sheet)
    header, body = rows[0], rows[1:]
    assert header["labels"] == list(LABELS) and len(body) == n
    assert all(set(r) == {"blind_id", "text"} for r in body)
    all_items = [it for p, _, _ in _files() for it in _read(p)]
    assert n == len(all_items)
    # the sheet is shuffled: not in file order
    assert [r["text"] for r in body] != [it["text"] for it in all_items]
    key = json.loads(key_path.read_text())["key"]
    # a reader who gets every item right except every anger item (labelled fear)
    answers = tmp_path / "answers.jsonl"
    with open(answers, "w") as fh:
        for bid, k in key.items():
            lab = "fear" if k["label"] == "anger" else k["label"]
            fh.write(json.dumps({"blind_id": bid, "label": lab}) + "\n")
    table = set_d_blind.score(answers, key_path=key_path, out=out)
    allrows = table[table.scope == "all"].set_index("label")
    assert allrows.loc["anger", "pct_intended"] == 0.0 and not allrows.loc["anger", "passes_80"]
    assert allrows.loc["joy", "pct_intended"] == 100.0 and allrows.loc["joy", "passes_80"]
    assert int(allrows.n.sum()) == n
    md = (out / "set_d_manipulation_check.md").read_text()
    assert "Emotions under 80%: anger" in md
    assert (out / "set_d_manipulation_check.csv").is_file()
