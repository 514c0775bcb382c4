"""Many requests at the same moment against a live server: every one is answered, nothing wedges."""

import threading
import time

import httpx2 as httpx
import pytest

from pawa.api.keys import apikey_create
from pawa.api.models import ApiLimits
from pawa.generation.models import Generation

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SMOL = "smollm2-135m-instruct"
ANSWERED = {200, 429, 503}


def at_once(count: int, request) -> list:
    """Run request(index) in `count` threads released together; their results in order."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(index):
        barrier.wait()
        started = time.monotonic()
        try:
            results[index] = (request(index), time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - a hang or a broken connection is the failure
            results[index] = (exc, time.monotonic() - started)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_30_requests_after_idle_seconds_are_all_answered_and_readyz_still_answers(
    live_asgi, owner, real_models, celery_worker
):
    ApiLimits.objects.create(user=owner, requests_per_minute=1000, max_concurrent=100)
    secret = apikey_create(user=owner, name="burst")[1]
    headers = {"Authorization": f"Bearer {secret}"}
    time.sleep(3)  # idle: pooled connections go quiet, as on a real server between bursts

    def complete(_index):
        return httpx.post(f"{live_asgi}/v1/completions", headers=headers, timeout=90,
                          json={"model": SMOL, "prompt": "Habari", "max_tokens": 1})

    results = at_once(30, complete)
    statuses = [getattr(response, "status_code", response) for response, _elapsed in results]
    assert all(status in ANSWERED for status in statuses), statuses
    assert max(elapsed for _response, elapsed in results) < 90
    assert statuses.count(200) >= 1
    assert Generation.objects.active().count() == 0
    readyz = httpx.get(f"{live_asgi}/readyz", timeout=5)
    assert readyz.status_code == 200, readyz.text
    assert httpx.get(f"{live_asgi}/healthz", timeout=5).status_code == 200
    assert complete(0).status_code == 200


def test_per_user_concurrency_holds_under_a_parallel_burst_on_the_api(live_asgi, owner, real_models, idle_worker):
    ApiLimits.objects.create(user=owner, requests_per_minute=1000, max_concurrent=2)
    secret = apikey_create(user=owner, name="burst")[1]

    answered = threading.Barrier(6)

    def stream(_index):
        # Admission happens before the first byte: the status tells admitted from refused. The
        # admitted streams stay open until every request has its answer (closing one frees a slot).
        with httpx.stream("POST", f"{live_asgi}/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {secret}"},
                          json={"model": SMOL, "messages": [{"role": "user", "content": "Habari?"}],
                                "stream": True}) as response:
            code = None
            if response.status_code != 200:
                response.read()
                code = response.json()["error"]["code"]
            answered.wait(timeout=30)
            return response.status_code, code

    results = at_once(6, stream)
    outcomes = sorted((response for response, _elapsed in results), key=str)
    assert outcomes == [(200, None)] * 2 + [(429, "concurrency_limit")] * 4
