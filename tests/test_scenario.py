"""Scenario validation: every bad input names its key and YAML line."""

import textwrap

import pytest

from llmct.scan.scenario import ScenarioError, load_scenario, parse_scenario

GOOD = textwrap.dedent("""\
    name: t
    messages:
      - role: system
        content: You are a helpful assistant
      - role: user
        emotion: joy
        content: I am so happy today!
      - role: assistant
    references:
      joy: Wonderful, I am delighted!
      sadness:
        text: I miss them terribly.
        valence: -0.8
    """)


def test_good_scenario_and_shorthands():
    sc = parse_scenario(GOOD)
    assert sc.model.id == "default" and sc.capture.position == "message_end"
    assert sc.references["joy"].text.startswith("Wonderful")
    assert sc.messages[2].content is None and sc.system_prompt == "You are a helpful assistant"


def test_shipped_rollercoaster_is_valid():
    sc = load_scenario("stimuli/scenarios/rollercoaster.yaml")
    assert len(sc.messages) == 20 and len(sc.references) == 9
    assert sum(m.role == "user" for m in sc.messages) == 10
    assert all(m.emotion for m in sc.messages if m.role == "user")


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace("name: t", "name: t\nmodle: x"), r":2: modle: unknown key"),
    (lambda t: t.replace("role: user", "role: narrator"), r":5: messages\[1\]\.role"),
    (lambda t: t.replace("  - role: assistant\n", "  - role: assistant\n    content: 5\n"),
     r"messages\[2\]\.content"),
    (lambda t: t.replace("content: You are a helpful assistant", "content: '  '"),
     r":4: messages\[0\].*empty"),
    (lambda t: t.replace("role: system", "role: system\n    emotion: joy"), r"emotion tags belong on user"),
    (lambda t: t.replace("  joy: Wonderful, I am delighted!\n", ""), r"references"),
])
def test_errors_name_key_and_line(edit, expected):
    with pytest.raises(ScenarioError, match=expected):
        parse_scenario(edit(GOOD), "s.yaml")


def test_empty_conversation_and_bad_yaml(tmp_path):
    with pytest.raises(ScenarioError, match="messages"):
        parse_scenario("name: t\nmessages: []\nreferences: {a: x, b: y}\n")
    with pytest.raises(ScenarioError, match="invalid YAML"):
        parse_scenario("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="mapping"):
        parse_scenario("- just\n- a list\n")
