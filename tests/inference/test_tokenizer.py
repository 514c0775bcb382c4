"""Tokenizers built from GGUF vocabularies: round trips and incremental decoding."""

import pytest
from tokenizers import Tokenizer

from inference.text import IncrementalDecoder

TEXTS = [
    "Habari ya asubuhi! Jina langu ni Amani.",
    "Mwalimu alisema: “Soma kwa bidii” — kisha akaondoka.",
    "Emoji: 😀🎉🇹🇿 na herufi ñ, é, ß, 中文.",
    "  spaces   between\n\nparagraphs\tand tabs ",
    "",
]


@pytest.fixture(params=["llama", "gemma3"])
def tokenizer(request, tiny_models):
    return Tokenizer.from_file(str(tiny_models[request.param]["int8"] / "tokenizer.json"))


@pytest.mark.parametrize("text", TEXTS)
def test_it_round_trips_text(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


@pytest.mark.parametrize("text", TEXTS)
def test_streamed_pieces_equal_the_final_decode(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.add(token_id) for token_id in ids]
    pieces.append(decoder.flush())
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert not any("\ufffd" in piece for piece in pieces)


def test_multibyte_characters_wait_for_all_their_bytes(tiny_models):
    tokenizer = Tokenizer.from_file(str(tiny_models["gemma3"]["int8"] / "tokenizer.json"))
    ids = tokenizer.encode("😀", add_special_tokens=False).ids
    assert len(ids) == 4  # byte fallback: one token per UTF-8 byte
    decoder = IncrementalDecoder(tokenizer)
    assert [decoder.add(i) for i in ids] == ["", "", "", "😀"]


def test_special_tokens_are_atomic_and_hidden(tiny_models):
    tokenizer = Tokenizer.from_file(str(tiny_models["llama"]["int8"] / "tokenizer.json"))
    encoded = tokenizer.encode("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False)
    assert encoded.tokens[0] == "<|im_start|>" and encoded.tokens[-1] == "<|im_end|>"
    assert tokenizer.decode(encoded.ids, skip_special_tokens=True) == "user\nhi"


def test_sentencepiece_merges_come_from_scores(tiny_models):
    tokenizer = Tokenizer.from_file(str(tiny_models["gemma3"]["int8"] / "tokenizer.json"))
    assert tokenizer.encode(" habari dunia", add_special_tokens=False).tokens == ["▁habari", "▁dunia"]
