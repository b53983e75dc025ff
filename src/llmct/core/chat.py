"""Chat rendering with per-message token spans.

``render_chat`` renders messages with the model's chat template and returns, for every message,
its token span and the span of its own content, so a read-out can be the last token of what the
user actually wrote (``message_end``) rather than a template token that ends every snapshot alike.

How spans are found (issue #13 item 3): the conversation is rendered once with a unique sentinel
in place of each message's content; the template text around the sentinels is then known exactly,
the real rendering is rebuilt by putting the contents back (and checked against the template's
own rendering), and each content's character range maps to tokens through the tokenizer's offset
mapping. Nothing is ever searched for in the rendered string, so a content that is also a word of
the template (``user``, ``im_start``, ``<``) cannot be confused with it.

Template tokens inside content (issue #14 item 7): a content that spells a special token (e.g.
``<|im_end|><|im_start|>assistant``) is tokenised as text, never as the special token, so it
cannot forge a turn; ``special_in_content="error"`` refuses it instead. In the plain fallback
format used for models without a template, a content line that starts a turn (``Assistant:``) is
refused (issue #18 item 2). ``load_chat_template`` / ``use_chat_template`` supply a template file
(``--chat-template FILE``); :attr:`ChatRendering.template` records which template was used.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from llmct.errors import CaptureError

ROLES = ("system", "user", "assistant")
FALLBACK_TEMPLATE = "plain fallback"  # used when a tokenizer has no chat template (base models)
SPECIAL_IN_CONTENT = ("text", "error")
_TURN_LINE = re.compile(r"^\s*(system|user|assistant)\s*:", re.IGNORECASE | re.MULTILINE)


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
    """A rendered conversation: its text, token ids, one :class:`MessageSpan` per message, and
    ``template``: ``"chat_template"`` (the tokenizer's own), ``"plain fallback"`` (no template),
    or the path of a template file given with ``--chat-template``."""

    text: str
    input_ids: list[int]
    spans: list[MessageSpan]
    template: str


class ChatTemplate(str):
    """A chat template's jinja source that remembers the file it came from (``source``)."""

    source: str

    def __new__(cls, text: str, source: str) -> ChatTemplate:
        obj = super().__new__(cls, text)
        obj.source = source
        return obj


_SAMPLE = [{"role": "system", "content": "SYSTEM-SAMPLE"}, {"role": "user", "content": "USER-SAMPLE"},
           {"role": "assistant", "content": "ASSISTANT-SAMPLE"}]


def load_chat_template(path: str | Path) -> ChatTemplate:
    """Read a jinja chat template file and check that it renders a system/user/assistant
    conversation containing each message's content once (the Hugging Face template language:
    ``messages``, ``add_generation_prompt``, ``bos_token``, ``eos_token``).

    Raises CaptureError naming the file (and the line, for a syntax error)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptureError(f"{path}: cannot read the chat template ({exc})") from exc
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    try:
        template = env.from_string(text)
        out = template.render(messages=_SAMPLE, add_generation_prompt=True, bos_token="",
                              eos_token="")
    except jinja2.TemplateSyntaxError as exc:
        raise CaptureError(f"{path}: line {exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise CaptureError(f"{path}: the template fails on a system/user/assistant "
                           f"conversation: {exc}") from exc
    missing = [m["role"] for m in _SAMPLE if out.count(m["content"]) != 1]
    if missing:
        raise CaptureError(f"{path}: the template does not render the content of the "
                           f"{', '.join(missing)} message exactly once")
    return ChatTemplate(text, str(path))


def use_chat_template(tokenizer, path: str | Path) -> ChatTemplate:
    """Make ``tokenizer`` render chats with the template file at ``path`` (validated by
    :func:`load_chat_template`); every later :func:`render_chat` records ``path`` as its
    template. Returns the template."""
    template = load_chat_template(path)
    tokenizer.chat_template = str(template)
    tokenizer.llmct_chat_template_source = template.source
    return template


def template_name(tokenizer, chat_template: str | None = None) -> str:
    """Which template renders chats: a file path, ``"chat_template"`` or ``"plain fallback"``."""
    if chat_template is not None:
        return getattr(chat_template, "source", "chat_template (given)")
    if getattr(tokenizer, "chat_template", None):
        return getattr(tokenizer, "llmct_chat_template_source", None) or "chat_template"
    return FALLBACK_TEMPLATE


def _check_messages(messages: list[dict]) -> None:
    for i, m in enumerate(messages):
        if m.get("role") not in ROLES:
            raise CaptureError(f"message {i}: role must be one of {ROLES}, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise CaptureError(f"message {i}: content must be a string")


def _check_plain_turns(messages: list[dict]) -> None:
    for i, m in enumerate(messages):
        hit = _TURN_LINE.search(m["content"])
        if hit:
            line = m["content"][: hit.start()].count("\n") + 1
            raise CaptureError(
                f"message {i}: content line {line} starts with '{hit.group(0).strip()}', which "
                f"would forge a {hit.group(1).lower()!r} turn in the plain fallback chat format "
                "(the model has no chat template); rephrase it or give a template with "
                "--chat-template FILE"
            )


def end_plain_turn(reply: str) -> str:
    """A reply generated in the plain fallback format, cut where the model starts a new turn
    (a line ``user:`` / ``assistant:`` / ``system:``): a base model has no end-of-turn token and
    often writes the next turns itself; kept, they would forge turns in the conversation."""
    hit = _TURN_LINE.search(reply)
    return (reply[: hit.start()] if hit else reply).strip()


def _raw_render(tokenizer, messages: list[dict], add_generation_prompt: bool,
                chat_template: str | None) -> str:
    template = chat_template if chat_template is not None else getattr(
        tokenizer, "chat_template", None)
    if template:
        try:
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                chat_template=str(template),
            )
        except Exception as exc:  # jinja raises TemplateError for e.g. an unsupported system role
            raise CaptureError(f"the chat template rejected the conversation: {exc}") from exc
    text = "".join(f"{m['role']}: {m['content']}\n\n" for m in messages)
    return text + ("assistant:" if add_generation_prompt else "")


def render_text(tokenizer, messages: list[dict], add_generation_prompt: bool = False, *,
                chat_template: str | None = None) -> str:
    """The template's text for ``messages`` (a plain 'role: content' format if there is none).

    Raises CaptureError for an unknown role, a non-string content, a template that rejects the
    conversation, or (plain format) a content line that would start a turn."""
    _check_messages(messages)
    if template_name(tokenizer, chat_template) == FALLBACK_TEMPLATE:
        _check_plain_turns(messages)
    return _raw_render(tokenizer, messages, add_generation_prompt, chat_template)


def _layout(tokenizer, messages: list[dict], add_generation_prompt: bool,
            chat_template: str | None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and each content's character range, from a sentinel rendering (the
    range excludes leading/trailing whitespace unless the content is only whitespace)."""
    text = render_text(tokenizer, messages, add_generation_prompt, chat_template=chat_template)
    nonce = uuid.uuid4().hex[:8]
    sentinels = [f"\ue000llmct{k}x{nonce}\ue001" for k in range(len(messages))]
    marked = _raw_render(tokenizer, [{**m, "content": s} for m, s in zip(messages, sentinels,
                                                                          strict=True)],
                         add_generation_prompt, chat_template)
    where = []
    for k, s in enumerate(sentinels):
        if marked.count(s) != 1:
            raise CaptureError(f"message {k}: the chat template renders its content "
                               f"{marked.count(s)} times (it must appear once, verbatim or "
                               "trimmed); per-message spans cannot be located")
        where.append(marked.index(s))
    if where != sorted(where):
        raise CaptureError("the chat template reorders the messages; spans cannot be located")
    for strip in (False, True):
        pieces, ranges, cursor = [], [], 0
        for m, s, at in zip(messages, sentinels, where, strict=True):
            content = m["content"].strip() if strip else m["content"]
            pieces.append(marked[cursor:at])
            start = sum(len(p) for p in pieces)
            pieces.append(content)
            core = content.strip()  # the span covers what was written, not surrounding whitespace
            lead = len(content) - len(content.lstrip()) if core else 0
            ranges.append((start + lead, start + lead + (len(core) if core else len(content))))
            cursor = at + len(s)
        pieces.append(marked[cursor:])
        if "".join(pieces) == text:
            return text, ranges
    raise CaptureError("the chat template rewrites message content (beyond trimming "
                       "whitespace); per-message spans cannot be located exactly")


def _special_ids(tokenizer) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids |= {int(i) for i, t in decoder.items() if getattr(t, "special", False)}
    return ids


def _encode(tokenizer, text: str, split_special: bool = False
            ) -> tuple[list[int], list[tuple[int, int]]]:
    kwargs = {"split_special_tokens": True} if split_special else {}
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, **kwargs)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _tokens(tokenizer, text: str, ranges: list[tuple[int, int]], special_in_content: str
            ) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets of ``text``, with the contents at ``ranges`` tokenised
    as text (a special-token spelling inside a content never becomes the special token)."""
    if not getattr(tokenizer, "is_fast", False):
        raise CaptureError("per-message spans need a fast tokenizer (offset mapping)")
    ids, offsets = _encode(tokenizer, text)
    special = _special_ids(tokenizer)
    inside = [(k, i) for i, (tok, (a, b)) in enumerate(zip(ids, offsets, strict=True))
              if tok in special for k, (c0, c1) in enumerate(ranges) if a < c1 and b > c0]
    if not inside:
        return ids, offsets
    k, i = inside[0]
    if special_in_content == "error":
        raise CaptureError(
            f"message {k}: its content contains the special token {text[slice(*offsets[i])]!r}; "
            "pass special_in_content='text' to tokenise it as plain text"
        )
    # tokenise segment by segment: template text with its special tokens, contents as text
    ids, offsets, cursor = [], [], 0
    bounds = [(c0, c1, True) for c0, c1 in ranges]
    for c0, c1, _ in bounds:
        for seg, split in ((text[cursor:c0], False), (text[c0:c1], True)):
            if seg:
                seg_ids, seg_off = _encode(tokenizer, seg, split_special=split)
                base = cursor if not split else c0
                ids += seg_ids
                offsets += [(a + base, b + base) for a, b in seg_off]
        cursor = c1
    if text[cursor:]:
        seg_ids, seg_off = _encode(tokenizer, text[cursor:])
        ids += seg_ids
        offsets += [(a + cursor, b + cursor) for a, b in seg_off]
    return ids, offsets


def _char_to_token_span(offsets, c0: int, c1: int) -> tuple[int, int]:
    """Tokens overlapping chars ``[c0, c1)``; empty spans map to the token at c0."""
    toks = [i for i, (a, b) in enumerate(offsets) if b > c0 and a < c1 and b > a]
    if not toks:
        toks = [next((i for i, (a, b) in enumerate(offsets) if b > c0), len(offsets) - 1)]
    return toks[0], toks[-1] + 1


def _bos_prefix(tokenizer) -> list[int]:
    """Ids a plain tokenizer call adds before the text (a BOS), used with the plain fallback
    format so a base model sees its usual start; chat templates write their own."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    n = len(with_special) - len(without)
    return list(with_special[:n]) if n > 0 and with_special[n:] == without else []


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False, *,
                chat_template: str | None = None, special_in_content: str = "text"
                ) -> ChatRendering:
    """Render ``messages`` and locate every message (and its content) in token coordinates.

    ``chat_template``: a template string (e.g. from :func:`load_chat_template`) instead of the
    tokenizer's own. ``special_in_content``: ``"text"`` tokenises special-token spellings inside
    contents as plain text; ``"error"`` refuses them. With the plain fallback format a BOS is
    prepended where the tokenizer adds one. Raises CaptureError for an empty conversation, bad
    messages, a content line forging a turn (plain format), or a template that rewrites content.
    """
    if not messages:
        raise CaptureError("empty conversation")
    if special_in_content not in SPECIAL_IN_CONTENT:
        raise CaptureError(f"special_in_content must be one of {SPECIAL_IN_CONTENT}, got "
                           f"{special_in_content!r}")
    name = template_name(tokenizer, chat_template)
    text, ranges = _layout(tokenizer, messages, add_generation_prompt, chat_template)
    ids, offsets = _tokens(tokenizer, text, ranges, special_in_content)
    spans: list[MessageSpan] = []
    prev_char = 0
    for k, m in enumerate(messages):
        prefix = _raw_render(tokenizer, messages[: k + 1], False, chat_template)
        c0, c1 = ranges[k]
        end_char = len(prefix) if text.startswith(prefix) and len(prefix) >= c1 else c1
        start, end = _char_to_token_span(offsets, prev_char, end_char)
        cs, ce = _char_to_token_span(offsets, c0, c1)
        spans.append(MessageSpan(k, m["role"], start, max(end, ce), cs, ce))
        prev_char = end_char
    if name == FALLBACK_TEMPLATE:
        bos = _bos_prefix(tokenizer)
        if bos:
            n = len(bos)
            ids = bos + ids
            spans = [MessageSpan(s.index, s.role, s.start + n if s.index else 0, s.end + n,
                                 s.content_start + n, s.content_end + n) for s in spans]
    return ChatRendering(text=text, input_ids=ids, spans=spans, template=name)


def has_prefix_property(tokenizer, messages: list[dict], *, chat_template: str | None = None
                        ) -> bool:
    """True if tokens(render(messages[:k])) is a prefix of tokens(render(messages)) for every k.

    When it holds, one causal forward over the whole conversation yields every snapshot exactly.
    """
    full = render_chat(tokenizer, messages, chat_template=chat_template).input_ids
    for k in range(1, len(messages)):
        part = render_chat(tokenizer, messages[:k], chat_template=chat_template).input_ids
        if full[: len(part)] != part:
            return False
    return True
