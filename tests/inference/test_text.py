import pytest

from inference.errors import ModelError
from inference.text import StopMatcher, render_chat_template

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_it_renders_a_chat_template():
    text = render_chat_template(CHATML, [{"role": "system", "content": "Kuwa mfupi."},
                                         {"role": "user", "content": "Habari?"}])
    assert text == "<|im_start|>system\nKuwa mfupi.<|im_end|>\n<|im_start|>user\nHabari?<|im_end|>\n<|im_start|>assistant\n"


def test_templates_run_in_a_sandbox():
    with pytest.raises(Exception) as excinfo:
        render_chat_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", [])
    assert "unsafe" in str(excinfo.value).lower() or isinstance(excinfo.value, ModelError)


def test_template_errors_are_model_errors():
    with pytest.raises(ModelError, match="chat template"):
        render_chat_template("{{ raise_exception('Roles must alternate') }}", [])


def feed_all(matcher, pieces):
    return "".join(matcher.feed(p) for p in pieces) + matcher.flush()


def test_a_stop_string_split_across_pieces_is_cut_and_never_leaks():
    matcher = StopMatcher(["\nSwali:"])
    out = feed_all(matcher, ["Nairobi ni", " mji.", "\nSw", "ali:", " Je"])
    assert out == "Nairobi ni mji."
    assert matcher.stopped


def test_text_that_only_looks_like_a_stop_start_is_released():
    matcher = StopMatcher(["END"])
    pieces = ["The E", "NGINE", " is fine"]
    released = [matcher.feed(p) for p in pieces]
    assert released[0] == "The "  # "E" is held: it could start "END"
    assert "".join(released) + matcher.flush() == "The ENGINE is fine"
    assert not matcher.stopped


def test_the_earliest_of_several_stop_strings_wins():
    matcher = StopMatcher(["world", "lo w"])
    assert feed_all(matcher, ["hello world"]) == "hel"
