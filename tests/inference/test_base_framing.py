"""The base model's framing picks its worked examples by the kind of request (answer-length control)."""

import pytest

from inference.builtin import GEMMA_BASE_EXAMPLES, GEMMA_BASE_LONG_EXAMPLES, GEMMA_BASE_TEMPLATE
from inference.text import render_chat_template

SYSTEM = {"role": "system", "content": "Wewe ni PAWA."}


def render(*messages: dict) -> str:
    return render_chat_template(GEMMA_BASE_TEMPLATE, [SYSTEM, *messages], bos_token="<bos>")


def examples_in(text: str) -> tuple[bool, bool]:
    """(short examples shown, long examples shown)."""
    return (GEMMA_BASE_EXAMPLES[0][1] in text, GEMMA_BASE_LONG_EXAMPLES[0][1] in text)


def test_a_question_is_framed_with_short_answers():
    text = render({"role": "user", "content": "Mji mkuu wa Kenya ni upi?"})
    assert examples_in(text) == (True, False)
    assert text.startswith("<bos>Wewe ni PAWA.\n\nSwali: ")
    assert text.endswith("Swali: Mji mkuu wa Kenya ni upi?\nJibu:")


@pytest.mark.parametrize("request_text", [
    "Niandikie hadithi kuhusu sungura na kobe.", "  Eleza faida za kunywa maji.", "Kwa nini anga ni la buluu?",
    "Write a short story about a lion.", "Explain how rain forms.",
])
def test_a_request_for_a_longer_text_is_framed_with_answers_of_several_sentences(request_text):
    text = render({"role": "user", "content": request_text})
    assert examples_in(text) == (False, True)
    assert text.endswith(f"Swali: {request_text}\nJibu:")


def test_the_latest_message_decides_in_a_conversation():
    story = {"role": "user", "content": "Niandikie hadithi kuhusu sungura."}
    answer = {"role": "assistant", "content": "Sungura alikimbia."}
    assert examples_in(render(story, answer, {"role": "user", "content": "Sungura ana miguu mingapi?"})) == (True, False)
    assert examples_in(render({"role": "user", "content": "Habari?"}, answer, story)) == (False, True)
