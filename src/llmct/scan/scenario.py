"""Scenario YAML schema, validated with pydantic; errors name the key and its YAML line.

The YAML is read strictly: a key given twice in one mapping is an error naming both lines (YAML
would silently keep the last), and aliases may not expand the document beyond
:data:`MAX_YAML_NODES` nodes (a "billion laughs" file is refused in milliseconds instead of
hanging the validator). Integers are strict: ``layers: [true, false]`` is an error, not ``[1, 0]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from llmct.core.capture import SOURCES
from llmct.errors import LLMCTError

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
    emotion: str | None = None  # intended emotion of a user turn, or expressed by an assistant turn

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
        if self.emotion is not None and self.role == "system":
            raise ValueError("emotion tags belong on user or assistant turns, not the system prompt")
        if self.emotion is not None and self.role == "assistant" and self.content is None:
            raise ValueError("an emotion tag on an assistant turn needs its content written out "
                             "(a generated reply's emotion is not known in advance)")
        return self


class Generation(_Strict):
    # default= by keyword: type checkers (dataclass_transform) do not read a positional default
    max_new_tokens: StrictInt = Field(default=64, gt=0, le=4096)
    do_sample: bool = False
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: StrictInt = 0


class CaptureSpec(_Strict):
    sources: list[Source] = Field(default_factory=lambda: cast(list[Source], list(SOURCES)),
                                  min_length=1)
    layers: Literal["all"] | list[StrictInt] = "all"

    @field_validator("layers", mode="before")
    @classmethod
    def _no_bools(cls, v):
        if isinstance(v, list) and any(isinstance(x, bool) for x in v):
            raise ValueError(f"layer indices must be integers, not booleans: {v}")
        if isinstance(v, list) and any(not isinstance(x, int) for x in v):
            raise ValueError(f"layer indices must be integers (or 'all'), got {v}")
        return v
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

    def unmatched_tags(self) -> list[dict]:
        """User or assistant turns whose ``emotion`` tag is not a reference label (so they are not scored):
        ``{"message", "emotion", "line", "reason"}`` each, with a close label suggested."""
        import difflib

        out = []
        labels = list(self.references)
        for i, m in enumerate(self.messages):
            if m.emotion is not None and m.emotion not in self.references:
                close = difflib.get_close_matches(m.emotion.lower(), [x.lower() for x in labels],
                                                  n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                out.append({"message": i, "emotion": m.emotion,
                            "line": self.line_of("messages", i, "emotion"),
                            "reason": "matches no reference label, so this turn is not scored "
                            f"(references: {', '.join(labels)}){hint}"})
        return out

    @property
    def system_prompt(self) -> str | None:
        return self.messages[0].content if self.messages[0].role == "system" else None

    # where each key was in the YAML, for errors found after loading (layers out of range, ...)
    _lines: dict = {}

    def line_of(self, *path) -> str:
        line = self._lines.get(tuple(path))
        return f"line {line}" if line else "unknown line"


#: Most nodes a scenario may expand to once its aliases are followed (a real scenario has a few
#: hundred; nine levels of nine aliases -- a 2 KB "billion laughs" -- would be 9**9).
MAX_YAML_NODES = 100_000


def _line_map(node, path=(), seen=None) -> dict[tuple, int]:
    """(key path) -> 1-based line of a composed YAML node tree. A node reached again through an
    alias is not walked again (its keys keep the lines of their first path)."""
    seen = set() if seen is None else seen
    lines = {path: node.start_mark.line + 1}
    if id(node) in seen:
        return lines
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_line_map(value, (*path, key.value), seen))
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            lines.update(_line_map(value, (*path, i), seen))
    return lines


def _check_nodes(root, source: str) -> None:
    """Refuse duplicate keys (naming both lines) and alias expansion beyond MAX_YAML_NODES, in
    time linear in the size of the file (each distinct node is visited once)."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes and not done:
            continue
        children = ([n for kv in node.value for n in kv] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if not done:
            if isinstance(node, yaml.MappingNode):
                first: dict = {}
                for key, _ in node.value:
                    if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                        continue
                    if key.value in first:
                        raise ScenarioError(
                            f"{source}:{key.start_mark.line + 1}: duplicate key {key.value!r} "
                            f"(first given on line {first[key.value]}); YAML would silently keep "
                            "only the last one"
                        )
                    first[key.value] = key.start_mark.line + 1
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            sizes.setdefault(id(node), -1)  # in progress (YAML graphs from aliases are acyclic
            continue                        # except for recursive anchors, refused below)
        total = 1
        for c in children:
            size = sizes.get(id(c), -1)
            if size < 0:
                raise ScenarioError(f"{source}:{c.start_mark.line + 1}: recursive YAML alias")
            total += size
            if total > MAX_YAML_NODES:
                raise ScenarioError(
                    f"{source}:{node.start_mark.line + 1}: YAML aliases expand this document "
                    f"beyond {MAX_YAML_NODES} nodes; refusing it (write the values out instead)"
                )
        sizes[id(node)] = total


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML text; every error names ``source``, the line and the key path.

    Raises:
        ScenarioError: invalid YAML, a duplicate key (both lines named), aliases expanding beyond
            MAX_YAML_NODES, or a schema error (one ``source:line: key: problem`` per problem).
    """
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise ScenarioError(f"{source}: the scenario is empty")
            _check_nodes(node, source)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        msg = " ".join(str(exc).split())
        raise ScenarioError(f"{source}: invalid YAML: {msg}") from None
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
        raise ScenarioError("; ".join(problems)) from None
    scenario._lines = lines
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (UTF-8 YAML).

    Raises:
        ScenarioError: a missing file, a folder, bytes that are not UTF-8, a byte-order mark, or
            any error of :func:`parse_scenario`.
    """
    path = Path(path)
    if path.is_dir():
        raise ScenarioError(f"{path}: is a folder, not a scenario file")
    if not path.exists():
        raise ScenarioError(f"scenario file {path} does not exist")
    raw = path.read_bytes()
    if raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise ScenarioError(f"{path}:1: the file starts with a byte-order mark; save it as UTF-8 "
                            "without BOM")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save "
                            "the file as UTF-8") from None
    return parse_scenario(text, str(path))
