"""Chat prompts that do not fit: trimmed at user turns by binary search (chat), or refused (API)."""

import math
import time

import pytest

from inference.engine import PromptBuilder
from inference.errors import PromptTooLong


def history(turns: int, *, system: str | None = "Be brief.") -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    for index in range(turns):
        messages += [{"role": "user", "content": f"habari {index}"}, {"role": "assistant", "content": "dunia dunia"}]
    return messages + [{"role": "user", "content": "the last one"}]


class CountingBuilder:
    """Counts the template renders a PromptBuilder does."""

    def __init__(self, builder: PromptBuilder):
        self.builder = builder
        self.renders = 0
        original = builder.render_chat

        def render_chat(messages):
            self.renders += 1
            return original(messages)

        builder.render_chat = render_chat


@pytest.fixture
def tiny_builder(tiny_engine):
    return PromptBuilder(tiny_engine.model_dir)


def linear_first_kept(builder: PromptBuilder, messages: list[dict], budget: int) -> int:
    """The reference: drop one turn at a time (the old algorithm)."""
    head, rest = messages[:1], messages[1:]
    for index, message in enumerate(rest):
        if message["role"] == "user" and len(builder.render_chat(head + rest[index:])) <= budget:
            return index
    return len(rest) - 1


def test_trimming_keeps_the_system_message_and_cuts_before_a_user_message(tiny_builder):
    messages = history(30)
    prompt = tiny_builder.chat_prompt(messages, max_tokens=32, trim=True)
    assert prompt.dropped_messages > 0
    kept = [messages[0], *messages[1 + prompt.dropped_messages:]]
    assert kept[1]["role"] == "user" and kept[-1]["content"] == "the last one"
    assert prompt.tokens == tiny_builder.render_chat(kept)
    budget = tiny_builder.context_length - 32
    assert prompt.length <= budget
    # As many turns as fit: the same cut as dropping one turn at a time.
    assert prompt.dropped_messages == linear_first_kept(tiny_builder, messages, budget)


def test_without_trim_a_chat_that_does_not_fit_is_refused(tiny_builder):
    with pytest.raises(PromptTooLong) as excinfo:
        tiny_builder.chat_prompt(history(30), max_tokens=32, trim=False)
    assert excinfo.value.prompt_tokens > tiny_builder.context_length


def test_without_trim_a_chat_that_fits_is_whole(tiny_builder):
    prompt = tiny_builder.chat_prompt(history(2), max_tokens=8, trim=False)
    assert prompt.dropped_messages == 0 and prompt.tokens == tiny_builder.render_chat(history(2))


def test_a_last_message_that_alone_leaves_no_room_is_refused_even_with_trim(tiny_builder):
    messages = [*history(3)[:-1], {"role": "user", "content": "habari " * 200}]
    with pytest.raises(PromptTooLong):
        tiny_builder.chat_prompt(messages, trim=True)


@pytest.mark.slow
def test_4000_messages_are_trimmed_with_a_logarithmic_number_of_renders(real_models):
    builder = PromptBuilder(real_models.path("smollm2-135m-instruct"))
    counter = CountingBuilder(builder)
    messages = history(2000)  # 4,002 messages
    started = time.perf_counter()
    prompt = builder.chat_prompt(messages, max_tokens=512, trim=True)
    elapsed = time.perf_counter() - started
    assert prompt.dropped_messages > 3000
    assert prompt.length <= builder.context_length - 512
    # One full render, then a binary search over 2,000 user turns.
    assert counter.renders <= 2 + math.ceil(math.log2(2000))
    assert elapsed < 10, elapsed  # was 5.5 minutes with one render per dropped turn
