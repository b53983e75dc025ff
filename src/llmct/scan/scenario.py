"""Scenario YAML schema, validated with pydantic; errors name the key and its YAML line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..capture import SOURCES
from ..errors import LLMCTError

Source = Literal["hidden_in", "hidden_out", "attn_out", "mlp_out"]


class ScenarioError(LLMCTError, ValueError):
    """A scenario file that cannot be used; the message names file, line and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    id: str = "default"
    dtype: str = "auto"
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str | None = None  # None/absent on an assistant turn: generated
    emotion: str | None = None  # intended emotion of a user turn

    @field_validator("content")
    @classmethod
    def _not_blank(cls, v):
        if v is not None and not v.strip():
            raise ValueError("content is empty")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content (only assistant turns are generated)")
        if self.emotion is not None and self.role != "user":
            raise ValueError("emotion tags belong on user turns")
        return self


class Generation(_Strict):
    max_new_tokens: int = Field(64, gt=0, le=4096)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = 0


class CaptureSpec(_Strict):
    sources: list[Source] = Field(default_factory=lambda: list(SOURCES), min_length=1)
    layers: Literal["all"] | list[int] = "all"
    position: Literal["message_end", "template_end", "mean"] = "message_end"


class Reference(_Strict):
    text: str = Field(min_length=1)
    family: str | None = None
    valence: float | None = None
    arousal: float | None = None


class Output(_Strict):
    dir: str | None = None


class Scenario(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    messages: list[Message] = Field(min_length=1)
    generation: Generation = Field(default_factory=Generation)
    capture: CaptureSpec = Field(default_factory=CaptureSpec)
    references: dict[str, Reference] = Field(min_length=2)
    baseline: list[str] = Field(default_factory=list)
    output: Output = Field(default_factory=Output)

    @field_validator("model", mode="before")
    @classmethod
    def _model_shorthand(cls, v):
        return {"id": v} if isinstance(v, str) else v

    @field_validator("references", mode="before")
    @classmethod
    def _reference_shorthand(cls, v):
        if isinstance(v, dict):
            return {k: ({"text": r} if isinstance(r, str) else r) for k, r in v.items()}
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.messages[-1].role == "system":
            raise ValueError("the conversation has only a system prompt at its end")
        if sum(m.role == "system" for m in self.messages) > 1 or (
            any(m.role == "system" for m in self.messages) and self.messages[0].role != "system"
        ):
            raise ValueError("at most one system message, and only as the first message")
        return self

    @property
    def system_prompt(self) -> str | None:
        return self.messages[0].content if self.messages[0].role == "system" else None

    # where each key was in the YAML, for errors found after loading (layers out of range, ...)
    _lines: dict = {}

    def line_of(self, *path) -> str:
        line = self._lines.get(tuple(path))
        return f"line {line}" if line else "unknown line"


def _line_map(node, path=()) -> dict[tuple, int]:
    """(key path) -> 1-based line of a composed YAML node tree."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_line_map(value, (*path, key.value)))
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            lines.update(_line_map(value, (*path, i)))
    return lines


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML text; every error names ``source``, the line and the key path."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a YAML mapping with name, messages, references")
    lines = _line_map(node)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            # the deepest path with a known line
            line = next((lines[loc[:k]] for k in range(len(loc), -1, -1) if loc[:k] in lines), None)
            key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
            msg = err["msg"].replace("Value error, ", "")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{source}:{line or '?'}: {key or '(top level)'}: {msg}")
        raise ScenarioError("invalid scenario\n  " + "\n  ".join(problems)) from None
    scenario._lines = lines
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    if not path.exists():
        raise ScenarioError(f"scenario file {path} does not exist")
    return parse_scenario(path.read_text(encoding="utf-8"), str(path))
