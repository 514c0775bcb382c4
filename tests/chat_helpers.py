"""Helpers for chat tests: a websocket client on the real consumer, and waiting for events."""

import asyncio

from channels.testing import WebsocketCommunicator

from pawa.chat.consumers import ChatConsumer


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def events_until(communicator, final=("done", "error"), timeout=60.0, stop_after=None):
    """Collect events until a final one (or stop_after(events) is true)."""
    events = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"no final event; got {[e['type'] for e in events]}"
        event = await communicator.receive_json_from(timeout=remaining)
        events.append(event)
        if event["type"] in final and event.get("code") != "relay":
            return events
        if stop_after and stop_after(events):
            return events


def text_of(events) -> str:
    return "".join(e["text"] for e in events if e["type"] == "delta")
