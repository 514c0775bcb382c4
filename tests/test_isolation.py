"""The suite's own state: nothing one test leaves running reaches the next, nothing is shared
with a `make run` on the same machine."""

import asyncio
import threading

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from tests.chat_helpers import connect

pytestmark = pytest.mark.django_db(transaction=True)

_leftover: dict = {}


def test_a_consumer_left_receiving_in_another_event_loop():
    """What a live server's websocket consumer looks like when its test ends before it does:
    still inside channel_layer.receive(), in an event loop of another thread."""
    layer = get_channel_layer()
    loop = asyncio.new_event_loop()
    receiving = threading.Event()

    async def receive_forever():
        channel = await layer.new_channel()
        receiving.set()
        try:
            await layer.receive(channel)
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=loop.run_until_complete, args=(receive_forever(),), daemon=True)
    thread.start()
    assert receiving.wait(10)
    _leftover.update(loop=loop, thread=thread)


async def test_the_next_test_receives_on_the_channel_layer(owner):
    try:
        ws = await connect(owner)
        await ws.send_json_to({"type": "watch", "conversation_id": 10**9})
        event = await ws.receive_json_from(timeout=10)
        assert event["code"] == "not_found"
        await ws.disconnect()
    finally:
        loop = _leftover.get("loop")
        if loop is not None:
            for task in asyncio.all_tasks(loop):
                loop.call_soon_threadsafe(task.cancel)
            _leftover["thread"].join(timeout=10)


def test_the_run_has_its_own_redis_queues_and_var_dir():
    assert settings.PAWA_INFERENCE_QUEUE != "inference"
    assert settings.CELERY_TASK_DEFAULT_QUEUE != "default"
    assert settings.REDIS_PREFIX != "pawa"
    assert settings.CACHES["default"]["KEY_PREFIX"].startswith(settings.REDIS_PREFIX)
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"].startswith(settings.REDIS_PREFIX)
    assert settings.PAWA_QUEUE_KEY.startswith(settings.REDIS_PREFIX)
    assert settings.VAR_DIR != settings.BASE_DIR / "var"
    if settings.REDIS_EMBEDDED:
        assert settings.EMBEDDED_REDIS_PORT != 6389
