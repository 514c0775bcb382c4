"""Swahili question answering: accuracy of each installed model on simple questions.

    python benchmarks/swahili_qa.py [--models-dir var/models] [--models NAME ...]
                                    [--temperature 0] [--max-tokens 48] [--show]

Each question of tests/data/swahili_qa.json is asked the way the chat asks it: the model's
default system prompt, then the question, rendered with the model card's chat template and
stop strings. An answer is right when its first line contains one of the accepted answers as
a whole word (case and punctuation ignored). Prints accuracy per model; --show prints every
answer. With a temperature above 0, each question is asked with a fixed seed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.engine import Engine, SamplingParams  # noqa: E402
from inference.registry import ModelStore  # noqa: E402

QUESTIONS = ROOT / "tests" / "data" / "swahili_qa.json"


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return json.loads(path.read_text(encoding="utf8"))["questions"]


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    return " ".join(re.sub(r"[^\w' ]+", " ", text).split())


def is_right(answer: str, accepted: list[str]) -> bool:
    first_line = next((line for line in answer.strip().splitlines() if line.strip()), "")
    said = f" {normalize(first_line)} "
    return any(f" {normalize(option)} " in said for option in accepted)


def ask(engine: Engine, question: str, *, temperature: float, max_tokens: int, seed: int) -> str:
    messages = []
    if engine.card.default_system_prompt:
        messages.append({"role": "system", "content": engine.card.default_system_prompt})
    messages.append({"role": "user", "content": question})
    prompt = engine.chat_prompt(messages, max_tokens=max_tokens)
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens, stop=tuple(engine.card.stop),
                            seed=seed if temperature > 0 else None)
    return engine.generate(prompt, params).complete().text


def evaluate(engine: Engine, questions: list[dict], *, temperature: float = 0.0, max_tokens: int = 48,
             workers: int = 8) -> list[tuple[dict, str, bool]]:
    """Ask every question (in parallel: the engine batches them); (question, answer, right) each."""
    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(
            lambda item: ask(engine, item[1]["q"], temperature=temperature, max_tokens=max_tokens, seed=item[0]),
            enumerate(questions),
        ))
    return [(q, a, is_right(a, q["answers"])) for q, a in zip(questions, answers, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--show", action="store_true", help="print every question and answer")
    args = parser.parse_args()

    questions = load_questions()
    store = ModelStore(args.models_dir)
    cards = [card for card in store.list() if not args.models or card.name in args.models]
    if not cards:
        sys.exit(f"No installed models in {args.models_dir}")
    print(f"{len(questions)} questions, temperature {args.temperature}, max {args.max_tokens} tokens")
    for card in cards:
        engine = Engine(store.path(card.name), device="cpu")
        try:
            results = evaluate(engine, questions, temperature=args.temperature, max_tokens=args.max_tokens)
        finally:
            engine.close()
        right = sum(ok for _q, _a, ok in results)
        if args.show:
            for question, answer, ok in results:
                print(f"  {'✓' if ok else '✗'} {question['q']} → {' '.join(answer.split())[:80]}")
        print(f"{card.name:28} {card.kind:9} {right}/{len(results)}  {100 * right / len(results):.0f} %")


if __name__ == "__main__":
    main()
