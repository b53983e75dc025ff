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


def _pools(inputs) -> list:
    return pop.partition_pools(pop.load_population(pop.scenario_paths(inputs)))


def test_a_file_whose_references_or_baseline_differ_is_scanned_alone(tmp_path):
    folder = _write_population(tmp_path / "pop")
    other = _scenario("zz_odd", CONVS["arc_one"], REFS.replace("keep smiling", "keep grinning"))
    (folder / "zz_odd.yaml").write_text(other, encoding="utf-8")
    pools = _pools([folder])
    assert [(q.label, q.pooled, len(q.members)) for q in pools] == [("pop", True, 3),
                                                                    ("zz_odd", False, 1)]
    assert pools[1].differs == {"pop": ["references"]}
    assert pop.pool_note(pools[1]) == ("not pooled: its references block differs from every "
                                       "other scenario's")
    assert pop.describe_pool(pools[0]).startswith("pool 'pop': 3 conversations")
    assert pop.describe_pool(pools[1]).startswith("'zz_odd' scanned alone (not pooled: its "
                                                  "references block differs")
    (folder / "zz_odd.yaml").write_text(
        _scenario("zz_odd", CONVS["arc_one"], REFS.replace("on weekdays", "daily")), encoding="utf-8")
    assert _pools([folder])[1].differs == {"pop": ["baseline"]}


def test_two_files_that_cannot_be_pooled_are_one_line_error(tmp_path, monkeypatch):
    """No pool of two or more: the error names both files and the block (before any load)."""
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(_scenario("a", CONVS["arc_one"]), encoding="utf-8")
    b.write_text(_scenario("b", CONVS["arc_two"], REFS.replace("keep smiling", "keep grinning")),
                 encoding="utf-8")
    monkeypatch.setattr(pop, "load_model", _no_model)
    with pytest.raises(ScenarioError, match=r"b\.yaml \(line \d+\): its 'references' block differs "
                       r"from .*a\.yaml's; a population is pooled only over") as err:
        pop.run_population([tmp_path], out=tmp_path / "out")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_pools_must_share_one_model(tmp_path, monkeypatch):
    folder = _write_population(tmp_path / "pop")
    odd = _scenario("zz_odd", CONVS["arc_one"]).replace("references:", "model: {dtype: float16}\nreferences:")
    (folder / "zz_odd.yaml").write_text(odd, encoding="utf-8")
    monkeypatch.setattr(pop, "load_model", _no_model)
    with pytest.raises(ScenarioError, match=r"zz_odd\.yaml .*model is loaded once for every pool"):
        pop.run_population([folder], out=tmp_path / "out")


def test_paths_names_and_existing_out_are_checked_first(tmp_path, monkeypatch):
    folder = _write_population(tmp_path / "pop")
    monkeypatch.setattr(pop, "load_model", _no_model)
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    (tmp_path / "empty" / ".hidden" / "x.yaml").write_text(_scenario("x", CONVS["arc_one"]))
    with pytest.raises(ScenarioError, match="no scenario files"):
        pop.scenario_paths([tmp_path / "empty" / ".." / "empty"])
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


def test_a_folder_searches_its_sub_folders(tmp_path, monkeypatch):
    """Sorted and recursive; files with identical blocks from several folders form one pool."""
    _write_population(tmp_path / "scenarios" / "pop")
    (tmp_path / "scenarios" / "single.yaml").write_text(_scenario("single", CONVS["arc_one"]))
    paths = pop.scenario_paths([tmp_path / "scenarios"])
    rel = [p.relative_to(tmp_path / "scenarios").as_posix() for p in paths]
    assert rel == ["pop/arc_one.yaml", "pop/arc_two.yaml", "pop/control_three.yaml", "single.yaml"]
    pools = _pools([tmp_path / "scenarios"])
    assert len(pools) == 1 and len(pools[0].members) == 4 and pools[0].label == "pool-1"


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


# -- several pools (tiny model) -------------------------------------------------------------------

REFS_B = REFS.replace("I'm so happy, everything worked out", "What a day, it all went right")
POP_FILES = {"population_findings.json", "population_findings.csv", "per_conversation.csv",
             "comparison.csv", "population.json", "report.html"}


def test_one_pool_keeps_todays_layout(scanned):
    out, convs = scanned
    assert {p.name for p in out.iterdir()} == POP_FILES | set(convs)


@pytest.fixture(scope="module")
def several_pools(tiny_chat_model, tmp_path_factory):
    """``a/`` (3 conversations), ``b/`` (2, other reference texts) and ``odd.yaml`` (pool a's
    references, another baseline), scanned with a counted load and counted reference passes."""
    from llmct.scan import run as scan_run

    tmp = tmp_path_factory.mktemp("pools")
    _write_population(tmp / "in" / "a")
    for name in ("b_one", "b_two"):
        (tmp / "in" / "b").mkdir(parents=True, exist_ok=True)
        (tmp / "in" / "b" / f"{name}.yaml").write_text(
            _scenario(name, CONVS["arc_two"], REFS_B), encoding="utf-8")
    (tmp / "in" / "odd.yaml").write_text(_scenario(
        "odd", CONVS["arc_one"], REFS.replace("on weekdays", "daily")), encoding="utf-8")
    loads, passes = [], []
    real = scan_run.single_message_states

    def counting(model, tok, texts, *a, **k):
        passes.append((k.get("role", "user"), tuple(texts)))
        return real(model, tok, texts, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pop, "load_model", lambda *a, **k: loads.append(a) or tiny_chat_model)
        mp.setattr(scan_run, "single_message_states", counting)
        out = pop.run_population([tmp / "in"], out=tmp / "out", n_boot=100)
    return out, loads, passes, tmp


def test_several_pools_one_load_and_layout(several_pools, capsys):
    out, loads, _, _ = several_pools
    assert len(loads) == 1
    assert {p.name for p in out.iterdir()} == {"a", "b", "odd", "pools.json", "report.html"}
    assert {p.name for p in (out / "a").iterdir()} == POP_FILES | set(CONVS)
    assert {p.name for p in (out / "b").iterdir()} == POP_FILES | {"b_one", "b_two"}
    for f in ("findings.json", "run.json", "report.html", "metrics.csv"):
        assert (out / "odd" / f).exists(), f
    assert not (out / "odd" / "population.json").exists()
    info = json.loads((out / "b" / "population.json").read_text())
    assert info["n_conversations"] == 2 and [c["name"] for c in info["conversations"]] == [
        "b_one", "b_two"]


def test_pools_json_names_the_separating_blocks(several_pools):
    out, *_ = several_pools
    index = json.loads((out / "pools.json").read_text())
    assert index["blocks"] == ["references", "baseline", "model", "capture"]
    assert index["n_scenarios"] == 6 and index["timings"]["model_load"] >= 0
    rows = {q["label"]: q for q in index["pools"]}
    assert [q["label"] for q in index["pools"]] == ["a", "b", "odd"]
    assert rows["a"]["pooled"] and rows["a"]["n_conversations"] == 3
    assert rows["a"]["differs_from"] == {"b": ["references"], "odd": ["baseline"]}
    assert rows["odd"]["differs_from"] == {"a": ["baseline"], "b": ["references", "baseline"]}
    assert not rows["odd"]["pooled"] and rows["odd"]["files"][0].endswith("odd.yaml")
    assert rows["odd"]["note"] == "not pooled: its baseline block differs from every other scenario's"
    assert rows["a"]["note"] == ""
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    for link in ("a/report.html", "b/report.html", "odd/report.html"):
        assert f'href="{link}"' in page


def test_reference_cache_never_mixes_pools(several_pools, tiny_chat_model, tmp_path):
    """Each distinct text set is computed once per rendering, however many pools use it, and a
    pool scanned after another with other references gets exactly its own scan's numbers."""
    from llmct.scan.run import run_scan
    from llmct.scan.scenario import load_scenario

    out, _, passes, tmp = several_pools
    assert len(passes) == len(set(passes)) == 8  # refs a, refs b, baseline a, baseline odd x 2 roles
    alone = run_scan(load_scenario(tmp / "in" / "b" / "b_one.yaml"), out=tmp_path / "b_one",
                     model_and_tokenizer=tiny_chat_model, report=False)
    pd.testing.assert_frame_equal(pd.read_csv(out / "b" / "b_one" / "metrics.csv"),
                                  pd.read_csv(alone / "metrics.csv"))


def test_cli_prints_one_line_per_pool(tiny_chat_model, tmp_path, monkeypatch, capsys):
    from llmct.cli import main

    _write_population(tmp_path / "in" / "pop")
    (tmp_path / "in" / "z.yaml").write_text(
        _scenario("z", CONVS["arc_one"], REFS_B), encoding="utf-8")
    monkeypatch.setattr(pop, "load_model", lambda *a, **k: tiny_chat_model)
    assert main(["scan", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "pool 'pop': 3 conversations" in captured.err
    assert "'z' scanned alone (not pooled: its references block differs" in captured.err
    assert "scan of 2 pools written to" in captured.out and "over conversations, n=3" in captured.out
    assert not (tmp_path / "o" / "report.html").exists() and (tmp_path / "o" / "pools.json").exists()


def test_pools_page_escapes_every_text(tmp_path):
    bad = '<b>&"x"'
    (tmp_path / bad).mkdir()
    (tmp_path / bad / "report.html").write_text("")
    index = {"model": bad, "n_scenarios": 3, "blocks": list(pop.BLOCKS), "timings": {"total": 1},
             "pools": [{"label": bad, "folder": bad, "pooled": False, "n_conversations": 1,
                        "files": [bad], "differs_from": {bad: ["references"]}, "note": bad}]}
    (tmp_path / "pools.json").write_text(json.dumps(index))
    page = pop.render_pools_html(tmp_path)
    assert "<b>&" not in page and "&lt;b&gt;&amp;&quot;x&quot;" in page
    assert 'href="%3Cb%3E%26%22x%22/report.html"' in page
