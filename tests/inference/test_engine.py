"""The streaming engine on a tiny real CTranslate2 model."""

import threading
import time

import pytest

from inference.engine import SamplingParams
from inference.errors import InvalidParameter, PromptTooLong

GREEDY = SamplingParams(temperature=0, max_tokens=24, repetition_penalty=1.0)


def run(engine, text="habari dunia", params=GREEDY, **kwargs):
    generation = engine.generate(engine.chat_prompt([{"role": "user", "content": text}]), params, **kwargs)
    pieces = list(generation)
    return pieces, generation.result


def test_it_streams_pieces_that_add_up_to_the_answer(tiny_engine):
    pieces, result = run(tiny_engine)
    assert len(pieces) > 1
    assert "".join(pieces) == result.text
    assert result.finish_reason == "length" and result.completion_tokens == 24
    assert result.prompt_tokens > 5
    assert result.time_to_first_token > 0 and result.tokens_per_second > 0


def test_greedy_decoding_is_deterministic(tiny_engine):
    assert run(tiny_engine)[1].text == run(tiny_engine)[1].text


def test_the_same_seed_gives_the_same_text(tiny_engine):
    params = SamplingParams(temperature=2.0, top_k=0, top_p=1.0, max_tokens=24, seed=1234)
    first = run(tiny_engine, params=params)[1].token_ids
    second = run(tiny_engine, params=params)[1].token_ids
    other = run(tiny_engine, params=SamplingParams(temperature=2.0, top_k=0, top_p=1.0, max_tokens=24, seed=99))[1].token_ids
    assert first == second
    assert first != other


def test_concurrent_generations_do_not_corrupt_each_other(tiny_engine):
    expected = {text: run(tiny_engine, text)[1].text for text in ["habari", "dunia", "the world"]}
    results = {}

    def work(text):
        results[text] = run(tiny_engine, text)[1].text

    threads = [threading.Thread(target=work, args=(text,)) for text in expected for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


def test_cancelling_stops_the_generation(tiny_engine):
    seen = []
    stop = threading.Event()
    generation = tiny_engine.generate(
        tiny_engine.chat_prompt([{"role": "user", "content": "habari"}]),
        SamplingParams(temperature=0, max_tokens=100),
        cancel=stop,
    )
    for piece in generation:
        seen.append(piece)
        if len(seen) == 3:
            stop.set()
    result = generation.result
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < 100
    assert result.text == "".join(seen)


def test_closing_the_stream_cancels(tiny_engine):
    generation = tiny_engine.generate(
        tiny_engine.chat_prompt([{"role": "user", "content": "habari"}]), SamplingParams(temperature=0, max_tokens=100)
    )
    next(iter(generation))
    started = time.perf_counter()
    generation.close()
    assert time.perf_counter() - started < 1.0
    assert generation.result.finish_reason == "cancelled"


def test_stop_strings_end_the_answer_and_never_leak(tiny_engine):
    full = run(tiny_engine)[1].text
    stop = full[6:9]
    assert stop
    pieces, result = run(tiny_engine, params=SamplingParams(temperature=0, max_tokens=24, repetition_penalty=1.0, stop=(stop,)))
    assert result.finish_reason == "stop"
    assert result.text == full[: full.index(stop)]
    assert stop not in "".join(pieces)


def test_old_turns_are_dropped_to_fit_the_context(tiny_engine):
    history = []
    for i in range(30):
        history += [{"role": "user", "content": f"habari {i}"}, {"role": "assistant", "content": "dunia dunia"}]
    history.append({"role": "user", "content": "the last one"})
    prompt = tiny_engine.chat_prompt(history, system="Be brief.", max_tokens=32)
    assert prompt.dropped_messages > 0
    assert prompt.length <= tiny_engine.context_length - 32
    text = tiny_engine.tokenizer.decode(tiny_engine.tokenizer.encode("".join(prompt.tokens)).ids)
    rendered = "".join(prompt.tokens)
    assert "Be" in rendered and "last" in rendered  # system prompt and newest message kept


def test_a_single_message_longer_than_the_context_is_refused(tiny_engine):
    with pytest.raises(PromptTooLong) as excinfo:
        tiny_engine.chat_prompt([{"role": "user", "content": "habari " * 200}])
    assert excinfo.value.context_length == tiny_engine.context_length
    assert excinfo.value.prompt_tokens > tiny_engine.context_length


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (SamplingParams(temperature=-1), "temperature"),
        (SamplingParams(temperature=float("nan")), "temperature"),
        (SamplingParams(top_p=0), "top_p"),
        (SamplingParams(top_k=-3), "top_k"),
        (SamplingParams(max_tokens=0), "max_tokens"),
        (SamplingParams(repetition_penalty=50), "repetition_penalty"),
        (SamplingParams(seed=-1), "seed"),
        (SamplingParams(stop=tuple("abcdefghij")), "stop"),
    ],
)
def test_absurd_sampling_values_are_refused(tiny_engine, params, param):
    with pytest.raises(InvalidParameter) as excinfo:
        run(tiny_engine, params=params)
    assert excinfo.value.param == param


def test_empty_prompts_are_refused(tiny_engine):
    with pytest.raises(InvalidParameter):
        tiny_engine.chat_prompt([{"role": "user", "content": "   "}])
    with pytest.raises(InvalidParameter):
        tiny_engine.text_prompt("")


def test_max_tokens_is_capped_by_the_context(tiny_engine):
    prompt = tiny_engine.chat_prompt([{"role": "user", "content": "habari " * 20}], max_tokens=8)
    room = tiny_engine.context_length - prompt.length
    generation = tiny_engine.generate(prompt, SamplingParams(temperature=0, max_tokens=10_000))
    list(generation)
    assert generation.result.completion_tokens <= room


def test_device_auto_uses_cuda_only_when_ctranslate2_sees_a_gpu(monkeypatch):
    import ctranslate2

    from inference.engine import resolve_device

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert resolve_device("auto") == "cuda"
    with pytest.raises(Exception, match="Unknown device"):
        resolve_device("tpu")


def test_gpu_compute_type_is_int8_float16(tiny_engine):
    from inference.engine import default_compute_type

    assert default_compute_type("cuda", tiny_engine.card) == "int8_float16"
    assert default_compute_type("cpu", tiny_engine.card) == tiny_engine.card.compute_type


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(tiny_engine):
    import ctranslate2

    from inference.engine import Engine
    from inference.errors import ModelError

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="Cannot load model"):
        Engine(tiny_engine.model_dir, device="cuda")
