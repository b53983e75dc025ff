"""Scoring the answer: which emotion an answer token names, and probability mass per emotion.

:class:`AnswerWords` maps an answer token to an emotion (the word list
``stimuli/emotion_words.json``, or any file of the same form) and, bound to a tokenizer
(:class:`AnswerScorer`), sums next-token probability mass per emotion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def default_words_path() -> Path:
    from llmct.io.stimuli import STIMULI_DIR

    return STIMULI_DIR / "emotion_words.json"


@dataclass
class AnswerWords:
    """Answer words per emotion and the rule that maps an answer token to an emotion.

    A token matches an emotion when its stripped, lower-cased text has >= ``min_prefix``
    characters and is a prefix of one of that emotion's words; a token matching several emotions
    is ambiguous and maps to none. :meth:`bind` precomputes, per emotion, the first tokens of its
    words (in ``forms``) that match it unambiguously: the tokens whose probability is its mass.
    """

    words: dict[str, tuple[str, ...]]
    min_prefix: int = 3
    forms: tuple[str, ...] = (" {word}", " {Word}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> AnswerWords:
        path = Path(path) if path else default_words_path()
        doc = json.loads(path.read_text(encoding="utf-8"))
        words = {e: tuple(w.strip().lower() for w in ws) for e, ws in doc["words"].items()}
        empty = [e for e, ws in words.items() if not ws]
        if empty:
            raise ValueError(f"{path}: no answer words for {empty}")
        return cls(words, int(doc.get("min_prefix", 3)), tuple(doc.get("forms", cls.forms)))

    @property
    def emotions(self) -> list[str]:
        return list(self.words)

    def matches(self, text: str) -> set[str]:
        t = text.strip().lower()
        if len(t) < self.min_prefix:
            return set()
        return {e for e, ws in self.words.items() if any(w.startswith(t) for w in ws)}

    def classify(self, text: str) -> str | None:
        """The emotion a token names, or None (no match, or ambiguous)."""
        found = self.matches(text)
        return next(iter(found)) if len(found) == 1 else None

    def bind(self, tokenizer: PreTrainedTokenizerBase) -> AnswerScorer:
        ids: dict[str, set[int]] = {e: set() for e in self.words}
        for e, ws in self.words.items():
            for w in ws:
                for form in self.forms:
                    toks = tokenizer(form.format(word=w, Word=w.capitalize()),
                                     add_special_tokens=False)["input_ids"]
                    # decode() of one id list is a str (annotated str | list[str], for batches)
                    if toks and self.classify(cast(str, tokenizer.decode([toks[0]]))) == e:
                        ids[e].add(int(toks[0]))
        missing = [e for e, s in ids.items() if not s]
        if missing:
            raise ValueError(f"no word of {missing} has a first token that names the emotion")
        return AnswerScorer(self, tokenizer, {e: sorted(s) for e, s in ids.items()})


@dataclass
class AnswerScorer:
    """:class:`AnswerWords` bound to a tokenizer: greedy answers and per-emotion mass of logits."""

    words: AnswerWords
    tokenizer: PreTrainedTokenizerBase
    mass_ids: dict[str, list[int]]
    _cache: dict[int, str | None] = field(default_factory=dict)

    @property
    def emotions(self) -> list[str]:
        return self.words.emotions

    def token_emotion(self, token_id: int) -> str | None:
        if token_id not in self._cache:
            text = cast(str, self.tokenizer.decode([int(token_id)]))  # one id list: a str
            self._cache[token_id] = self.words.classify(text)
        return self._cache[token_id]

    def greedy(self, logits: torch.Tensor) -> np.ndarray:
        return torch.as_tensor(logits).argmax(-1).cpu().numpy()

    def answers(self, logits: torch.Tensor) -> list[str | None]:
        """The emotion named by each row's greedy next token (None: no / ambiguous match)."""
        return [self.token_emotion(int(t)) for t in self.greedy(logits)]

    def mass(self, logits: torch.Tensor) -> np.ndarray:
        """``[N, n_emotions]``: softmax probability on each emotion's first tokens."""
        p = torch.softmax(torch.as_tensor(logits).float(), dim=-1)
        return torch.stack([p[:, self.mass_ids[e]].sum(-1) for e in self.emotions], 1).numpy()


__all__ = ["AnswerScorer", "AnswerWords", "default_words_path"]
