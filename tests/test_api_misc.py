"""API documentation, the OpenAPI reference, and refusals that need no worker."""

import json

import pytest

from pawa.api.keys import apikey_create
from pawa.generation.models import Generation
from pawa.generation.redis import sync_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth(owner):
    return {"HTTP_AUTHORIZATION": f"Bearer {apikey_create(user=owner, name='t')[1]}"}


def post(client, auth, body, path="/v1/chat/completions", **extra):
    return client.post(path, json.dumps(body), content_type="application/json", **auth, **extra)


def test_the_openapi_document_describes_the_endpoints(client):
    schema = client.get("/v1/openapi.json")  # no Accept header, as curl sends it
    assert schema.status_code == 200 and "json" in schema["Content-Type"]
    document = json.loads(schema.content)
    assert {"/v1/chat/completions", "/v1/completions", "/v1/chat/request", "/v1/models", "/v1/models/{model_id}"} <= set(
        document["paths"])
    chat = document["components"]["schemas"]["ChatCompletionInput"]["properties"]
    assert {"response_format", "tools", "tool_choice", "logprobs", "top_logprobs", "logit_bias"} <= set(chat)
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_the_interactive_reference_is_served_offline(client, live_asgi):
    import urllib.request

    page = client.get("/docs/api/reference/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "https://" not in page and "cdn" not in page
    with urllib.request.urlopen(f"{live_asgi}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js") as asset:
        assert asset.status == 200


@pytest.mark.parametrize("language,words", [
    ("en", ["Quickstart", "context_length_exceeded", "Retry-After", "presence_penalty", "Structured output", "Tool calls",
            "Log-probabilities", "PAWA_API_CORS_ORIGINS", "/v1/chat/request", "memoryChat"]),
    ("sw", ["Mwanzo wa haraka", "Vigezo", "Mipaka", "Hitilafu", "Majibu yenye muundo", "Kuita zana",
            "PAWA_API_CORS_ORIGINS", "/v1/chat/request", "memoryChat"])])
def test_the_api_docs_have_quickstart_parameters_limits_and_errors(client, language, words):
    body = client.get("/docs/api/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    for word in words:
        assert word in body
    assert "/v1/chat/completions" in body and "from openai import OpenAI" in body and "fetch(" in body


def test_no_worker_means_503(client, auth, real_models):
    response = post(client, auth, {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_worker" and response["Retry-After"]
    assert Generation.objects.count() == 0


def test_a_full_queue_means_503(client, auth, real_models, settings, idle_worker):
    settings.PAWA_MAX_QUEUE = 1
    sync_client().zadd(settings.PAWA_QUEUE_KEY, {"someone-else": 1})
    try:
        response = post(client, auth, {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}]})
    finally:
        sync_client().zrem(settings.PAWA_QUEUE_KEY, "someone-else")
    assert response.status_code == 503 and response.json()["error"]["code"] == "queue_full"
    assert response["Retry-After"]
    assert Generation.objects.count() == 0


def test_unknown_api_paths_get_the_envelope(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["message"]


def test_an_oversized_body_is_refused(client, auth):
    response = post(client, auth, {"model": "x", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]})
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_an_empty_last_user_message_is_refused(client, auth, real_models):
    # A final assistant message is continued (tests/test_api_params.py); an empty question is not a question.
    response = post(client, auth, {"model": "smollm2-135m-instruct",
                                   "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                                {"role": "user", "content": "  "}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"


def test_refused_completion_parameters_are_named(client, auth, real_models):
    for field, value in [("echo", True), ("suffix", "x"), ("best_of", 3), ("logprobs", 6), ("prompt", [1, 2, 3])]:
        body = {"model": "gemma3-270m", "prompt": "Habari", field: value}
        response = post(client, auth, body, path="/v1/completions")
        assert response.status_code == 400, field
        assert response.json()["error"]["param"] == field


def test_the_api_samples_with_the_chat_defaults(client, auth, real_models, idle_worker):
    from pawa.generation.admission import SAMPLING_DEFAULTS

    response = post(client, auth, {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}],
                                   "stream": True})
    assert response.status_code == 200
    params = Generation.objects.get().params
    assert {name: params[name] for name in SAMPLING_DEFAULTS} == SAMPLING_DEFAULTS
    assert params["max_tokens"] == 512
    response.close()


def test_openai_penalties_and_greedy_top_p_still_map(client, auth, real_models, idle_worker, settings):
    settings.PAWA_MAX_CONCURRENT_GENERATIONS = 5
    body = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = post(client, auth, {**body, "frequency_penalty": 1.0, "top_p": 0})
    params = Generation.objects.get().params
    assert params["repetition_penalty"] == 1.5 and params["temperature"] == 0.0
    response.close()


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_right_after_sending_stops_its_answer_and_is_recorded(
    live_asgi, owner, real_models, idle_worker, stream
):
    """Whenever the client goes (before the body was read, during admission, before or after
    the stream started), nothing it started keeps running and every admitted request is
    recorded once, as 499."""
    import socket
    import time as clock
    from urllib.parse import urlparse

    from pawa.api.models import ApiUsage

    secret = apikey_create(user=owner, name="leaver")[1]
    address = urlparse(live_asgi)
    for delay in (0.01, 0.05, 0.15, 0.3, "headers"):
        body = json.dumps({"model": "smollm2-135m-instruct", "stream": stream, "max_tokens": 50,
                           "messages": [{"role": "user", "content": f"Habari {delay}"}]}).encode()
        request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\n"
                   f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        with socket.create_connection((address.hostname, address.port)) as connection:
            connection.sendall(request)
            if delay == "headers":
                if not stream:
                    clock.sleep(1.0)  # admitted and waiting for its answer
                else:
                    connection.settimeout(10)
                    assert connection.recv(100).startswith(b"HTTP/1.1 200")
            else:
                clock.sleep(delay)
    deadline = clock.monotonic() + 20
    while clock.monotonic() < deadline:
        generations = list(Generation.objects.filter(user=owner))
        if all(not g.is_active for g in generations) and ApiUsage.objects.count() == len(generations):
            break
        clock.sleep(0.2)
    assert generations, "at least the request that waited was admitted"
    assert {g.status for g in generations} == {"stopped"}
    assert sorted(ApiUsage.objects.values_list("status_code", flat=True)) == [499] * len(generations)


@pytest.mark.parametrize("raw", [
    "[" * 100000 + "]" * 100000,
    '{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "x\\ud800y"}]}',
    '{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    '{"model": {"a": 1}, "messages": [{"role": "user", "content": "hi"}]}',
    "\xff\xfe not utf-8",
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_malformed_json_is_a_400_with_a_message(client, auth, real_models, raw, path):
    data = raw.encode("latin-1") if raw.startswith("\xff") else raw.encode()
    response = client.post(path, data, content_type="application/json", **auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


@pytest.mark.parametrize("raw", [
    "[" * 100000 + "]" * 100000,
    '{"model": {"a": 1}}',
    '{"model": "x\\ud800y"}',
    '{"model": ["smollm2-135m-instruct"]}',
])
def test_the_conversations_endpoint_refuses_malformed_json(client, owner, real_models, raw):
    client.force_login(owner)
    response = client.post("/chat/api/conversations/", raw.encode(), content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]
