"""An adapted model's examples found again at answer time (inference/retrieval.py) and placed in
its prompts (PromptBuilder.retrieved_context)."""

import json
from pathlib import Path

import pytest

from inference.adapt import fact_found, load_examples
from inference.card import ModelCard
from inference.engine import PromptBuilder
from inference.registry import ModelStore
from inference.retrieval import ExampleIndex, Pair, last_question, terms
from tests.inference.tiny import write_tiny_gguf

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def clinic() -> ExampleIndex:
    return ExampleIndex([Pair(e.question, e.answer) for e in load_examples(DATA / "clinic_sw.jsonl")])


def test_terms_group_numbers_and_keep_word_stems():
    assert terms("Piga 0754 321 987!") == ["piga", "0754321987"]
    assert terms("Shilingi 10,000.") == ["shilingi", "shili~", "~lingi", "10000"]
    # Swahili verbs share stems across prefixes: "anayeshughulikia" and "kushughulikia".
    assert "~ulikia" not in terms("anayeshughulikia") and "~likia" in terms("anayeshughulikia")
    assert set(terms("anayeshughulikia")) & set(terms("kushughulikia"))


@pytest.mark.parametrize("name", ["clinic_sw_heldout.jsonl", "clinic_sw_dev.jsonl"])
def test_rephrased_questions_find_the_example_that_holds_their_fact(clinic, name):
    questions = load_examples(DATA / name, heldout=True)
    found = [any(fact_found(clinic.pairs[i].answer, q.expected) for i in clinic.search(q.question, 3)) for q in questions]
    # Measured: 10/10 of the held-out and 10/12 of the development questions.
    assert sum(found) >= len(found) - 2, [q.question for q, ok in zip(questions, found, strict=True) if not ok]


def test_general_questions_mostly_get_no_context(clinic):
    import json

    # "mkuu" (head doctor / capital city) is a word of the clinic's, but one word of five is a
    # weak match: no context, so the answer is not a clinic fact.
    assert clinic.search("Mji mkuu wa Kenya ni upi?", 3) == []
    questions = json.loads((DATA / "swahili_qa.json").read_text())["questions"]
    given = [q["q"] for q in questions if clinic.search(q["q"], 3)]
    assert len(given) <= 8, given  # measured: 6 of 50


def test_an_unrelated_question_gets_no_context_and_a_left_out_example_is_never_given(clinic):
    assert clinic.search("What is the capital of France?", 3) == []
    best = clinic.search("Ultrasound inagharimu kiasi gani?", 3)
    assert len(best) == 3 and clinic.pairs[best[0]].question == "Ultrasound inagharimu kiasi gani?"
    again = clinic.search("Ultrasound inagharimu kiasi gani?", 3, exclude=frozenset({best[0]}))
    assert best[0] not in again and again[0] == best[1]
    turns = clinic.context("Ultrasound inagharimu kiasi gani?", 2)
    assert [t["role"] for t in turns] == ["user", "assistant"] * 2
    assert turns[-1]["content"] == "Ultrasound ni shilingi 25,000."  # the nearest, next to the question


def test_the_index_survives_a_round_trip(clinic, tmp_path):
    clinic.save(tmp_path / "examples.jsonl")
    again = ExampleIndex.load(tmp_path / "examples.jsonl")
    assert again.pairs == clinic.pairs
    assert again.search("bei ya ultrasound", 2) == clinic.search("bei ya ultrasound", 2)


def test_last_question_reads_text_parts():
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "bei"}, {"type": "text", "text": "ngapi"}]}]
    assert last_question(messages) == "bei ngapi"
    assert last_question([{"role": "system", "content": "x"}]) == ""


@pytest.fixture
def tiny_with_examples(tmp_path) -> Path:
    write_tiny_gguf(tmp_path / "tiny.gguf", "llama")
    store = ModelStore(tmp_path / "models")
    store.install(str(tmp_path / "tiny.gguf"), name="tiny", measure=False)
    folder = store.path("tiny")
    ExampleIndex([Pair("habari ya asubuhi", "nzuri sana"), Pair("bei ya chai", "shilingi 500")]).save(
        folder / "examples.jsonl")
    return folder


def _with_retrieval(folder: Path, k: int = 1) -> None:
    card = ModelCard.load(folder)
    card.retrieval = {"file": "examples.jsonl", "k": k}
    card.save(folder)


def test_the_prompt_carries_the_nearest_example_after_the_system_message(tiny_with_examples):
    plain = PromptBuilder(tiny_with_examples)
    question = [{"role": "user", "content": "chai ni bei gani?"}]
    assert plain.retrieved_context(question) == []
    _with_retrieval(tiny_with_examples)
    builder = PromptBuilder(tiny_with_examples)
    assert builder.retrieved_context(question) == Pair("bei ya chai", "shilingi 500").turns()
    prompt = builder.chat_prompt(question, system="sys", max_tokens=8)
    expected = builder.render_chat([{"role": "system", "content": "sys"}, *Pair("bei ya chai", "shilingi 500").turns(),
                                    *question])
    assert prompt.tokens == expected
    # Nothing shares a word with the examples: the prompt is the plain one.
    other = [{"role": "user", "content": "hello"}]
    assert builder.chat_prompt(other, max_tokens=8).tokens == plain.chat_prompt(other, max_tokens=8).tokens


def test_a_trimmed_chat_keeps_the_examples_like_the_system_message(tiny_with_examples):
    _with_retrieval(tiny_with_examples)
    builder = PromptBuilder(tiny_with_examples)
    long_turn = "maneno mengi " * 40
    history = []
    for _ in range(12):
        history += [{"role": "user", "content": long_turn}, {"role": "assistant", "content": long_turn}]
    history.append({"role": "user", "content": "bei ya chai?"})
    prompt = builder.chat_prompt(history, system="sys", max_tokens=builder.context_length // 2)
    assert prompt.dropped_messages > 0
    text = builder.tokenizer.decode([builder.tokenizer.token_to_id(t) for t in prompt.tokens])
    assert "shilingi 500" in text and text.index("shilingi 500") < text.index("bei ya chai?")


def test_a_card_naming_missing_examples_is_a_clear_error(tiny_with_examples):
    from inference.errors import ModelError

    _with_retrieval(tiny_with_examples)
    (tiny_with_examples / "examples.jsonl").unlink()
    with pytest.raises(ModelError, match="its examples cannot be read"):
        PromptBuilder(tiny_with_examples)
    (tiny_with_examples / "examples.jsonl").write_text(json.dumps({"q": 1}) + "\n")
    with pytest.raises(ModelError, match="its examples cannot be read"):
        PromptBuilder(tiny_with_examples)


def test_weak_neighbours_are_left_out_unless_asked_for(clinic):
    own = clinic.search("Namba ya dharura ni ipi?", 1)
    # Its paraphrase is a long sentence: a weak match by the default threshold...
    assert clinic.search("Namba ya dharura ni ipi?", 3, exclude=frozenset(own)) == []
    # ...which a caller may lower.
    weak = clinic.search("Namba ya dharura ni ipi?", 3, exclude=frozenset(own), min_relevance=0.0)
    assert len(weak) == 3 and own[0] not in weak
