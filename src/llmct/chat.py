"""Chat rendering with per-message token spans.

``render_chat`` renders messages with the model's chat template and returns, for every message,
its token span and the span of its own content, so a read-out can be the last token of what the
user actually wrote (``message_end``) rather than a template token that ends every snapshot alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CaptureError

ROLES = ("system", "user", "assistant")
FALLBACK_TEMPLATE = "plain"  # used when a tokenizer has no chat template (base models)


@dataclass(frozen=True)
class MessageSpan:
    """Token spans (half-open) of one rendered message: whole message and its content only."""

    index: int
    role: str
    start: int
    end: int
    content_start: int
    content_end: int

    @property
    def content_last(self) -> int:
        return self.content_end - 1

    @property
    def last(self) -> int:
        return self.end - 1


@dataclass
class ChatRendering:
    text: str
    input_ids: list[int]
    spans: list[MessageSpan]
    template: str  # "chat_template" or FALLBACK_TEMPLATE


def render_text(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The template's text for ``messages`` (a plain 'role: content' format if there is none)."""
    for i, m in enumerate(messages):
        if m.get("role") not in ROLES:
            raise CaptureError(f"message {i}: role must be one of {ROLES}, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise CaptureError(f"message {i}: content must be a string")
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except Exception as exc:  # jinja raises TemplateError for e.g. an unsupported system role
            raise CaptureError(f"the model's chat template rejected the conversation: {exc}") from exc
    text = "".join(f"{m['role']}: {m['content']}\n\n" for m in messages)
    return text + ("assistant:" if add_generation_prompt else "")


def _tokens(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    if not getattr(tokenizer, "is_fast", False):
        raise CaptureError("per-message spans need a fast tokenizer (offset mapping)")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _char_to_token_span(offsets, c0: int, c1: int) -> tuple[int, int]:
    """Tokens overlapping chars ``[c0, c1)``; empty spans map to the token at c0."""
    toks = [i for i, (a, b) in enumerate(offsets) if b > c0 and a < c1 and b > a]
    if not toks:
        toks = [next((i for i, (a, b) in enumerate(offsets) if b > c0), len(offsets) - 1)]
    return toks[0], toks[-1] + 1


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> ChatRendering:
    """Render ``messages`` and locate every message (and its content) in token coordinates."""
    if not messages:
        raise CaptureError("empty conversation")
    text = render_text(tokenizer, messages, add_generation_prompt)
    ids, offsets = _tokens(tokenizer, text)
    spans: list[MessageSpan] = []
    prev_char = 0
    for k, m in enumerate(messages):
        prefix = render_text(tokenizer, messages[: k + 1])
        end_char = len(prefix) if text.startswith(prefix) else None
        content = m["content"].strip()
        search_from = prev_char
        c0 = text.find(content, search_from) if content else -1
        if end_char is None:
            end_char = (c0 + len(content)) if c0 >= 0 else prev_char
        if c0 < 0 or c0 + len(content) > end_char:
            c0, c1 = prev_char, end_char  # template rewrote the content: use the whole message
        else:
            c1 = c0 + len(content)
        start, end = _char_to_token_span(offsets, prev_char, end_char)
        cs, ce = _char_to_token_span(offsets, c0, c1)
        spans.append(MessageSpan(k, m["role"], start, end, cs, ce))
        prev_char = end_char
    template = "chat_template" if getattr(tokenizer, "chat_template", None) else FALLBACK_TEMPLATE
    return ChatRendering(text=text, input_ids=ids, spans=spans, template=template)


def has_prefix_property(tokenizer, messages: list[dict]) -> bool:
    """True if tokens(render(messages[:k])) is a prefix of tokens(render(messages)) for every k.

    When it holds, one causal forward over the whole conversation yields every snapshot exactly.
    """
    full, _ = _tokens(tokenizer, render_text(tokenizer, messages))
    for k in range(1, len(messages)):
        part, _ = _tokens(tokenizer, render_text(tokenizer, messages[:k]))
        if full[: len(part)] != part:
            return False
    return True
