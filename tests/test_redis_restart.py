"""Redis restarted in the middle of an answer: the reader hears about it, the text written so
far is kept, and the next answer works. Runs on a Redis of its own, so it can restart it."""

import asyncio
import socket
import subprocess
import threading
import time

import pytest
import redis
import redis.asyncio as aioredis
from channels.db import database_sync_to_async

from inference import relay
from pawa.generation.models import Generation
from pawa.generation.tasks import run_generation
from pawa.ops import localredis

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class RestartableRedis:
    def __init__(self, directory):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process = None

    def start(self):
        command = [localredis.server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
                   "--dir", str(self.directory), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        localredis.wait_until_up(self.url)

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path, settings):
    server = RestartableRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    yield server
    server.kill()


def new_generation(owner, text):
    return Generation.objects.create(
        user=owner, model_name="smollm2-135m-instruct", prompt=[{"role": "user", "content": text}],
        params={"temperature": 0, "max_tokens": 400, "repetition_penalty": 1.1},
    )


async def test_a_redis_restart_mid_answer_interrupts_it_and_keeps_its_text(owner, real_models, own_redis):
    generation = await database_sync_to_async(new_generation)(owner, "Write a very long story about a lion and a mouse.")
    worker = threading.Thread(target=run_generation, args=(str(generation.id),), daemon=True)
    worker.start()
    client = aioredis.Redis.from_url(own_redis.url)
    events, restarted = [], False
    try:
        async with asyncio.timeout(120):
            async for _entry_id, event in relay.follow(client, str(generation.id), reconnect_seconds=60):
                events.append(event)
                if not restarted and sum(e["type"] == "delta" for e in events) >= 3:
                    own_redis.kill()
                    await asyncio.sleep(1.0)
                    own_redis.start()
                    restarted = True
    finally:
        await client.aclose()
    worker.join(timeout=60)
    assert restarted
    assert events[-1]["type"] == "error" and events[-1]["code"] == "interrupted"
    saved = await database_sync_to_async(Generation.objects.get)(id=generation.id)
    assert saved.status == Generation.Status.INTERRUPTED
    seen = "".join(e["text"] for e in events if e["type"] == "delta")
    assert seen and saved.text.startswith(seen)

    following = await database_sync_to_async(new_generation)(owner, "Habari za asubuhi?")
    await asyncio.to_thread(run_generation, str(following.id))
    done = await database_sync_to_async(Generation.objects.get)(id=following.id)
    assert done.status == Generation.Status.COMPLETE and done.text
    assert redis.Redis.from_url(own_redis.url).ping()
