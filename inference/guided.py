"""Guided decoding: answers that follow a JSON schema, on CTranslate2 (which has no logits hook).

The grammar and its token masks come from llguidance (a JSON schema compiles to a grammar; an
`LLMatcher` follows the answer token by token and says which tokens may come next). CTranslate2
cannot mask logits while it decodes, so the answer is written in rounds:

1. Tokens the grammar forces (`compute_ff_tokens`: a fixed key, a closing brace) are taken
   without asking the model.
2. The model decodes freely (one `generate_batch` with its usual sampling settings), and a
   step callback checks every token against the matcher. While the model keeps to the grammar
   (the usual case once the prompt asks for JSON) nothing more is paid.
3. The first token the grammar refuses stops that decode. The model's log-probabilities for that
   position are read (`return_logits_vocab=True, max_length=1`, one prefill of the prompt plus
   the answer so far), the grammar's mask is applied, and the best allowed token is taken
   (greedy) or sampled from the allowed ones (temperature > 0). Then back to 1.

An end-of-turn token is allowed only where the grammar is complete, so the answer always ends
as valid JSON unless `max_tokens` cuts it (finish reason "length", as OpenAI does).

A guided answer runs on the engine's CTranslate2 generator directly, not in the batch
scheduler: its rounds stop and restart decoding at arbitrary points, which a shared batch
cannot do. It still shares the generator's replicas with the scheduler's batches.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import llguidance
import llguidance.numpy as llnumpy
import numpy as np

from inference.errors import InvalidParameter

# How the JSON is written: compact separators keep answers short; no free whitespace, which a
# small model would otherwise fill with newlines.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class Guide:
    """What a guided answer must follow: a grammar compiled from a JSON schema (llguidance's
    grammar text, checked when built)."""

    grammar: str
    schema: dict

    @classmethod
    def json_schema(cls, schema: dict | None) -> Guide:
        """A grammar for `schema` ({} or None: any JSON object). Raises InvalidParameter naming
        what llguidance cannot express (e.g. `Unimplemented keys: ["if", "then"]`)."""
        if schema is None or schema == {}:
            schema = {"type": "object"}
        if not isinstance(schema, dict):
            raise InvalidParameter("The JSON schema must be an object", param="response_format")
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(bounded_strings(schema)), defaults=JSON_OPTIONS)
        except ValueError as exc:
            raise InvalidParameter(f"The JSON schema is not valid: {exc}", param="response_format") from None
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
        if is_error:
            raise InvalidParameter(f"The JSON schema cannot be used: {messages[0]}", param="response_format")
        return cls(grammar=grammar, schema=schema)


# A small model asked for a string it cannot fill well writes prose into it and never closes
# it. Strings the schema leaves unbounded get this many characters at most: the answer still
# validates against the client's schema (a shorter string is as valid), and a client that
# wants longer strings says so with maxLength.
MAX_STRING_LENGTH = 256
MAX_NUMBER = 10**15


def bounded_strings(schema, limit: int = MAX_STRING_LENGTH):
    """`schema` with maxLength `limit` on every plain string that has no length, enum, const,
    pattern or format of its own (sub-schemas included)."""
    if isinstance(schema, list):
        return [bounded_strings(item, limit) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: bounded_strings(value, limit) if key not in ("enum", "const", "default", "examples") else value
               for key, value in schema.items()}
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not {"maxLength", "enum", "const", "pattern", "format"} & set(schema):
        bounded["maxLength"] = limit
    # Numbers too: a small model can write digits until max_tokens runs out. An integer or
    # number with no bounds of its own stays within ±10^15 (any such answer still validates).
    is_number = types in ("integer", "number") or (isinstance(types, list) and {"integer", "number"} & set(types))
    if is_number and not {"enum", "const"} & set(schema):
        if not {"maximum", "exclusiveMaximum"} & set(schema):
            bounded["maximum"] = MAX_NUMBER
        if not {"minimum", "exclusiveMinimum"} & set(schema):
            bounded["minimum"] = -MAX_NUMBER
    return bounded


_tokenizers: dict[str, llguidance.LLTokenizer] = {}
_tokenizers_lock = threading.Lock()


def guidance_tokenizer(tokenizer_json: Path, end_ids: list[int]) -> llguidance.LLTokenizer:
    """llguidance's view of a model's tokenizer (built once per model: about a second)."""
    key = f"{tokenizer_json}:{sorted(end_ids)}"
    with _tokenizers_lock:
        if key not in _tokenizers:
            _tokenizers[key] = llguidance.LLTokenizer(str(tokenizer_json), eos_token=sorted(end_ids))
        return _tokenizers[key]


@dataclass
class GuidedStats:
    """What guidance cost: decode rounds run and tokens the grammar chose instead of the model."""

    rounds: int = 0
    forced: int = 0
    corrected: int = 0


def guided_decode(
    generator,
    prompt: list[str],
    matcher: llguidance.LLMatcher,
    *,
    tokenizer: llguidance.LLTokenizer,
    id_to_token: Callable[[int], str],
    max_tokens: int,
    options: dict,
    emit: Callable[[int], None],
    should_stop: Callable[[], bool],
    rng: np.random.Generator | None = None,
) -> tuple[str, GuidedStats]:
    """Write an answer to `prompt` (tokens) that `matcher` accepts; `emit(token_id)` is called
    for every answer token in order. Returns (reason, stats): reason is "eos" (the grammar is
    complete), "length", "stopped" (should_stop() said so) or "error" (the matcher failed).

    options: generate_batch sampling options (sampling_topk/topp/temperature,
    repetition_penalty, end_token, suppress_sequences).
    """
    stats = GuidedStats()
    answer: list[int] = []
    eos_ids = set(tokenizer.eos_tokens)
    temperature = options.get("sampling_temperature", 1.0) if options.get("sampling_topk", 1) != 1 else 0.0

    # Every round starts again from the prompt: CTranslate2 keeps the prompt's state between
    # rounds when it is passed as a static prompt, so a round only reads the answer so far.
    cached = {"static_prompt": prompt[:-1]} if len(prompt) > 1 else {}
    prefix = prompt[-1:] if cached else prompt

    def take(token_id: int) -> None:
        if token_id not in eos_ids:
            answer.append(token_id)
            emit(token_id)

    while True:
        if matcher.is_error():
            return "error", stats
        if matcher.is_stopped():
            return "eos", stats
        if len(answer) >= max_tokens:
            return "length", stats
        if should_stop():
            return "stopped", stats
        forced = matcher.compute_ff_tokens()[: max_tokens - len(answer)]
        if forced:
            matcher.consume_tokens(forced)
            stats.forced += len(forced)
            for token_id in forced:
                take(token_id)
            continue
        # 2. Free decoding until the model leaves the grammar.
        refused: list[int] = []

        def on_step(step) -> bool:
            if should_stop() or refused:
                return True
            if matcher.try_consume_tokens([step.token_id]) != 1:
                refused.append(step.token_id)
                return True
            take(step.token_id)
            return matcher.is_stopped() or len(answer) >= max_tokens

        stats.rounds += 1
        generator.generate_batch(
            [prefix + [id_to_token(t) for t in answer]], max_length=max_tokens - len(answer), beam_size=1,
            include_prompt_in_result=False, callback=on_step, **cached, **options,
        )
        if not refused and not matcher.is_stopped() and len(answer) < max_tokens and not should_stop():
            refused.append(-1)  # ended without a token the grammar took: choose the next one here
        if not refused:
            continue
        # 3. The best token the grammar allows at this position.
        result = generator.generate_batch(
            [prefix + [id_to_token(t) for t in answer]], max_length=1, beam_size=1, include_prompt_in_result=False,
            return_logits_vocab=True, **cached, **{k: v for k, v in options.items() if k != "end_token"}, end_token=[],
        )
        scores = np.array(result[0].logits[0], dtype=np.float32).reshape(1, -1)
        allowed = np.zeros(scores.shape[1], dtype=bool)
        mask = _allowed(matcher, tokenizer.vocab_size)[: scores.shape[1]]
        allowed[: len(mask)] = mask
        scores[0, ~allowed] = -np.inf
        token_id = _choose(scores[0], temperature, rng)
        if not matcher.consume_token(token_id):
            return "error", stats
        stats.corrected += 1
        take(token_id)


def new_matcher(guide: Guide, tokenizer: llguidance.LLTokenizer) -> llguidance.LLMatcher:
    matcher = llguidance.LLMatcher(tokenizer, guide.grammar, log_level=0)
    if matcher.is_error():
        raise InvalidParameter(f"The JSON schema cannot be used: {matcher.get_error()}", param="response_format")
    return matcher


def _allowed(matcher: llguidance.LLMatcher, vocab_size: int) -> np.ndarray:
    bitmask = llnumpy.allocate_token_bitmask(1, vocab_size)
    llnumpy.fill_next_token_bitmask(matcher, bitmask)
    bits = np.unpackbits(bitmask.view(np.uint8), bitorder="little")
    return bits[:vocab_size].astype(bool)


def _choose(scores: np.ndarray, temperature: float, rng: np.random.Generator | None) -> int:
    if temperature <= 0:
        return int(np.argmax(scores))
    logits = scores / temperature
    logits -= logits.max()
    weights = np.exp(logits)
    weights /= weights.sum()
    return int((rng or np.random.default_rng()).choice(len(weights), p=weights))
