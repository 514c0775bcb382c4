"""The built-in models, converted from the GGUF files that ship on PyPI, answer correctly."""

import re
import threading

import pytest

from inference.engine import SamplingParams

pytestmark = pytest.mark.slow
SWAHILI_WORDS = {"na", "ya", "wa", "ni", "kwa", "za", "katika", "la", "kuwa", "cha", "hii", "watu", "nchi"}


def test_smollm2_knows_the_capital_of_tanzania(smollm):
    prompt = smollm.chat_prompt([{"role": "user", "content": "What is the capital of Tanzania?"}])
    generation = smollm.generate(prompt, SamplingParams(temperature=0, max_tokens=40))
    pieces = list(generation)
    assert "Dodoma" in generation.result.text
    assert generation.result.finish_reason == "stop"  # ended on <|im_end|>, which never leaks
    assert "<|im_end|>" not in generation.result.text and "".join(pieces) == generation.result.text


def test_gemma3_continues_swahili_in_swahili(gemma):
    prompt = gemma.text_prompt("Tanzania ni nchi iliyoko Afrika Mashariki. Watu wake wengi ni wakulima, na")
    result = gemma.generate(prompt, SamplingParams(temperature=0, max_tokens=40, repetition_penalty=1.2)).complete()
    words = re.findall(r"[a-z]+", result.text.lower())
    assert len(words) >= 10, result.text
    assert sum(word in SWAHILI_WORDS for word in words) / len(words) > 0.15, result.text


def test_gemma3_chat_framing_answers_in_swahili(gemma):
    prompt = gemma.chat_prompt([{"role": "user", "content": "Taja wanyama watatu wa porini."}],
                               system=gemma.card.default_system_prompt)
    generation = gemma.generate(prompt, SamplingParams(temperature=0, max_tokens=48, stop=tuple(gemma.card.stop)))
    text = "".join(generation)
    assert text.strip() and "Swali:" not in text
    assert generation.result.finish_reason in ("stop", "length")


def test_streaming_swahili_and_emoji_matches_the_final_text(smollm):
    prompt = smollm.chat_prompt([{"role": "user", "content": "Repeat exactly: Habari za asubuhi 😀🇹🇿 ñ"}])
    generation = smollm.generate(prompt, SamplingParams(temperature=0, max_tokens=40))
    pieces = list(generation)
    assert "".join(pieces) == generation.result.text
    ids = generation.result.token_ids
    assert smollm.tokenizer.decode(ids, skip_special_tokens=True).strip() == generation.result.text


def test_cancelling_a_real_generation_stops_within_one_token(gemma):
    stop = threading.Event()
    prompt = gemma.text_prompt("Hadithi ndefu ya simba na panya: Hapo zamani za kale")
    generation = gemma.generate(prompt, SamplingParams(temperature=0, max_tokens=200), cancel=stop)
    seen = 0
    for _ in generation:
        seen += 1
        if seen == 3:
            stop.set()
    assert generation.result.finish_reason == "cancelled"
    assert generation.result.completion_tokens <= 5


def test_the_same_seed_gives_the_same_answer(smollm):
    prompt = smollm.chat_prompt([{"role": "user", "content": "Tell me a very short story."}])
    params = SamplingParams(temperature=0.9, max_tokens=24, seed=7)
    first = smollm.generate(prompt, params).complete().text
    assert first and first == smollm.generate(prompt, params).complete().text


def test_model_cards_describe_the_builtin_models(real_models):
    cards = {card.name: card for card in real_models.list()}
    smol, gem = cards["smollm2-135m-instruct"], cards["gemma3-270m"]
    assert smol.kind == "instruct" and smol.license == "Apache-2.0" and smol.languages == ["en"]
    assert gem.kind == "base" and "sw" in gem.languages and "base model" in gem.description["en"]
    for card in (smol, gem):
        assert card.source["sha256"] and card.source["type"] == "package"
        assert card.size_on_disk_bytes < card.size_fp32_bytes / 2
        assert "{%" in card.chat_template
