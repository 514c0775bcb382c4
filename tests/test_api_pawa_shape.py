"""POST /v1/chat/request: PAWA's hosted API body and envelope on an on-prem PAWA."""

import json

import httpx2 as httpx
import pytest

from pawa.api.keys import apikey_create
from pawa.api.models import ApiUsage
from pawa.generation.models import Generation

SMOL = "smollm2-135m-instruct"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def text(value):
    return [{"type": "text", "text": value}]


@pytest.fixture
def call(live_asgi, owner, real_models, celery_worker):
    headers = {"Authorization": f"Bearer {apikey_create(user=owner, name='t')[1]}"}

    def post(body, **kwargs):
        return httpx.post(f"{live_asgi}/v1/chat/request", json=body, headers=headers, timeout=60, **kwargs)

    return post


BODY = {"model": SMOL, "temperature": 0, "top_p": 0.95, "max_tokens": 24, "frequency_penalty": 0.3,
        "presence_penalty": 0.3, "seed": 2024,
        "messages": [{"role": "system", "content": text("You are a helpful assistant.")},
                     {"role": "user", "content": text("And what is its capital?")}],
        "memoryChat": [{"role": "user", "content": text("Which country is Dodoma in?")},
                       {"role": "assistant", "content": text("Dodoma is in Tanzania.")}]}


def test_it_answers_in_pawas_envelope_with_the_memory_in_the_prompt(call):
    response = call(BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["message"]
    data = body["data"]
    assert data["object"] == "chat.request" and data["model"] == SMOL and isinstance(data["created"], int)
    answer = data["request"][0]
    assert answer["finish_reason"] in ("stop", "length")
    assert answer["message"]["role"] == "assistant" and answer["message"]["content"]
    assert data["usage"]["total_tokens"] > 0
    prompt = Generation.objects.get().prompt
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert prompt[1]["content"] == "Which country is Dodoma in?"
    assert ApiUsage.objects.get().endpoint == "chat.request"


def test_it_streams_pawa_chunks_ending_with_done(call):
    response = call({**BODY, "stream": True, "stream_options": {"include_usage": True}})
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["success"] and c["data"]["object"] == "chat.request.chunk" for c in chunks)
    streamed = "".join(r["delta"].get("content") or "" for c in chunks for r in c["data"]["request"])
    assert streamed == call(BODY).json()["data"]["request"][0]["message"]["content"]
    assert chunks[-1]["data"]["usage"]["completion_tokens"] > 0


def test_errors_keep_the_envelope(call):
    response = call({**BODY, "temperature": 9})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["message"] and body["error"]["param"] == "temperature"
