"""Lexical screening of the stimulus sets: a text-only check of the "keyword-free" claim.

Why: if Set B (keyword-free vignettes) could be told apart from its neutral controls by
emotion words alone, a probe on model activations might just be spotting keywords. This
module measures, per stimulus,

1. explicit emotion terms -- words that NAME an emotion or mood, from the curated list
   ``validation/emotion_terms.json`` (exact terms + derived-form stems, minus an allow-list);
2. affect-association density -- the fraction of word tokens that the NRC Emotion Lexicon
   (the copy shipped inside the ``nrclex`` package, read directly as JSON: no NLTK/TextBlob
   download) associates with any of the 8 Plutchik emotions; and VADER compound valence;

and compares the sets with two-sided Mann-Whitney U tests.

CLI: ``python validation/lexical_screening.py [--out DIR] [--sets NAME ...]`` writes
``lexical_screening.csv`` (one row per stimulus), ``lexical_comparisons.csv`` and
``summary.md`` to ``validation/outputs/`` by default.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stimuli.loader import EMOTIONS, SET_FILES, STIMULI_DIR, Stimulus, load_set  # noqa: E402

HERE = Path(__file__).resolve().parent
TERMS_PATH = HERE / "emotion_terms.json"
DEFAULT_OUT = HERE / "outputs"

#: English sets screened by default (stories/dialogues are bilingual and not keyword-free).
DEFAULT_SETS = ("set_a", "set_b", "set_b_control", "set_c")

#: (first, second, metric) for every Mann-Whitney comparison written by compare().
COMPARISONS: tuple[tuple[str, str, str], ...] = tuple(
    (a, b, metric)
    for a, b in (
        ("set_a", "set_b"),
        ("set_b", "set_b_control"),
        ("set_b", "set_c"),
        ("set_b_control", "set_c"),
    )
    for metric in ("nrc_density", "n_explicit")
) + (("set_b", "set_b_control", "n_words"),)

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters, with internal apostrophes: "don't" is one word)."""
    return _TOKEN_RE.findall(text.lower().replace("\u2019", "'"))


def _base(token: str) -> str:
    """Drop a possessive/contraction tail ("fear's" -> "fear") for lexicon look-ups."""
    return token.split("'", 1)[0]


# --------------------------------------------------------------------------- explicit terms


@dataclass(frozen=True)
class EmotionTerms:
    """The curated explicit-term list: exact terms (with their family), stems, allow-list."""

    family: dict[str, str]  # term -> emotion family
    stems: tuple[str, ...]
    allow: frozenset[str]

    def matches(self, token: str) -> bool:
        """True if the token names an emotion: equals a term or starts with a stem."""
        token = _base(token.lower())
        if not token or token in self.allow:
            return False
        return token in self.family or token.startswith(self.stems)


@lru_cache(maxsize=4)
def load_terms(path: str | Path = TERMS_PATH) -> EmotionTerms:
    """Read and sanity-check ``emotion_terms.json``."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    family: dict[str, str] = {}
    for fam, words in doc["terms"].items():
        for w in words:
            if w != w.lower() or not _TOKEN_RE.fullmatch(w):
                raise ValueError(f"{path}: term {w!r} ({fam}) is not a lower-case word")
            family.setdefault(w, fam)
    stems = tuple(doc.get("stems", ()))
    for s in stems:
        if s != s.lower() or len(s) < 4:
            raise ValueError(f"{path}: stem {s!r} must be lower-case and >= 4 letters")
    allow = doc.get("allow", {})
    for word, why in allow.items():
        if not str(why).strip():
            raise ValueError(f"{path}: allow-list entry {word!r} has no justification")
    return EmotionTerms(family=family, stems=stems, allow=frozenset(allow))


def explicit_terms(text: str, terms: EmotionTerms | None = None) -> list[str]:
    """The explicit emotion-naming words in ``text`` (lower-case, in order, with repeats)."""
    terms = terms or load_terms()
    return [_base(t) for t in tokenize(text) if terms.matches(t)]


# --------------------------------------------------------------------------- NRC and VADER


@lru_cache(maxsize=1)
def load_nrc() -> dict[str, frozenset[str]]:
    """NRC word -> the subset of the 8 emotions it is associated with (words with none dropped).

    Read straight from the JSON file that ships inside the ``nrclex`` package; NRCLex()
    itself would pull in TextBlob and need NLTK corpora downloaded.
    """
    ref = resources.files("nrclex").joinpath("data", "nrc_en.json")
    raw: dict[str, list[str]] = json.loads(ref.read_text(encoding="utf-8"))
    emotions = set(EMOTIONS)
    lex = {w.lower(): frozenset(a) & emotions for w, a in raw.items()}
    return {w: e for w, e in lex.items() if e}


def nrc_emotions(token: str) -> frozenset[str]:
    """Emotions the NRC lexicon gives a token; plural nouns fall back to the singular.

    NRCLex lemmatises with WordNet's default (noun) lemmatizer, i.e. it mainly strips
    plurals; this mimics that without NLTK (``-ies``->``-y``, ``-es``, ``-s``).
    """
    lex = load_nrc()
    token = _base(token)
    if token in lex:
        return lex[token]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if token.endswith(suffix) and len(token) - len(suffix) >= 3 and not token.endswith("ss"):
            cand = token[: -len(suffix)] + repl
            if cand in lex:
                return lex[cand]
    return frozenset()


def nrc_density(tokens: list[str]) -> float:
    """Fraction of tokens associated with at least one of the 8 emotions (NaN if no tokens)."""
    if not tokens:
        return float("nan")
    return sum(1 for t in tokens if nrc_emotions(t)) / len(tokens)


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_compound(text: str) -> float:
    """VADER compound valence in [-1, 1]."""
    return float(_vader().polarity_scores(text)["compound"])


# --------------------------------------------------------------------------- screening


def _records(stimuli: Iterable[Stimulus] | pd.DataFrame) -> list[dict]:
    if isinstance(stimuli, pd.DataFrame):
        return stimuli.to_dict("records")
    return [{"id": s.id, "set": s.set, "label": s.label, "text": s.text} for s in stimuli]


def screen(stimuli: Iterable[Stimulus] | pd.DataFrame) -> pd.DataFrame:
    """One row per stimulus: id, set, label, n_words, n_explicit, explicit_terms,
    nrc_density, vader_compound. Accepts Stimulus objects or a frame with those columns."""
    terms = load_terms()
    rows = []
    for r in _records(stimuli):
        tokens = tokenize(r["text"])
        found = [_base(t) for t in tokens if terms.matches(t)]
        rows.append(
            {
                "id": r["id"],
                "set": r["set"],
                "label": r["label"],
                "n_words": len(tokens),
                "n_explicit": len(found),
                "explicit_terms": ";".join(found),
                "nrc_density": nrc_density(tokens),
                "vader_compound": vader_compound(r["text"]),
            }
        )
    cols = ["id", "set", "label", "n_words", "n_explicit", "explicit_terms", "nrc_density",
            "vader_compound"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def compare(df: pd.DataFrame, comparisons=COMPARISONS) -> pd.DataFrame:
    """Two-sided Mann-Whitney U for each (set1, set2, metric) whose sets are both in ``df``.

    ``rank_biserial`` = 2*U1/(n1*n2) - 1: +1 when every set1 value exceeds every set2 value.
    """
    rows = []
    for a, b, metric in comparisons:
        x = df.loc[df["set"] == a, metric].dropna().to_numpy(float)
        y = df.loc[df["set"] == b, metric].dropna().to_numpy(float)
        if len(x) == 0 or len(y) == 0:
            continue
        res = mannwhitneyu(x, y, alternative="two-sided")
        rows.append(
            {
                "set1": a,
                "set2": b,
                "metric": metric,
                "n1": len(x),
                "n2": len(y),
                "mean1": x.mean(),
                "mean2": y.mean(),
                "median1": float(np.median(x)),
                "median2": float(np.median(y)),
                "U": float(res.statistic),
                "p": float(res.pvalue),
                "rank_biserial": 2 * float(res.statistic) / (len(x) * len(y)) - 1,
            }
        )
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, comp: pd.DataFrame) -> str:
    """A short Markdown summary: per-set descriptives, comparisons, offenders in Set B."""
    lines = ["# Lexical screening of the stimulus sets", ""]
    lines += [
        "Explicit terms: validation/emotion_terms.json. NRC density: share of word tokens the "
        "NRC Emotion Lexicon links to any of the 8 Plutchik emotions. VADER: compound valence. "
        "Tests: two-sided Mann-Whitney U.",
        "",
        "| set | n | words (mean) | explicit/item (mean) | items with explicit | NRC density (median) | VADER (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, g in df.groupby("set", sort=False):
        lines.append(
            f"| {name} | {len(g)} | {g.n_words.mean():.1f} | {g.n_explicit.mean():.2f} | "
            f"{(g.n_explicit > 0).sum()} | {g.nrc_density.median():.3f} | "
            f"{g.vader_compound.mean():+.2f} |"
        )
    if len(comp):
        lines += [
            "",
            "| comparison | metric | median1 | median2 | mean1 | mean2 | U | p | r_rb |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in comp.itertuples():
            lines.append(
                f"| {r.set1} vs {r.set2} | {r.metric} | {r.median1:.3f} | {r.median2:.3f} | "
                f"{r.mean1:.3f} | {r.mean2:.3f} | {r.U:.0f} | {r.p:.2g} | {r.rank_biserial:+.2f} |"
            )
    bad = df[df["set"].isin(["set_b", "set_b_control"]) & (df.n_explicit > 0)]
    lines += ["", f"Set B / control items with explicit emotion terms: {len(bad)}"]
    lines += [f"- {r.id}: {r.explicit_terms}" for r in bad.itertuples()]
    return "\n".join(lines) + "\n"


def write_outputs(df: pd.DataFrame, comp: pd.DataFrame, out: str | Path) -> Path:
    """Write lexical_screening.csv, lexical_comparisons.csv and summary.md under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "lexical_screening.csv", index=False)
    comp.to_csv(out / "lexical_comparisons.csv", index=False)
    (out / "summary.md").write_text(summarize(df, comp), encoding="utf-8")
    return out


def available_sets(names: Iterable[str] = DEFAULT_SETS) -> list[str]:
    """The given set names whose files all exist."""
    return [n for n in names if all((STIMULI_DIR / f).is_file() for f in SET_FILES[n])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: %(default)s)")
    ap.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), choices=sorted(SET_FILES),
                    help="sets to screen (default: %(default)s); missing files are skipped")  # fmt: skip
    args = ap.parse_args(argv)
    names = available_sets(args.sets)
    for n in sorted(set(args.sets) - set(names)):
        print(f"skipping {n}: file(s) not found", file=sys.stderr)
    if not names:
        print("no stimulus files found", file=sys.stderr)
        return 1
    stimuli = [s for n in names for s in load_set(n)]
    df = screen(stimuli)
    comp = compare(df)
    out = write_outputs(df, comp, args.out)
    print(summarize(df, comp))
    print(f"wrote {out}/lexical_screening.csv, lexical_comparisons.csv, summary.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
