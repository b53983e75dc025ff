"""Generate more emotion stories or neutral dialogues with any Hugging Face chat model.

Writes the project's stimulus schema (stimuli/loader.py) to a JSONL file, one line per finished
item, appended and flushed as it goes: an interrupted run resumes where it stopped (ids already in
the file are skipped) and nothing already written is ever replaced.

    uv run python scripts/generate_stories.py --model Qwen/Qwen2.5-7B-Instruct \
        --kind stories --language en --emotions happy sad --topics work home --out more.jsonl

Prompts are written for this project. Run it on a GPU for real use; it runs (tiny max length) on
the embedded model in the tests. Generated text is a first draft: screen it with
validation/lexical_screening.py and read it before using it as a stimulus.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmct.core.generation import generate_reply  # noqa: E402
from llmct.core.models import load_model  # noqa: E402
from stimuli.loader import load_jsonl, load_set  # noqa: E402

STORY_PROMPT = {
    "en": ("Write an original short story of about {words} words, in the third person, about a "
           "character who feels {emotion} throughout. Setting: {topic}. Show the feeling through "
           "what the character does, notices and says; keep it present until the last sentence. "
           "Reply with the story only."),
    "ja": ("「{topic}」を舞台に、登場人物が終始「{emotion}」という気持ちを抱いている短い物語を、"
           "三人称で約{chars}字の自然な日本語で書いてください。行動・知覚・台詞で気持ちを表し、"
           "最後の文までその気持ちが続くようにしてください。物語の本文だけを返してください。"),
}
DIALOGUE_PROMPT = {
    "en": ("Write a purely practical dialogue of 6 to 10 turns between two people, A and B, about "
           "{topic} (schedules, directions, how something works, prices). No feelings, opinions "
           "or emotional words. Format each turn on its own line as 'A: ...' or 'B: ...'."),
    "ja": ("「{topic}」について、AとBの二人が交わす6〜10往復の実務的な会話を書いてください"
           "（予定、道案内、使い方、料金など）。気持ちや感情を表す言葉は使わないでください。"
           "各行を「A: …」または「B: …」の形式にしてください。"),
}


def planned_items(kind: str, language: str, emotions, topics, n_per: int) -> list[dict]:
    """The (id, prompt, fields) of every item to generate, in a fixed order."""
    quadrant = {s.label: (s.valence, s.arousal) for s in load_set("stories", language="en")}
    items = []
    for topic in topics:
        for n in range(1, n_per + 1):
            if kind == "dialogues":
                items.append({"id": f"GN-{language}-{topic}-{n}", "label": "neutral",
                              "set": "neutral_dialogues", "topic": topic, "language": language,
                              "prompt": DIALOGUE_PROMPT[language].format(topic=topic)})
                continue
            for emotion in emotions:
                valence, arousal = quadrant.get(emotion, (None, None))
                prompt = STORY_PROMPT[language].format(emotion=emotion, topic=topic, words=180,
                                                       chars=300)
                items.append({"id": f"GS-{language}-{emotion}-{topic}-{n}", "label": emotion,
                              "set": "stories", "topic": topic, "language": language,
                              "valence": valence, "arousal": arousal, "prompt": prompt})
    return items


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--kind", choices=["stories", "dialogues"], default="stories")
    ap.add_argument("--language", choices=sorted(STORY_PROMPT), default="en")
    ap.add_argument("--emotions", nargs="+", default=None, help="default: the shipped 20")
    ap.add_argument("--topics", nargs="+", default=None, help="default: the shipped 8")
    ap.add_argument("--per", type=int, default=1, help="items per (emotion, topic)")
    ap.add_argument("--out", required=True, help="JSONL to append to (resumes)")
    ap.add_argument("--max-new-tokens", type=int, default=400)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    shipped = load_set("stories", language="en")
    emotions = args.emotions or sorted({s.label for s in shipped})
    topics = args.topics or sorted({s.topic for s in shipped})
    out = Path(args.out)
    done = {s.id for s in load_jsonl(out)} if out.exists() and out.stat().st_size else set()
    todo = [it for it in planned_items(args.kind, args.language, emotions, topics, args.per)
            if it["id"] not in done]
    print(f"{len(done)} already in {out}, {len(todo)} to generate")
    if not todo:
        return 0
    model, tok = load_model(args.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        for k, item in enumerate(todo):
            text = generate_reply(model, tok, [{"role": "user", "content": item.pop("prompt")}],
                                  max_new_tokens=args.max_new_tokens, do_sample=True,
                                  temperature=args.temperature, seed=args.seed + k)
            record = {"id": item.pop("id"), "text": text, **{k2: v for k2, v in item.items()
                                                            if v is not None}}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            print(f"[{k + 1}/{len(todo)}] {record['id']}: {text[:60]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
