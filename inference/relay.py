"""The relay: one Redis Stream per generation carries its events from the worker to readers.

A stream (not Pub/Sub) survives a page reload: a reader resumes from the last entry id it saw.
Any number of readers (browser tabs, SSE clients) follow the same stream. Events are JSON in
the field "e": start, delta (text, time-batched), done, error.

Beside the stream: a cancel flag the worker checks between tokens, and an "alive" key the
worker's heartbeat refreshes, so readers can tell a dead worker from a slow one.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import redis
import redis.asyncio as aioredis

PREFIX = "pawa:gen:"
FINAL_EVENTS = ("done", "error")


def stream_key(generation_id: str) -> str:
    return f"{PREFIX}{generation_id}"


def cancel_key(generation_id: str) -> str:
    return f"{PREFIX}{generation_id}:cancel"


def alive_key(generation_id: str) -> str:
    return f"{PREFIX}{generation_id}:alive"


def encode(event: dict) -> dict:
    return {"e": json.dumps(event, ensure_ascii=False)}


def decode(fields: dict) -> dict:
    raw = fields.get(b"e") or fields.get("e")
    return json.loads(raw)


class StreamWriter:
    """Used by the worker for one generation."""

    def __init__(
        self,
        client: redis.Redis,
        generation_id: str,
        *,
        flush_interval: float = 0.05,
        heartbeat_interval: float = 2.0,
        alive_ttl: int = 6,
        stream_ttl: int = 3600,
        maxlen: int = 20000,
    ):
        self.client = client
        self.id = str(generation_id)
        self.key = stream_key(self.id)
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.alive_ttl = alive_ttl
        self.stream_ttl = stream_ttl
        self.maxlen = maxlen
        self._buffer: list[str] = []
        self._logprobs: list[dict] = []
        self._last_flush = 0.0
        self._stopped = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _add(self, event: dict) -> str:
        return self.client.xadd(self.key, encode(event), maxlen=self.maxlen, approximate=True)

    def _beat(self) -> None:
        while not self._stopped.wait(self.heartbeat_interval):
            try:
                self.client.set(alive_key(self.id), "1", ex=self.alive_ttl)
            except redis.RedisError:
                pass

    def open(self, **info) -> None:
        self.client.set(alive_key(self.id), "1", ex=self.alive_ttl)
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{self.id}", daemon=True)
        self._heartbeat.start()
        self._add({"type": "start", **info})
        self._last_flush = time.monotonic()

    def cancelled(self) -> bool:
        return bool(self.client.exists(cancel_key(self.id)))

    def delta(self, text: str, logprobs: list[dict] | None = None) -> None:
        """Text of the answer; `logprobs`: entries of the tokens behind it, for a generation
        that asked for them (a delta event then carries its tokens' entries)."""
        if logprobs:
            self._logprobs.extend(logprobs)
        if not text and not logprobs:
            return
        if text:
            self._buffer.append(text)
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        if self._buffer or self._logprobs:
            event = {"type": "delta", "text": "".join(self._buffer)}
            if self._logprobs:
                event["logprobs"] = list(self._logprobs)
            self._add(event)
            self._buffer.clear()
            self._logprobs.clear()
        self._last_flush = time.monotonic()

    def close(self, event: dict) -> None:
        """Flush, write the final event (done or error) and let the stream expire.

        Raises redis.RedisError when Redis cannot be reached; the heartbeat goes on (the
        generation is still being finished), so the caller may retry.
        """
        self.flush()
        self._add(event)
        pipe = self.client.pipeline()
        pipe.expire(self.key, self.stream_ttl)
        pipe.delete(alive_key(self.id), cancel_key(self.id))
        pipe.execute()
        self.stop_heartbeat()

    def stop_heartbeat(self) -> None:
        self._stopped.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=1)


def request_cancel(client: redis.Redis, generation_id: str, ttl: int = 3600) -> None:
    client.set(cancel_key(str(generation_id)), "1", ex=ttl)


def is_alive(client: redis.Redis, generation_id: str) -> bool:
    return bool(client.exists(alive_key(str(generation_id))))


def text_so_far(client: redis.Redis, generation_id: str) -> str:
    """The text of every delta written so far (to keep a partial answer)."""
    entries = client.xrange(stream_key(str(generation_id)))
    return "".join(event.get("text", "") for event in (decode(f) for _, f in entries) if event["type"] == "delta")


def close_stream(client: redis.Redis, generation_id: str, event: dict, stream_ttl: int = 3600) -> None:
    """Write a final event on behalf of a worker (a queued generation cancelled, a dead worker)."""
    key = stream_key(str(generation_id))
    client.xadd(key, encode(event))
    client.expire(key, stream_ttl)


async def follow(
    client: aioredis.Redis,
    generation_id: str,
    last_id: str = "0-0",
    *,
    poll_seconds: float = 1.0,
    on_idle: Callable[[], Awaitable[dict | None]] | None = None,
    reconnect_seconds: float = 30.0,
) -> AsyncIterator[tuple[str | None, dict]]:
    """Yield (entry id, event) from last_id on, until a final event.

    When nothing arrives for poll_seconds, on_idle() may return an event to pass on (a queue
    position, or an error for a dead worker); an error from on_idle ends the stream. While
    Redis is unreachable it retries for up to reconnect_seconds, then raises redis.ConnectionError.
    """
    key = stream_key(str(generation_id))
    lost_since: float | None = None
    while True:
        try:
            response = await client.xread({key: last_id}, block=int(poll_seconds * 1000), count=200)
            idle_event = await on_idle() if not response and on_idle is not None else None
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis restarting: wait for it (the client reconnects by itself), then resume
            # from the last entry seen; give up after reconnect_seconds.
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > reconnect_seconds:
                raise
            await asyncio.sleep(0.5)
            continue
        lost_since = None
        if response:
            for entry_id, fields in response[0][1]:
                last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                event = decode(fields)
                yield last_id, event
                if event["type"] in FINAL_EVENTS:
                    return
            continue
        if idle_event is not None:
            yield None, idle_event
            if idle_event["type"] in FINAL_EVENTS:
                return
