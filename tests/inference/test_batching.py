"""The batch scheduler on a tiny real CTranslate2 model: overlap, per-sequence stop, fairness."""

import threading
import time

import pytest

from inference.engine import Engine, RepetitionGuard, SamplingParams

GREEDY = dict(temperature=0, repetition_penalty=1.0)
SAMPLED = dict(temperature=1.5, top_k=0, top_p=1.0, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def long_context_model(tmp_path_factory):
    """The tiny llama with an 8k context, so answers can run long enough to overlap."""
    from inference.registry import ModelStore
    from tests.inference.tiny import write_tiny_gguf

    root = tmp_path_factory.mktemp("long")
    write_tiny_gguf(root / "tiny-long.gguf", "llama", context=8192)
    store = ModelStore(root / "store")
    store.install(str(root / "tiny-long.gguf"), name="tiny-long")
    return store.path("tiny-long")


@pytest.fixture
def engine_factory(long_context_model):
    engines = []

    def make(**options):
        options.setdefault("repetition_guard", False)  # the tiny model repeats itself
        engine = Engine(long_context_model, device="cpu", intra_threads=1, **options)
        # Random weights sample an end token now and then; these tests need answers of known length.
        engine.end_tokens, engine._end_ids = [], frozenset()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def chat(engine, text):
    return engine.chat_prompt([{"role": "user", "content": text}])


def run_all(engine, jobs):
    """Run (name, prompt, params, cancel, user) jobs in threads; record token arrival times."""
    results, times = {}, {}

    def work(name, prompt, params, cancel, user):
        generation = engine.generate(prompt, params, cancel=cancel, user=user)
        stamps = []
        for _ in generation:
            stamps.append(time.monotonic())
        results[name], times[name] = generation.result, stamps

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
        time.sleep(0.002)
    for thread in threads:
        thread.join(timeout=60)
    return results, times


def submit_in_order(engine, jobs):
    """Submit (name, prompt, params, user) requests in this exact order, then read them all;
    returns {name: [arrival time of each token]} and {name: end reason}."""
    from inference.batching import END

    requests = {name: engine.request(prompt, params, user=user) for name, prompt, params, user in jobs}
    for request in requests.values():
        engine.scheduler.submit(request)
    times, reasons = {}, {}

    def drain(name, request):
        stamps = []
        while True:
            message = request.events.get(timeout=60)
            if message[0] == END:
                reasons[name] = message[1]
                break
            stamps.append(time.monotonic())
        times[name] = stamps

    threads = [threading.Thread(target=drain, args=item) for item in requests.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return times, reasons


def test_generations_overlap_in_one_batch(engine_factory):
    engine = engine_factory(replicas=1, max_batch_size=8)
    params = SamplingParams(max_tokens=3000, **SAMPLED)
    times, reasons = submit_in_order(engine, [(n, chat(engine, f"habari {n}"), params, "u") for n in range(4)])
    assert set(reasons.values()) == {"length"} and all(len(t) == 3000 for t in times.values())
    # One replica: the answers can only interleave if they share batches.
    first_ends, last_starts = min(t[-1] for t in times.values()), max(t[0] for t in times.values())
    assert last_starts < first_ends
    assert engine.stats()["batches_run"] < 4 * 4


def test_a_batched_answer_matches_the_answer_alone(engine_factory):
    engine = engine_factory(replicas=1, max_batch_size=8)
    params = SamplingParams(max_tokens=24, **GREEDY)
    alone = engine.generate(chat(engine, "dunia"), params).complete().text
    results, _ = run_all(engine, [(n, chat(engine, "dunia" if n == 0 else f"habari {n}"), params, None, "u")
                                  for n in range(4)])
    assert results[0].text == alone


def test_stopping_one_sequence_leaves_the_others_complete(engine_factory):
    engine = engine_factory(replicas=1, max_batch_size=8)
    params = SamplingParams(max_tokens=3000, **SAMPLED)
    stop = threading.Event()
    jobs = [("stopped", chat(engine, "habari"), params, stop, "u")]
    jobs += [(n, chat(engine, f"habari {n}"), params, None, "u") for n in range(3)]
    threading.Timer(0.05, stop.set).start()
    results, _ = run_all(engine, jobs)
    assert results["stopped"].finish_reason == "cancelled"
    assert results["stopped"].completion_tokens < 3000
    for n in range(3):
        assert results[n].finish_reason == "length" and results[n].completion_tokens == 3000


def test_a_burst_from_one_user_does_not_starve_another(engine_factory):
    engine = engine_factory(replicas=1, max_batch_size=2)
    params = SamplingParams(max_tokens=3000, **SAMPLED)
    jobs = [(f"a{n}", chat(engine, f"habari {n}"), params, "amina") for n in range(6)]
    jobs.append(("b", chat(engine, "dunia"), params, "baraka"))
    times, reasons = submit_in_order(engine, jobs)
    first = {name: stamps[0] for name, stamps in times.items()}
    # First come, first served would start baraka's answer after all six of amina's; round
    # robin starts it in the first batch after amina's first two.
    later_a = [name for name in first if name.startswith("a") and first[name] > first["b"]]
    assert len(later_a) >= 3, sorted(first, key=first.get)
    assert set(reasons.values()) == {"length"}


def test_different_sampling_settings_run_side_by_side(engine_factory):
    engine = engine_factory(replicas=2, max_batch_size=4)
    greedy = SamplingParams(max_tokens=24, **GREEDY)
    sampled = SamplingParams(max_tokens=60, temperature=0.8, top_k=20)
    jobs = [(n, chat(engine, f"habari {n}"), greedy if n % 2 else sampled, None, f"u{n}") for n in range(6)]
    results, _ = run_all(engine, jobs)
    assert all(result.completion_tokens == (24 if n % 2 else 60) for n, result in results.items())


def test_the_wall_time_limit_ends_an_answer_and_keeps_its_text(engine_factory):
    engine = engine_factory(replicas=1, time_limit=0.2)
    generation = engine.generate(chat(engine, "habari"), SamplingParams(max_tokens=5000, **SAMPLED))
    pieces = list(generation)
    result = generation.result
    assert result.finish_reason == "length" and result.error == "time_limit"
    assert result.text == "".join(pieces) and result.completion_tokens > 0
    assert result.total_time < 5


def test_a_closed_engine_ends_waiting_answers(engine_factory):
    engine = engine_factory(replicas=1, max_batch_size=1)
    params = SamplingParams(max_tokens=5000, **SAMPLED)
    generations = [engine.generate(chat(engine, f"habari {n}"), params) for n in range(3)]
    iterators = [iter(g) for g in generations]
    next(iterators[0])
    threading.Timer(0.1, engine.close).start()
    for generation in generations:
        generation.complete()
    assert generations[0].result.finish_reason in ("error", "cancelled", "length")
    assert generations[2].result.finish_reason == "error"


def test_a_runaway_repetition_is_detected():
    guard = RepetitionGuard()
    assert not any(guard.add(t) for t in range(200))  # varied text
    assert any(guard.add(7) for _ in range(40))
    phrase = RepetitionGuard()
    hits = [phrase.add(t) for _ in range(20) for t in (5, 6, 7, 8, 9)]
    assert any(hits) and phrase.period == 5
    assert not any(RepetitionGuard().add(t) for t in [1, 2, 1, 2, 1, 2, 3, 4] * 3)
