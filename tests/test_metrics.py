"""GET /metrics (Prometheus), request ids in responses and log records."""

import json
import logging
import re
import time
import uuid

import httpx2 as httpx
import pytest
from channels.db import database_sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from pawa.api.keys import apikey_create
from pawa.chat.models import Conversation
from pawa.ops.logs import ContextFilter, logging_config
from tests.chat_helpers import connect, events_until
from tests.worker_processes import SMOL, start_worker, stop_worker, wait_until_ready

SERIES = [
    "pawa_http_requests", "pawa_generations", "pawa_prompt_tokens", "pawa_completion_tokens",
    "pawa_time_to_first_token_seconds", "pawa_tokens_per_second", "pawa_batch_size", "pawa_queue_length",
    "pawa_active_streams", "pawa_workers_live", "pawa_worker_models",
]


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(parsed: dict, name: str, **labels) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(v for (sample, items), v in parsed.items()
               if sample == name and all(dict(items).get(k) == str(w) for k, w in labels.items()))


@pytest.mark.django_db
def test_it_answers_loopback_clients_with_every_series(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert set(SERIES) <= names


@pytest.mark.django_db
def test_it_refuses_other_networks_unless_allowed(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 403
    # Through a proxy the client is whoever the proxy served, even when the proxy is local.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 403
    settings.PAWA_METRICS_ALLOW = ["203.0.113.0/24", "10.1.2.3"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="198.51.100.1").status_code == 403


@pytest.mark.django_db
def test_it_needs_the_configured_bearer_token_from_other_networks(client, settings):
    settings.PAWA_METRICS_TOKEN = "scrape-me-9f2c"
    outside = {"REMOTE_ADDR": "203.0.113.7"}
    refused = client.get("/metrics", **outside)
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-9f2c", **outside).status_code == 200
    assert client.get("/metrics").status_code == 200  # loopback needs none
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_a_typo_in_the_allowed_networks_is_refused_at_start():
    from django.core.exceptions import ImproperlyConfigured

    from pawa.settings import _check_networks

    with pytest.raises(ImproperlyConfigured, match="not-a-network"):
        _check_networks(["10.0.0.0/8", "not-a-network"])


@pytest.mark.django_db
def test_responses_carry_a_request_id_and_so_do_their_log_records(client):
    records = []
    handler = logging.Handler()
    handler.addFilter(ContextFilter())
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="trace-42.a")
        fresh = client.get("/healthz", HTTP_X_REQUEST_ID="not sane; <script>")
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code == 404 and response["X-Request-ID"] == "trace-42.a"
    assert re.fullmatch(r"req_[0-9a-f]{32}", fresh["X-Request-ID"])
    not_found = [r for r in records if r.name == "django.request" and "no-such-page" in r.getMessage()]
    assert not_found and all(r.request_id == "trace-42.a" for r in not_found)
    access = [r for r in records if r.name == "pawa.access" and "/no-such-page/ 404" in r.getMessage()]
    assert access and access[0].request_id == "trace-42.a"


def test_json_log_lines_carry_the_ids():
    config = logging_config(log_format="json", level="INFO")
    options = {k: v for k, v in config["formatters"]["json"].items() if k != "()"}
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(**options)
    record = logging.LogRecord("pawa.test", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    from pawa.ops.logs import log_context

    with log_context(request_id="req_1", generation_id="gen-2"):
        ContextFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["message"] == "hello there" and line["level"] == "INFO"
    assert line["request_id"] == "req_1" and line["generation_id"] == "gen-2"
    with pytest.raises(ValueError):
        logging_config(log_format="xml", level="INFO")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_counts_rise_after_a_real_chat_answer_and_api_call_counted_by_a_worker_process(
    live_asgi, owner, real_models, tmp_path
):
    """A worker in another process ends the generations: what it counts reaches the web
    process's /metrics through Redis, and its log lines carry the generation and request ids."""
    log_path = tmp_path / "worker.log"
    worker = start_worker("metrics", log_path, concurrency=2)
    try:
        await database_sync_to_async(wait_until_ready)({"metrics": worker})
        async with httpx.AsyncClient(base_url=live_asgi, timeout=60) as http:
            before = samples((await http.get("/metrics")).text)
            conversation = await database_sync_to_async(Conversation.objects.create)(
                user=owner, model_name=SMOL, temperature=0, max_tokens=8)
            ws = await connect(owner)
            await ws.send_json_to({"type": "send", "conversation_id": conversation.id, "content": "Hello!"})
            events = await events_until(ws, timeout=60)
            await ws.disconnect()
            assert events[-1]["type"] == "done", events[-1]
            secret = (await database_sync_to_async(apikey_create)(user=owner, name="metrics"))[1]
            answer = await http.post("/v1/chat/completions", headers={
                "Authorization": f"Bearer {secret}", "X-Request-ID": "trace-api-1"},
                json={"model": SMOL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6})
            assert answer.status_code == 200 and answer.headers["x-request-id"] == "trace-api-1"
            deadline = time.monotonic() + 15

            def grown(name, **labels):
                return value(after, name, **labels) > value(before, name, **labels)

            while True:  # each process writes its counts to Redis within a second
                after = samples((await http.get("/metrics")).text)
                if all([grown("pawa_generations_total", model=SMOL, surface="chat"),
                        grown("pawa_generations_total", model=SMOL, surface="api"),
                        grown("pawa_http_requests_total", endpoint="api-chat-completions", status=200)]):
                    break
                assert time.monotonic() < deadline, "the counts did not grow"
                time.sleep(0.3)
        assert grown("pawa_prompt_tokens_total", model=SMOL, surface="chat")
        assert grown("pawa_completion_tokens_total", model=SMOL, surface="api")
        assert value(after, "pawa_time_to_first_token_seconds_count", model=SMOL) >= \
            value(before, "pawa_time_to_first_token_seconds_count", model=SMOL) + 2
        assert grown("pawa_tokens_per_second_count", model=SMOL)
        assert grown("pawa_batch_size_count", model=SMOL)
        assert value(after, "pawa_workers_live") >= 1
        assert any(name == "pawa_worker_models" and dict(items)["model"] == SMOL and
                   dict(items)["worker"].startswith("metrics@") for name, items in after)
        # One answer followed by its ids: the worker's log line has both the request and generation id.
        generation_id = str(uuid.UUID(answer.json()["id"].removeprefix("chatcmpl-")))
        lines = [line for line in log_path.read_text().splitlines() if generation_id in line]
        assert any("finished on metrics@" in line and "trace-api-1" in line for line in lines), lines
    finally:
        stop_worker(worker)


@pytest.mark.django_db
def test_histograms_are_cumulative_with_sum_and_count(client):
    from pawa.ops.metrics import BATCH_SIZE, histogram_observe, metrics_flush

    for size in (1, 3, 8, 100):
        histogram_observe(BATCH_SIZE, ("histogram-check",), size)
    metrics_flush()
    parsed = samples(client.get("/metrics").content.decode())
    buckets = {dict(items)["le"]: v for (name, items), v in parsed.items()
               if name == "pawa_batch_size_bucket" and dict(items)["model"] == "histogram-check"}
    assert buckets == {"1.0": 1, "2.0": 1, "4.0": 2, "8.0": 3, "16.0": 3, "32.0": 3, "64.0": 3, "+Inf": 4}
    assert value(parsed, "pawa_batch_size_sum", model="histogram-check") == 112
    assert value(parsed, "pawa_batch_size_count", model="histogram-check") == 4
