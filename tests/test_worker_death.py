"""A worker process killed mid-answer: the page hears about it within 10 s and keeps the partial answer."""

import asyncio
import os
import subprocess
import sys
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from pawa.chat.models import Conversation, Message
from pawa.generation.workers import workers_alive
from tests.chat_helpers import connect, events_until, text_of

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_process(real_models):
    env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL,
               PAWA_MODELS_DIR=str(settings.PAWA_MODELS_DIR), PYTHONUNBUFFERED="1")
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pawa", "worker", "--queues", settings.PAWA_INFERENCE_QUEUE, "--pool", "solo",
         "--hostname", f"{name}@%h", "--loglevel", "WARNING", "--without-mingle",
         "--without-gossip"],
        env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(entry["hostname"].startswith(name) for entry in workers_alive()):  # ready to take work
        assert process.poll() is None and time.monotonic() < deadline, "the worker never registered"
        time.sleep(0.2)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


async def test_a_killed_worker_becomes_an_interrupted_answer(owner, worker_process):
    conversation = await database_sync_to_async(Conversation.objects.create)(
        user=owner, model_name="smollm2-135m-instruct", temperature=0, max_tokens=400)
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": conversation.id,
                           "content": "Write a very long story about Mount Kilimanjaro."})
    accepted = await ws.receive_json_from(timeout=10)
    seen = await events_until(ws, timeout=60, stop_after=lambda ev: sum(e["type"] == "delta" for e in ev) >= 3)
    worker_process.kill()
    rest = await events_until(ws, timeout=30)  # the reader is told within the worker TTL, not left hanging
    assert rest[-1]["type"] == "error" and rest[-1]["code"] == "interrupted"
    message = await database_sync_to_async(Message.objects.get)(id=accepted["answer"]["id"])
    assert message.status == "interrupted"
    assert message.content and message.content == text_of(seen + rest)
    await ws.disconnect()


async def test_a_killed_worker_with_no_reader_is_reaped_as_interrupted(owner, worker_process, settings):
    """Nobody follows the answer when its worker dies: the next worker's heartbeat ends it as
    interrupted (it used to stay running for good, holding one of the user's slots)."""
    from pawa.generation.models import Generation
    from pawa.generation.workers import Heartbeat

    settings.PAWA_REAP_SECONDS = 1
    conversation = await database_sync_to_async(Conversation.objects.create)(
        user=owner, model_name="smollm2-135m-instruct", temperature=0, max_tokens=400)
    ws = await connect(owner)
    await ws.send_json_to({"type": "send", "conversation_id": conversation.id,
                           "content": "Write a very long story about Lake Victoria."})
    accepted = await ws.receive_json_from(timeout=10)
    await events_until(ws, timeout=60, stop_after=lambda ev: sum(e["type"] == "delta" for e in ev) >= 3)
    await ws.disconnect()  # no reader from here on
    worker_process.kill()
    restarted = Heartbeat(f"restarted-{uuid.uuid4().hex[:6]}@tests").start()
    try:
        deadline = time.monotonic() + 30
        generation_id = accepted["answer"]["generation_id"]
        while time.monotonic() < deadline:
            generation = await database_sync_to_async(Generation.objects.get)(id=generation_id)
            if generation.status != "running":
                break
            await asyncio.sleep(0.5)
    finally:
        restarted.stop()
    assert generation.status == "interrupted" and generation.text
    message = await database_sync_to_async(Message.objects.get)(id=accepted["answer"]["id"])
    assert message.status == "interrupted" and message.content == generation.text
