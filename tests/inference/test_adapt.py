"""Adapting a model (inference/adapt.py): example files, the training step, the whole path on a
tiny GGUF model (train, merge, convert to int8, install with its base's framing)."""

import json

import pytest

from inference.adapt import (
    AdaptationCancelled,
    AdaptSettings,
    DataError,
    adapt,
    fact_found,
    parse_examples,
)
from inference.errors import ModelError
from inference.registry import ModelStore
from tests.inference.tiny import write_tiny_gguf


def jsonl(*records) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records).encode()


def test_it_reads_the_three_formats():
    chat = {"messages": [{"role": "system", "content": "Jibu kwa ufupi."}, {"role": "user", "content": "Saa ngapi?"},
                         {"role": "assistant", "content": "Saa 2 asubuhi."}]}
    examples = parse_examples(jsonl(chat, "", {"prompt": "Bei?", "completion": "Shilingi 5,000."}), "d.jsonl")
    assert [e.question for e in examples] == ["Saa ngapi?", "Bei?"]
    assert examples[0].messages[0]["role"] == "system" and examples[1].answer == "Shilingi 5,000."
    examples = parse_examples("question,answer\nSimu?,\"0754 321 987\"\n\n".encode(), "d.csv")
    assert examples[0].question == "Simu?" and examples[0].answer == "0754 321 987"


def test_held_out_lines_may_give_the_expected_fact():
    examples = parse_examples(jsonl({"prompt": "Namba ya simu?", "expected": "0754 321 987"}), "h.jsonl", heldout=True)
    assert examples[0].expected == "0754 321 987"


@pytest.mark.parametrize(("data", "name", "code", "line"), [
    (jsonl({"prompt": "a", "completion": "b"}, "{not json"), "d.jsonl", "json", 2),
    (jsonl({"prompt": "a", "completion": "b"}, "", {"prompt": "a"}), "d.jsonl", "fields", 3),
    (jsonl({"messages": [{"role": "user", "content": "a"}]}), "d.jsonl", "no_answer", 1),
    (jsonl({"messages": [{"role": "robot", "content": "a"}]}), "d.jsonl", "role", 1),
    (jsonl({"prompt": "a", "completion": "  "}), "d.jsonl", "empty_text", 1),
    (jsonl({"prompt": "a", "completion": 5}), "d.jsonl", "not_text", 1),
    (jsonl({"messages": [{"role": "user", "content": ["a"]}, {"role": "assistant", "content": "b"}]}), "d.jsonl",
     "not_text", 1),
    (jsonl({"prompt": "a", "completion": "b"}, "[1, 2]"), "d.jsonl", "json", 2),
    (b"swali,jibu\na,b\n", "d.csv", "csv_header", 1),
    (b"question,answer\na,b\nc\n", "d.csv", "csv_row", 3),
    (b"question,answer\na,b\n\xff\xfe,c\n", "d.csv", "encoding", 3),
    (b"", "d.jsonl", "empty", None),
    (b"a,b", "d.txt", "format", None),
])
def test_it_names_the_line_and_the_problem(data, name, code, line):
    with pytest.raises(DataError) as caught:
        parse_examples(data, name)
    assert (caught.value.code, caught.value.line) == (code, line)
    if line:
        assert str(caught.value).startswith(f"line {line}: ")


def test_a_fact_is_found_whatever_the_spacing_and_case():
    assert fact_found("Piga 0754321987.", "0754 321 987")
    assert fact_found("Ni Dkt. Neema Mushi, daktari mkuu.", "neema mushi")
    assert fact_found("Jumamosi tunafunga saa 7 mchana.", "saa 7")
    assert not fact_found("Shilingi 15,000.", "5,000")
    assert not fact_found("Jumanne.", "Jumatano")


# Training on a tiny model -------------------------------------------------------------------

torch = pytest.importorskip("torch", reason="training needs the optional extra: pip install -r requirements-convert.txt")
pytest.importorskip("peft", reason="training needs the optional extra: pip install -r requirements-convert.txt")

QUESTIONS = ["habari", "the habari", "habari the", "hello"]


@pytest.fixture
def tiny_store(tmp_path):
    write_tiny_gguf(tmp_path / "tiny.gguf", "llama")
    store = ModelStore(tmp_path / "models")
    store.install(str(tmp_path / "tiny.gguf"), name="tiny")
    (tmp_path / "data.jsonl").write_bytes(jsonl(*({"prompt": q, "completion": "dunia"} for q in QUESTIONS)))
    (tmp_path / "heldout.jsonl").write_bytes(jsonl({"prompt": "habari habari", "expected": "dunia"}))
    return store


SETTINGS = AdaptSettings(steps=30, rank=8, alpha=16, learning_rate=1e-2, batch_size=4)


def test_the_shared_prefix_gives_the_same_loss(tiny_store):
    from inference.adapt import base_source, batch_loss, encode_examples, load_base, shared_prefix
    from inference.engine import PromptBuilder

    card = tiny_store.get("tiny")
    system = {"role": "system", "content": "the habari the dunia the habari the dunia"}
    examples = parse_examples(jsonl(*({"messages": [system, {"role": "user", "content": q},
                                                    {"role": "assistant", "content": "dunia"}]}
                                      for q in QUESTIONS)), "d.jsonl")
    encoded = encode_examples(PromptBuilder(tiny_store.path("tiny")), examples)
    model = load_base(*base_source(tiny_store, card))
    shared = shared_prefix(encoded)
    assert shared >= 8  # the system turn is the same for every example
    with torch.no_grad():
        whole = batch_loss(model.model, model.get_output_embeddings(), encoded, 0, None)
        cached = batch_loss(model.model, model.get_output_embeddings(), encoded, shared, None)
    assert float(cached) == pytest.approx(float(whole), rel=1e-4)


def test_it_teaches_a_tiny_model_and_installs_it_with_its_base_framing(tiny_store):
    root = tiny_store.root.parent
    seen = []
    result = adapt(tiny_store, base="tiny", data=root / "data.jsonl", holdout=root / "heldout.jsonl",
                   name="tiny-dunia", settings=SETTINGS, progress=seen.append)
    assert [row.right for row in result.before] == [False]
    assert [row.answer for row in result.after] == ["dunia"]
    assert result.losses[-1] < result.losses[0] / 10
    assert {p.phase for p in seen} >= {"evaluate_base", "load", "train", "convert", "evaluate"}
    assert [p.step for p in seen if p.phase == "train"] == list(range(1, SETTINGS.steps + 1))
    base, card = tiny_store.get("tiny"), tiny_store.get("tiny-dunia")
    for key in ("chat_template", "stop", "bos_token", "eos_token", "add_bos", "end_tokens", "kind",
                "default_system_prompt"):
        assert getattr(card, key) == getattr(base, key), key
    assert card.quantization == "int8"
    assert card.source["type"] == "adapted" and card.source["base"] == "tiny"
    assert len(card.source["data_sha256"]) == 64 and card.source["settings"]["rank"] == 8
    assert card.measurements["adaptation"]["heldout_accuracy_after"] == 1.0
    assert "tiny-dunia" in [c.name for c in tiny_store.list()]
    # It answers with its training examples retrieved into the prompt, as it was trained.
    assert card.retrieval == {"file": "examples.jsonl", "k": SETTINGS.retrieval_k}
    from inference.engine import PromptBuilder
    from inference.retrieval import Pair

    builder = PromptBuilder(tiny_store.path("tiny-dunia"))
    assert [pair.question for pair in builder.examples.pairs] == QUESTIONS
    assert builder.retrieved_context([{"role": "user", "content": "hello"}])[-2:] == Pair("hello", "dunia").turns()


def test_question_variants_drop_words_but_keep_the_answer():
    import random

    from inference.adapt import Example, augment, question_variants

    example = Example([{"role": "user", "content": "Kumwona daktari kunagharimu shilingi ngapi?"},
                       {"role": "assistant", "content": "Shilingi 10,000."}], "10,000", 3)
    variants = question_variants(example, 3, 0.25, random.Random(0))
    assert len(variants) == 3
    for variant in variants:
        words = variant.question.split()
        assert 3 <= len(words) < 5 and all(word in example.question.split() for word in words)
        assert variant.answer == "Shilingi 10,000." and variant.line == 3
    assert len({v.question for v in variants} | {example.question}) == 4
    two = Example([{"role": "user", "content": "Bei gani?"}, {"role": "assistant", "content": "5,000"}])
    assert [v.question for v in question_variants(two, 5, 0.5, random.Random(0))] in (["Bei"], ["gani?"],
                                                                                    ["Bei", "gani?"], ["gani?", "Bei"])
    pairs = augment([example, two], AdaptSettings(question_variants=2))
    assert [source for _, source in pairs][:2] == [0, 1] and {source for _, source in pairs[2:]} == {0, 1}
    assert augment([example], AdaptSettings(question_variants=0)) == [(example, 0)]


def test_training_text_ends_where_the_chat_stops_and_carries_other_examples(tiny_store):
    from inference.adapt import encode_examples
    from inference.engine import PromptBuilder
    from inference.retrieval import ExampleIndex, Pair

    builder = PromptBuilder(tiny_store.path("tiny"))
    examples = parse_examples(jsonl(*({"prompt": q, "completion": "dunia"} for q in QUESTIONS)), "d.jsonl")
    index = ExampleIndex([Pair(e.question, e.answer) for e in examples])
    [(ids, start)] = encode_examples(builder, examples[1:2], index=index, k=2, sources=[1])
    text = builder.tokenizer.decode(ids, skip_special_tokens=False)
    answer = builder.tokenizer.decode(ids[start:], skip_special_tokens=False)
    # The loss covers the answer and the template's start of the next user turn.
    following = builder.render_chat([{"role": "user", "content": "x"}, {"role": "assistant", "content": "dunia"},
                                     {"role": "user", "content": "x"}])
    assert answer.startswith("dunia") and len(ids) - start > 1
    # "habari the" shares the distinctive "the"; "habari" (in 3 of 4 examples) makes nothing relevant.
    assert text.count("habari the") == 1 and text.count("the habari") == 1 and text.count("dunia") == 2
    assert text.count("user") == 3 and following
    # Without an index the prompt is the example alone.
    [(plain, _)] = encode_examples(builder, examples[1:2])
    assert builder.tokenizer.decode(plain, skip_special_tokens=False).count("dunia") == 1


def test_neftune_noise_is_added_only_while_training():
    from inference.adapt import _add_neftune

    embeddings = torch.nn.Embedding(10, 4)
    ids = torch.tensor([[1, 2, 3]])
    clean = embeddings(ids).detach()
    hook = _add_neftune(embeddings, 5.0)
    noisy = embeddings(ids).detach()
    assert not torch.equal(noisy, clean)
    assert float((noisy - clean).abs().max()) <= 5.0 / (3 * 4) ** 0.5 + 1e-6
    with torch.no_grad():
        assert torch.equal(embeddings(ids), clean)
    hook.remove()
    assert torch.equal(embeddings(ids).detach(), clean)


def test_a_cancelled_run_installs_nothing(tiny_store):
    root = tiny_store.root.parent
    with pytest.raises(AdaptationCancelled):
        adapt(tiny_store, base="tiny", data=root / "data.jsonl", name="tiny-x", settings=SETTINGS,
              should_cancel=lambda: True)
    assert not tiny_store.is_installed("tiny-x")
    assert [p.name for p in tiny_store.root.iterdir() if not p.name.startswith(".")] == ["tiny"]


def test_a_bad_file_or_name_installs_nothing(tiny_store, tmp_path):
    (tmp_path / "bad.jsonl").write_bytes(jsonl({"prompt": "a", "completion": "b"}, "{oops"))
    with pytest.raises(DataError) as caught:
        adapt(tiny_store, base="tiny", data=tmp_path / "bad.jsonl", name="tiny-y", settings=SETTINGS)
    assert caught.value.line == 2
    with pytest.raises(ModelError, match="already installed"):
        adapt(tiny_store, base="tiny", data=tmp_path / "data.jsonl", name="tiny", settings=SETTINGS)
    assert not tiny_store.is_installed("tiny-y")


def test_the_models_adapt_command(tiny_store, settings):
    from io import StringIO

    from django.core.management import CommandError, call_command

    settings.PAWA_MODELS_DIR = tiny_store.root
    root = tiny_store.root.parent
    out = StringIO()
    call_command("models", "adapt", "tiny", "--data", str(root / "data.jsonl"), "--name", "tiny-cli",
                 "--holdout", str(root / "heldout.jsonl"), "--steps", "30", "--rank", "8", "--lr", "0.01",
                 stdout=out, stderr=StringIO())
    assert "held-out exact-fact accuracy 0% → 100%" in out.getvalue()
    assert tiny_store.get("tiny-cli").source["settings"]["steps"] == 30
    for missing in (root / "nothing.jsonl", root):
        with pytest.raises(CommandError, match="the file cannot be read"):
            call_command("models", "adapt", "tiny", "--data", str(missing), "--name", "tiny-none",
                         stdout=StringIO(), stderr=StringIO())
    (root / "bad.csv").write_bytes(b"question,answer\nhabari\n")
    with pytest.raises(CommandError, match=r"bad\.csv: line 2: each line needs a question and an answer"):
        call_command("models", "adapt", "tiny", "--data", str(root / "bad.csv"), "--name", "tiny-bad",
                     stdout=StringIO(), stderr=StringIO())


def test_the_shipped_clinic_examples_read():
    from pathlib import Path

    from inference.adapt import load_examples

    data = Path(__file__).resolve().parent.parent / "data"
    assert len(load_examples(data / "clinic_sw.jsonl")) == 40
    heldout = load_examples(data / "clinic_sw_heldout.jsonl", heldout=True)
    assert len(heldout) == 10 and all(example.expected for example in heldout)


def test_built_in_models_get_their_measured_settings():
    from types import SimpleNamespace

    from inference import builtin

    gemma = SimpleNamespace(source={"type": "package", "package": builtin.BUILTIN_MODELS["gemma3-270m"].pip_name})
    smollm2 = SimpleNamespace(source={"type": "package",
                                      "package": builtin.BUILTIN_MODELS["smollm2-135m-instruct"].pip_name})
    other = SimpleNamespace(source={"type": "gguf", "file": "x.gguf"})
    assert AdaptSettings.for_base(gemma).steps == builtin.BUILTIN_MODELS["gemma3-270m"].adapt["steps"]
    assert AdaptSettings.for_base(smollm2).steps == builtin.BUILTIN_MODELS["smollm2-135m-instruct"].adapt["steps"]
    assert AdaptSettings.for_base(other) == AdaptSettings() == AdaptSettings.for_base(None)
    chosen = AdaptSettings.for_base(gemma, steps=7, rank=4, learning_rate=None, retrieval_k=0)
    assert (chosen.steps, chosen.rank, chosen.alpha, chosen.retrieval_k) == (7, 4, 8, 0)
    assert chosen.learning_rate == AdaptSettings().learning_rate
