"""`llmct scan` over a population of conversations (issue #16, item 2): every file validated
before the model loads, pooling only over identical references/baseline, one subfolder per
conversation, findings pooled with the conversation as the unit, a comparison page that escapes
every text. A tiny random Llama with the embedded tokenizer's vocabulary stands in for the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmct.errors import StoreError
from llmct.scan import population as pop
from llmct.scan.findings import SPECS, VERDICTS
from llmct.scan.scenario import ScenarioError, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
POP = ROOT / "stimuli" / "scenarios" / "population"

REFS = """\
references:
  joy: I'm so happy, everything worked out and I keep smiling.
  sadness: I'm so sad, the house feels empty and I keep crying.
  fear: I'm so scared, my hands are shaking while I wait.
baseline:
  - The library opens at nine and closes at six on weekdays.
  - Please convert twelve kilometres into miles for me.
capture: {sources: [hidden_in, hidden_out, attn_out, mlp_out], layers: all, position: message_end}
"""


def _scenario(name: str, turns: list[tuple[str, str | None, str]], refs: str = REFS) -> str:
    msgs = "\n".join(
        f"  - role: {role}\n" + (f"    emotion: {tag}\n" if tag else "") + f"    content: {json.dumps(text)}"
        for role, tag, text in turns)
    return f"name: {json.dumps(name)}\nmessages:\n  - role: system\n    content: You are a helpful assistant\n{msgs}\n{refs}"


CONVS = {
    "arc_one": [("user", "joy", "I got the job today!"), ("assistant", None, "Congratulations, well done."),
                ("user", "fear", "But I start Monday and I am nervous."), ("assistant", "joy", "You will be great, I'm delighted for you."),
                ("user", "sadness", "My old team will miss me."), ("assistant", None, "It is hard to leave good people.")],
    "arc_two": [("user", "sadness", "My cat died last night."), ("assistant", "sadness", "I'm so sorry for your loss."),
                ("user", "fear", "The flat feels strange and I am scared to be alone."), ("assistant", None, "That is a normal feeling."),
                ("user", "joy", "A friend came round with cake."), ("assistant", None, "That sounds lovely.")],
    "control_three": [("user", None, "How long do I boil an egg?"), ("assistant", None, "About seven minutes."),
                      ("user", None, "And for a soft yolk?"), ("assistant", None, "Around five minutes."),
                      ("user", None, "Thanks."), ("assistant", None, "You're welcome.")],
}


def _write_population(folder: Path, convs=CONVS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, turns in convs.items():
        (folder / f"{name}.yaml").write_text(_scenario(name, turns), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_chat_model():
    """A 2-layer random Llama sized to the embedded SmolLM2 tokenizer (ChatML template)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from tests.tiny_models import embedded_tokenizer

    tok = embedded_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, tok
    torch.set_num_threads(before)


# -- schema: emotion tags on assistant turns ------------------------------------------------------

def test_assistant_turns_may_carry_an_emotion_tag():
    sc = parse_scenario(_scenario("t", [("user", "joy", "hi"), ("assistant", "fear", "oh no")]))
    assert [m.emotion for m in sc.messages] == [None, "joy", "fear"]


@pytest.mark.parametrize("text, match", [
    (_scenario("t", [("user", None, "hi")]).replace(
        "role: system\n", "role: system\n    emotion: joy\n", 1), "not the system prompt"),
    (_scenario("t", [("user", None, "hi")]).replace(
        "references:", "  - role: assistant\n    emotion: joy\nreferences:", 1), "written out"),
])
def test_emotion_tag_refused_where_it_cannot_mean_anything(text, match):
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(text, "s.yaml")


def test_population_assistant_files_are_tagged():
    from llmct.scan.scenario import load_scenario

    tagged = {p.stem: [(i, m.emotion) for i, m in enumerate(load_scenario(p).messages)
                       if m.role == "assistant" and m.emotion]
              for p in sorted(POP.glob("assistant_*.yaml"))}
    assert len(tagged) == 3 and all(len(v) >= 5 for v in tagged.values()), tagged
    assert tagged["assistant_worried_chest_pain"][0] == (2, "fear")


# -- validation before the model loads ------------------------------------------------------------

def _no_model(*a, **k):
    raise AssertionError("the model must not be loaded before every file is validated")


def test_every_file_is_validated_before_the_model_loads(tmp_path, monkeypatch):
    folder = _write_population(tmp_path / "pop")
    (folder / "zz_broken.yaml").write_text("name: b\nmessages: []\n", encoding="utf-8")
    monkeypatch.setattr(pop, "load_model", _no_model)
    with pytest.raises(ScenarioError, match="zz_broken.yaml"):
        pop.run_population([folder], out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pooling_needs_identical_references_and_baseline(tmp_path, monkeypatch):
    folder = _write_population(tmp_path / "pop")
    other = _scenario("zz_odd", CONVS["arc_one"], REFS.replace("keep smiling", "keep grinning"))
    (folder / "zz_odd.yaml").write_text(other, encoding="utf-8")
    monkeypatch.setattr(pop, "load_model", _no_model)
    with pytest.raises(ScenarioError, match=r"zz_odd\.yaml .*'references' block differs from .*arc_one\.yaml"):
        pop.run_population([folder], out=tmp_path / "out")
    (folder / "zz_odd.yaml").write_text(
        _scenario("zz_odd", CONVS["arc_one"], REFS.replace("on weekdays", "daily")), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"zz_odd\.yaml .*'baseline' block differs"):
        pop.run_population([folder], out=tmp_path / "out")


def test_paths_names_and_existing_out_are_checked_first(tmp_path, monkeypatch):
    folder = _write_population(tmp_path / "pop")
    monkeypatch.setattr(pop, "load_model", _no_model)
    with pytest.raises(ScenarioError, match="no scenario files"):
        pop.scenario_paths([tmp_path / "pop" / ".." / "pop" / ".." ])
    with pytest.raises(ScenarioError, match="given twice"):
        pop.scenario_paths([folder, folder / "arc_one.yaml"])
    with pytest.raises(ScenarioError, match="at least 2 scenarios"):
        pop.run_population([folder / "arc_one.yaml"], out=tmp_path / "out")
    (folder / "copy.yaml").write_text(_scenario("arc_one", CONVS["arc_two"]), encoding="utf-8")
    with pytest.raises(ScenarioError, match="copy.yaml: name 'arc_one' is also the name of"):
        pop.run_population([folder], out=tmp_path / "out")
    (folder / "copy.yaml").unlink()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="exists"):
        pop.run_population([folder], out=tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# -- the scan itself (tiny model) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def scanned(tiny_chat_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("population")
    convs = dict(CONVS)
    convs['arc_<b>&"four"'] = CONVS["arc_one"]  # a name that must be escaped on the page
    folder = _write_population(tmp / "pop", convs)
    out = pop.run_population([folder], out=tmp / "out", model_and_tokenizer=tiny_chat_model,
                             n_boot=200)
    return out, convs


def test_each_conversation_gets_its_usual_folder(scanned):
    out, convs = scanned
    for name in convs:
        for f in ("metrics.csv", "findings.json", "run.json", "report.html", "layer_map.csv"):
            assert (out / name / f).exists(), (name, f)
        run = json.loads((out / name / "run.json").read_text())
        assert any("role control" in n for n in run["notes"])


def test_findings_are_pooled_with_the_conversation_as_unit(scanned):
    out, convs = scanned
    pooled = json.loads((out / "population_findings.json").read_text())
    assert [f["id"] for f in pooled] == [s.id for s in SPECS]
    per = {n: {f["id"]: f for f in json.loads((out / n / "findings.json").read_text())}
           for n in convs}
    for f in pooled:
        assert f["verdict"] in VERDICTS, f
        assert f["ci_unit"] == "conversations", f
        if f["verdict"] == "not testable here":
            assert f["reason"], f
            continue
        usable = [n for n in convs if per[n][f["id"]]["verdict"] != "not testable here"]
        assert f["n_units"] == len(usable)
        assert f"n = {len(usable)} conversations is small" in f["detail"]
        head = next(s.headline for s in SPECS if s.id == f["id"])
        mean = np.mean([per[n][f["id"]]["quantities"][head]["estimate"] for n in usable])
        assert f["value"] == pytest.approx(mean, abs=1e-4)
        assert f["ci_low"] <= f["value"] + 1e-9 and f["value"] <= f["ci_high"] + 1e-9
        assert f["per_conversation"].keys() == convs.keys()
    byid = {f["id"]: f for f in pooled}
    # the control conversation has no tags: left out of nearest-reference and fading, named
    assert byid["nearest_reference"]["n_units"] == len(convs) - 1
    assert "control_three" in byid["nearest_reference"]["detail"]
    # paired gap, both renderings, one value per conversation
    q = byid["user_assistant_gap"]["quantities"]
    assert {"res_userref", "res_asstref", "br_userref", "br_asstref"} <= q.keys()
    assert all(v["n_units"] == str(len(convs)) for v in q.values())
    # one conversation's own findings carry their unit too
    assert per["arc_one"]["user_assistant_gap"]["ci_unit"] == "user-assistant pairs (one conversation)"
    assert per["arc_one"]["user_assistant_gap"]["n_units"] == 3


def test_tables_one_row_per_conversation(scanned):
    out, convs = scanned
    wide = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    assert sorted(wide.conversation) == sorted(convs)
    assert set(wide.kind) == {"arc", "control"}
    long = pd.read_csv(out / "per_conversation.csv", keep_default_na=False)
    assert set(long.conversation) == set(convs)
    assert {"ci_unit", "verdict", "quantity", "estimate"} <= set(long.columns)
    table = pd.read_csv(out / "population_findings.csv")
    assert (table.ci_unit == "conversations").all() and len(table) == len(SPECS)
    info = json.loads((out / "population.json").read_text())
    assert info["n_conversations"] == len(convs) and info["unit"] == "conversations"
    assert info["timings"]["total"] > 0


def test_comparison_page_escapes_every_text(scanned):
    out, convs = scanned
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "<b>&" not in page and "&lt;b&gt;&amp;&quot;four&quot;" in page
    for name in ("arc_one", "arc_two", "control_three"):
        assert f'href="{name}/report.html"' in page
    # one row per conversation in the comparison table
    body = page.split('id="conversations"', 1)[1]
    assert len(re.findall(r"<tr><td>", body)) == len(convs)
    for v in VERDICTS:
        assert v in page


def test_cli_scans_a_folder(tiny_chat_model, tmp_path, monkeypatch, capsys):
    from llmct.cli import main

    folder = _write_population(tmp_path / "pop")
    monkeypatch.setattr(pop, "load_model", lambda *a, **k: tiny_chat_model)
    assert main(["scan", str(folder), "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "population scan written to" in text and "over conversations, n=" in text
    assert main(["scan", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["scan", str(folder), "--out", str(tmp_path / "o2"), "--save-library", "x"]) == 2
    assert "--save-library takes one scenario" in capsys.readouterr().err


def test_a_folder_with_one_scenario_points_at_its_sub_folders(tmp_path, monkeypatch):
    _write_population(tmp_path / "scenarios" / "pop")
    (tmp_path / "scenarios" / "single.yaml").write_text(_scenario("single", CONVS["arc_one"]))
    monkeypatch.setattr(pop, "load_model", _no_model)
    with pytest.raises(ScenarioError, match=r"sub-folders are not searched; scenario folders "
                       r"there: .*scenarios/pop"):
        pop.run_population([tmp_path / "scenarios"], out=tmp_path / "out")


def test_references_are_computed_once_for_the_population(tiny_chat_model, tmp_path, monkeypatch):
    """One model load and one pass over the shared references and baseline, in each rendering
    (user, assistant), however many conversations there are."""
    from llmct.scan import run as scan_run

    calls = []
    real = scan_run.single_message_states

    def counting(*a, **k):
        calls.append(k.get("role", "user"))
        return real(*a, **k)

    monkeypatch.setattr(scan_run, "single_message_states", counting)
    folder = _write_population(tmp_path / "pop")
    pop.run_population([folder], out=tmp_path / "o", model_and_tokenizer=tiny_chat_model,
                       report=False, n_boot=50)
    assert sorted(calls) == ["assistant", "assistant", "user", "user"]
