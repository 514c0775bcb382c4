"""Real worker processes in the registry: they announce themselves, leave it, and their death is
noticed by requests that were accepted just before."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx2 as httpx
import pytest
from django.conf import settings

from pawa.api.keys import apikey_create
from pawa.generation.models import Generation
from pawa.generation.workers import workers_alive
from tests.test_worker_death import database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SMOL = "smollm2-135m-instruct"


@pytest.fixture
def start_worker(real_models):
    processes = []

    def start() -> tuple[subprocess.Popen, str]:
        name = f"registry-{uuid.uuid4().hex[:6]}"
        env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL,
                   PAWA_MODELS_DIR=str(settings.PAWA_MODELS_DIR), PAWA_WORKER_TTL="3",
                   PAWA_WORKER_HEARTBEAT_SECONDS="1", PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pawa", "worker", "--queues", settings.PAWA_INFERENCE_QUEUE,
             "--pool", "threads", "--concurrency", "2", "--hostname", f"{name}@%h", "--loglevel", "WARNING",
             "--without-mingle", "--without-gossip"],
            env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        deadline = time.monotonic() + 60
        while not any(entry["hostname"].startswith(name) for entry in workers_alive()):
            assert process.poll() is None and time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.2)
        return process, name

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_a_worker_registers_when_ready_and_leaves_at_a_clean_shutdown(start_worker):
    process, name = start_worker()
    [entry] = [entry for entry in workers_alive() if entry["hostname"].startswith(name)]
    assert entry["pid"] == process.pid and entry["concurrency"] == 2
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert not any(entry["hostname"].startswith(name) for entry in workers_alive())


def test_a_request_accepted_just_after_the_only_worker_died_is_answered(start_worker, live_asgi, owner, settings):
    settings.PAWA_NO_WORKER_GRACE = 2
    process, _name = start_worker()
    secret = apikey_create(user=owner, name="t")[1]
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": SMOL, "messages": [{"role": "user", "content": "Habari?"}], "max_tokens": 5, "stream": True}
    process.kill()  # its registry entry lives on for a few seconds
    started = time.monotonic()
    response = httpx.post(f"{live_asgi}/v1/chat/completions", headers=headers, json=body, timeout=30)
    assert response.status_code == 200  # accepted: the registry still listed the worker
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    error = json.loads(events[-2])["error"]
    assert events[-1] == "[DONE]" and error["code"] == "no_worker"
    assert time.monotonic() - started < 15
    assert Generation.objects.get().status == "error"
    # Once the entry expired, requests are refused at once.
    refused = httpx.post(f"{live_asgi}/v1/chat/completions", headers=headers, json={**body, "stream": False},
                         timeout=10)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "no_worker"
    assert refused.headers["retry-after"]
