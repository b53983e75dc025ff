"""Prompt templates for stimulus extraction, written for this project.

Every stimulus of a set is wrapped in the *same* template so activations differ only by the
stimulus. The default (``fewshot``) is a 2-shot emotion-inference prompt whose read-out is its
final token (the ':' after 'Emotion'), where the model is about to name the emotion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmct.errors import CaptureError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from llmct.core.positions import PositionSpec
    from llmct.core.prefix import SharedPrefix
    from llmct.core.runner import Tokenizer

FEWSHOT_EXAMPLES = (
    (
        "The bus was forty minutes late again, and when it finally came the driver waved me "
        "off. I kicked the shelter and shouted after it until my throat hurt.",
        "anger",
    ),
    (
        "She read the acceptance letter three times, laughed out loud in the empty kitchen, "
        "and phoned everyone she knew before she had even taken off her coat.",
        "joy",
    ),
)
INSTRUCTION = "Read each passage and name the emotion it conveys in one word."


def fewshot_prompt(text: str, examples=FEWSHOT_EXAMPLES) -> str:
    shots = "".join(f"Passage: {p}\nEmotion: {label}\n\n" for p, label in examples)
    return f"{INSTRUCTION}\n\n{shots}Passage: {text.strip()}\nEmotion:"


def zeroshot_prompt(text: str) -> str:
    return fewshot_prompt(text, examples=())


PROMPT_MODES = {
    "fewshot": "2-shot emotion-inference prompt; read-out at its final token",
    "zeroshot": "the same prompt without the examples; read-out at its final token",
    "raw": "the stimulus text alone; read-out at its last token",
    "mean": "the stimulus text alone; mean over its tokens",
    "chat": "the stimulus as a user message in the model's chat template; read-out at the last "
    "token of the message content",
}


def template_prefix(tokenizer: Tokenizer | None, mode: str) -> str | list[int] | None:
    """The start every prompt of ``mode`` shares, for :class:`llmct.core.prefix.SharedPrefix`:
    the text before the stimulus (``fewshot``, ``zeroshot``), cut before the whitespace that
    joins it to the stimulus (a tokenizer attaches that space to the stimulus's first word), or
    the chat template's token ids before the user message's content (``chat``); None for
    ``raw`` and ``mean`` (nothing shared). Whether a prompt's tokens really begin with these
    is checked per item by the capture (items that do not are run whole).

    Raises:
        CaptureError: an unknown mode.
    """
    if mode in ("fewshot", "zeroshot"):
        marker = "\x00"
        wrap = fewshot_prompt if mode == "fewshot" else zeroshot_prompt
        return wrap(marker).split(marker)[0].rstrip()
    if mode == "chat":
        from llmct.core.chat import render_chat

        render = render_chat(tokenizer, [{"role": "user", "content": "x"}])
        return render.input_ids[: render.spans[-1].content_start]
    if mode in PROMPT_MODES:
        return None
    raise CaptureError(f"unknown prompt mode {mode!r}; choose from {sorted(PROMPT_MODES)}")


def shared_prefix_cache(model: PreTrainedModel, tokenizer: Tokenizer, mode: str
                        ) -> SharedPrefix | None:
    """The KV cache of the start every prompt of ``mode`` shares (:func:`template_prefix`, run
    once), or None for modes that share nothing. Raises CaptureError for an unknown mode."""
    from llmct.core.prefix import SharedPrefix

    prefix = template_prefix(tokenizer, mode)
    return None if prefix is None else SharedPrefix.build(model, tokenizer, prefix)


def build_inputs(tokenizer: Tokenizer | None, texts: list[str], mode: str
                 ) -> tuple[list, PositionSpec]:
    """``(inputs, position)`` for :func:`llmct.core.capture` under a prompt mode."""
    if mode == "fewshot":
        return [fewshot_prompt(t) for t in texts], "last"
    if mode == "zeroshot":
        return [zeroshot_prompt(t) for t in texts], "last"
    if mode == "raw":
        return list(texts), "last"
    if mode == "mean":
        return list(texts), "mean"
    if mode == "chat":
        from llmct.core.chat import render_chat

        renders = [render_chat(tokenizer, [{"role": "user", "content": t}]) for t in texts]
        return [r.input_ids for r in renders], [[r.spans[-1].content_last] for r in renders]
    raise CaptureError(f"unknown prompt mode {mode!r}; choose from {sorted(PROMPT_MODES)}")
