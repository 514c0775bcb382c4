"""Structured output on the built-in instruct model: 20 JSON schemas x prompts, guided vs unguided.

    python -m benchmarks.guided [--model smollm2-135m-instruct] [--runs 1]

Prints, per schema, whether the guided answer parses and validates, its tokens and time, and
the unguided answer's (the same prompt with the schema instruction, not guided); then the
totals: validity rate and tokens/s of both.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jsonschema

from inference.engine import Engine, SamplingParams
from inference.guided import Guide

S, I, N, B = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}


def obj(required: bool = True, **properties) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties) if required else [],
            "additionalProperties": False}


CASES: list[tuple[str, dict]] = [
    ("Describe a person called Amina who is 31.", obj(name=S, age=I)),
    ("Describe the city of Mombasa.", obj(name=S, country=S, population=I, coastal=B)),
    ("Give a recipe for chapati.", obj(title=S, ingredients={"type": "array", "items": S, "minItems": 2}, minutes=I)),
    ("Classify the sentiment of: 'I love this phone'.", obj(sentiment={"enum": ["positive", "negative", "neutral"]})),
    ("What is 12 times 7?", obj(answer=I)),
    ("Name three East African countries.", obj(countries={"type": "array", "items": S, "minItems": 3,
                                                          "maxItems": 3})),
    ("Describe a book you like.", obj(title=S, author=S, year={"type": "integer", "minimum": 1000, "maximum": 2100})),
    ("Give the coordinates of Nairobi.", obj(latitude=N, longitude=N)),
    ("Make a to-do list for a school day.", obj(items={"type": "array", "items": obj(task=S, done=B),
                                                       "maxItems": 4})),
    ("Describe a product for an online shop.", obj(name=S, price={"type": "number", "minimum": 0},
                                                   tags={"type": "array", "items": S, "maxItems": 3})),
    ("Extract the date from: 'We met on 3 March 2021'.", obj(day=I, month=S, year=I)),
    ("Is the sky green?", obj(answer=B, reason={"type": "string", "maxLength": 80})),
    ("Give a user profile.", obj(username={"type": "string", "pattern": "^[a-z]{3,12}$"}, email=S)),
    ("Describe the weather today.", obj(temperature_c=N, condition={"enum": ["sunny", "cloudy", "rainy"]})),
    ("Summarise: 'The lion slept under the tree all afternoon.'", obj(summary={"type": "string", "maxLength": 100})),
    ("Give a translation of 'good morning' into Swahili.", obj(english=S, swahili=S)),
    ("Describe a company.", obj(name=S, address=obj(street=S, city=S), employees=I)),
    ("List two animals and their legs.", obj(animals={"type": "array", "items": obj(name=S, legs=I),
                                                      "minItems": 2, "maxItems": 2})),
    ("Rate a film from 1 to 5.", obj(film=S, stars={"type": "integer", "minimum": 1, "maximum": 5})),
    ("Give any JSON object about football.", {"type": "object"}),
]


def instruction(schema: dict) -> str:
    return "Answer with one JSON value and nothing else. It must follow this JSON schema: " + json.dumps(schema)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--models-dir", default="var/models")
    parser.add_argument("--temperature", type=float, default=0.0)
    args = parser.parse_args()
    engine = Engine.load(Path(args.models_dir) / args.model, device="cpu")
    params = SamplingParams(temperature=args.temperature, max_tokens=200)
    totals = {"guided": [0, 0.0, 0], "unguided": [0, 0.0, 0]}
    try:
        # Warm up: the first guided answer builds llguidance's tokenizer (about a second).
        engine.generate(engine.chat_prompt([{"role": "user", "content": "hi"}]), params,
                        guide=Guide.json_schema({"type": "object"})).complete()
        for question, schema in CASES:
            messages = [{"role": "system", "content": instruction(schema)}, {"role": "user", "content": question}]
            prompt = engine.chat_prompt(messages)
            row = []
            for name, guide in (("guided", Guide.json_schema(schema)), ("unguided", None)):
                started = time.perf_counter()
                result = engine.generate(prompt, params, guide=guide).complete()
                elapsed = time.perf_counter() - started
                try:
                    jsonschema.validate(json.loads(result.text), schema)
                    valid = 1
                except (ValueError, jsonschema.ValidationError):
                    valid = 0
                total = totals[name]
                total[0] += result.completion_tokens
                total[1] += elapsed
                total[2] += valid
                row.append(f"{name}: {'ok ' if valid else 'BAD'} {result.completion_tokens:3d} tok {elapsed:5.2f}s "
                           f"{result.finish_reason:6s}")
            print(f"{question[:40]:40s} | " + " | ".join(row))
    finally:
        engine.close()
    for name, (tokens, seconds, valid) in totals.items():
        print(f"{name:9s}: {valid}/{len(CASES)} valid, {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s")


if __name__ == "__main__":
    main()
