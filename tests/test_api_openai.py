"""Conformance with the official openai SDK against a live server on 127.0.0.1."""

import json
import time

import httpx2 as httpx
import openai
import pytest

from pawa.api.keys import apikey_create, apikey_revoke
from pawa.api.models import ApiKey, ApiLimits, ApiUsage
from pawa.generation.models import Generation

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SMOL = "smollm2-135m-instruct"


@pytest.fixture
def api_key(owner):
    return apikey_create(user=owner, name="tests")


@pytest.fixture
def client(live_asgi, api_key, real_models, celery_worker):
    return openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=api_key[1], max_retries=0, timeout=60)


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list().data]
    assert {"smollm2-135m-instruct", "gemma3-270m"} <= set(ids)
    model = client.models.retrieve(SMOL)
    assert model.id == SMOL and model.object == "model"
    assert model.model_extra["kind"] == "instruct" and model.model_extra["context_length"] > 0


def test_non_streaming_chat(client):
    response = client.chat.completions.create(
        model=SMOL, messages=[{"role": "user", "content": "What is the capital of Tanzania?"}], temperature=0,
        max_tokens=30,
    )
    assert response.object == "chat.completion"
    assert "Dodoma" in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_streamed_deltas_equal_the_non_streamed_text_under_the_same_seed(client):
    kwargs = dict(model=SMOL, messages=[{"role": "user", "content": "Tell me a two-sentence story."}],
                  temperature=0.8, seed=1234, max_tokens=40)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    stream = client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole and text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_text_completions_stream_and_not(client):
    kwargs = dict(model="gemma3-270m", prompt="Tanzania ni nchi iliyoko", temperature=0, max_tokens=12)
    whole = client.completions.create(**kwargs)
    assert whole.object == "text_completion" and whole.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(**kwargs, stream=True) if c.choices)
    assert streamed == whole.choices[0].text


def test_max_tokens_one_finishes_with_length(client):
    response = client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Count to ten."}],
                                              max_tokens=1, temperature=0)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 1


def test_a_bad_key_is_an_authentication_error(live_asgi, real_models):
    bad = openai.OpenAI(base_url=f"{live_asgi}/v1", api_key="pawa-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as excinfo:
        bad.models.list()
    assert excinfo.value.status_code == 401
    assert excinfo.value.code == "invalid_api_key"
    assert excinfo.value.response.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")


def test_a_too_long_prompt_is_refused_before_streaming(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "habari " * 9000}], stream=True)
    assert excinfo.value.code == "context_length_exceeded"
    assert Generation.objects.count() == 0


def test_rate_limit_honours_retry_after(client, owner):
    ApiLimits.objects.create(user=owner, requests_per_minute=2)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as excinfo:
        client.models.list()
    headers = excinfo.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "2" and headers["x-ratelimit-remaining-requests"] == "0"
    assert excinfo.value.code == "rate_limit_exceeded"


def test_a_revoked_key_is_rejected_at_once(client, api_key):
    client.models.list()
    apikey_revoke(key=api_key[0])
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_an_expired_key_is_rejected(live_asgi, owner, real_models):
    from datetime import timedelta

    from django.utils import timezone

    key, secret = apikey_create(user=owner, name="old", expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live_asgi}/v1", api_key=secret, max_retries=0).models.list()


def test_closing_a_stream_frees_the_worker(client):
    stream = client.chat.completions.create(
        model="gemma3-270m", messages=[{"role": "user", "content": "Niandikie hadithi ndefu sana."}],
        max_tokens=400, temperature=0, stream=True,
    )
    for index, _chunk in enumerate(stream):
        if index == 3:
            break
    stream.close()
    deadline = time.monotonic() + 5
    generation = Generation.objects.get()
    while generation.is_active and time.monotonic() < deadline:
        time.sleep(0.1)
        generation.refresh_from_db()
    assert generation.status == "stopped"
    assert generation.completion_tokens < 100


def test_usage_is_recorded_per_request(client, api_key):
    client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    usage = ApiUsage.objects.get()
    assert usage.api_key == api_key[0] and usage.model_name == SMOL and usage.status_code == 200
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0 and usage.latency_ms > 0


def test_errors_use_the_openai_envelope_and_every_response_has_a_request_id(live_asgi, api_key, real_models):
    headers = {"Authorization": f"Bearer {api_key[1]}"}
    for body, param in [
        ({"model": SMOL, "messages": [{"role": "user", "content": "hi"}], "n": 3}, "n"),
        ({"model": SMOL, "messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature"),
        ({"model": SMOL, "messages": []}, "messages"),
        ({"model": SMOL, "messages": [{"role": "user", "content": "hi"}], "presence_penalty": -3}, "presence_penalty"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ]:
        response = httpx.post(f"{live_asgi}/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
        assert response.headers["x-request-id"]
    broken = httpx.post(f"{live_asgi}/v1/chat/completions", content=b"{nope", headers={**headers, "Content-Type": "application/json"})
    assert broken.status_code == 400 and "error" in broken.json()
    assert httpx.get(f"{live_asgi}/v1/models").status_code == 401
    assert httpx.get(f"{live_asgi}/v1/models", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"


def test_unknown_fields_and_nulls_are_accepted(live_asgi, api_key, real_models, celery_worker):
    response = httpx.post(
        f"{live_asgi}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key[1]}"},
        json={"model": SMOL, "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
              "max_tokens": 3, "temperature": None, "top_p": None, "stop": None, "logit_bias": {}, "tools": None,
              "frequency_penalty": 0.5, "user": "abc", "n": None, "whatever": True},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] is not None


def test_streaming_is_chosen_by_the_body_not_the_accept_header(live_asgi, api_key, real_models, celery_worker):
    response = httpx.post(
        f"{live_asgi}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key[1]}", "Accept": "text/event-stream"},
        json={"model": SMOL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}, timeout=60,
    )
    assert response.headers["content-type"].startswith("application/json")


def test_a_failure_after_the_stream_started_is_an_error_event_then_done(live_asgi, api_key, real_models,
                                                                         celery_worker, monkeypatch):
    from pawa.generation import tasks

    real_get_engine = tasks.get_engine

    class Failing:
        """The real engine, but the generation breaks after two pieces of text."""

        def __init__(self, engine):
            self.engine = engine

        def __getattr__(self, name):
            return getattr(self.engine, name)

        def generate(self, *args, **kwargs):
            generation = self.engine.generate(*args, **kwargs)
            inner = generation._deltas

            def pieces():
                for index, piece in enumerate(inner):
                    if index == 2:
                        generation.close()
                        raise RuntimeError("the accelerator caught fire")
                    yield piece

            generation._deltas = pieces()
            return generation

    monkeypatch.setattr(tasks, "get_engine", lambda name: Failing(real_get_engine(name)))
    response = httpx.post(
        f"{live_asgi}/v1/chat/completions", headers={"Authorization": f"Bearer {api_key[1]}"},
        json={"model": SMOL, "messages": [{"role": "user", "content": "Tell me a story."}], "stream": True,
              "max_tokens": 40, "temperature": 0}, timeout=60,
    )
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "internal_error" and error["message"]
    assert any(json.loads(e)["choices"][0]["delta"].get("content") for e in events[1:-2]), events


def test_simultaneous_answers_run_together_in_one_worker_process(client, owner):
    """Two requests at once: both generations run in the one worker's batch scheduler at the
    same time (before batching, the second waited for the first)."""
    from concurrent.futures import ThreadPoolExecutor

    ApiLimits.objects.create(user=owner, max_concurrent=4)

    def ask(n):
        return client.chat.completions.create(
            model=SMOL, messages=[{"role": "user", "content": f"Write a long story about lion number {n}."}],
            temperature=0, max_tokens=48,
        )

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(ask, [1, 2]))
    assert all(a.usage.completion_tokens > 0 for a in answers)
    first, second = Generation.objects.order_by("started_at")
    from datetime import timedelta

    # The second answer's first token came while the first answer was still being written.
    assert second.started_at + timedelta(milliseconds=second.time_to_first_token_ms) < first.finished_at


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_above_the_context_is_a_400_before_anything_is_queued(client, stream):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Hi"}], max_tokens=65535,
                                       stream=stream)
    assert excinfo.value.status_code == 400
    assert excinfo.value.code == "max_tokens_too_large" and excinfo.value.param == "max_tokens"
    assert "max_tokens" in excinfo.value.message and "8192" in excinfo.value.message
    assert Generation.objects.count() == 0


def test_a_history_longer_than_the_context_is_a_400_not_a_silent_drop(client):
    messages = []
    for index in range(600):
        messages += [{"role": "user", "content": f"Question {index}: how are you today?"},
                     {"role": "assistant", "content": "Very well, thank you for asking."}]
    messages.append({"role": "user", "content": "And the last one?"})
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=SMOL, messages=messages, max_tokens=5)
    assert excinfo.value.code == "context_length_exceeded" and excinfo.value.param == "messages"
    assert "8192" in excinfo.value.message
    assert Generation.objects.count() == 0


def test_max_tokens_that_does_not_fit_beside_the_prompt_is_clamped_to_the_room_left(client):
    response = client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Say hi."}],
                                              max_tokens=8192, temperature=0)
    assert response.choices[0].message.content
    generation = Generation.objects.get()
    assert generation.params["max_tokens"] == 8192 - response.usage.prompt_tokens


def test_a_waiting_stream_carries_its_queue_position_and_wait_as_comments(live_asgi, api_key, owner, real_models,
                                                                          idle_worker):
    Generation.objects.create(user=owner, model_name=SMOL, prompt=[], status="complete", total_ms=3000)
    body = {"model": SMOL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with httpx.stream("POST", f"{live_asgi}/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {api_key[1]}"}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        comment = next(line for line in lines if line.startswith(":"))
    assert comment == ": queued, position 1, wait ~3 s"


@pytest.mark.parametrize("header", [b"Bearer", b"Basic abc", b"Bearer pawa-", b"Bearer pawa-" + b"x" * 43,
                                    b"Bearer sk-not-ours", b"Bearer pawa-" + b"y" * 300, b"Bearer pawa-\xc3\xa9"])
def test_malformed_keys_are_refused_with_401(live_asgi, real_models, header):
    response = httpx.get(f"{live_asgi}/v1/models", headers=[(b"Authorization", header)], timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_request_limit_is_exact_under_a_parallel_burst(live_asgi, owner, api_key):
    from concurrent.futures import ThreadPoolExecutor

    ApiLimits.objects.create(user=owner, requests_per_minute=7)

    def call(_):
        return httpx.get(f"{live_asgi}/v1/models", headers={"Authorization": f"Bearer {api_key[1]}"},
                         timeout=30).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(call, range(20)))
    assert codes.count(200) == 7 and codes.count(429) == 13
