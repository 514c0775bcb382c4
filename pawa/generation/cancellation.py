"""Cancel flags for the generations a worker process runs, read with one Redis call per interval.

A reader (Stop in the chat, a client that went away) sets a generation's cancel key in Redis
(inference.relay.request_cancel). The worker does not ask Redis per token: one thread per
process reads the keys of every running generation at once every `interval` seconds and sets
the generation's `threading.Event`, which the batch scheduler checks between tokens.
"""

from __future__ import annotations

import logging
import threading

import redis

from inference import relay
from pawa.generation.redis import sync_client

log = logging.getLogger(__name__)


class CancelWatcher:
    """interval: seconds between reads (0.05: a Stop takes effect within ~50 ms plus one token)."""

    def __init__(self, client: redis.Redis, interval: float = 0.05):
        self.client = client
        self.interval = interval
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, generation_id: str) -> threading.Event:
        """The event that is set once the generation's cancel flag appears."""
        with self._lock:
            event = self._events.setdefault(str(generation_id), threading.Event())
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pawa-cancel-watcher", daemon=True)
                self._thread.start()
            return event

    def unwatch(self, generation_id: str) -> None:
        with self._lock:
            self._events.pop(str(generation_id), None)

    def poll(self) -> None:
        """Read every watched flag once (one MGET)."""
        with self._lock:
            watched = list(self._events.items())
        if not watched:
            return
        values = self.client.mget([relay.cancel_key(generation_id) for generation_id, _ in watched])
        for (_, event), value in zip(watched, values, strict=True):
            if value is not None:
                event.set()

    def _run(self) -> None:
        stopped = threading.Event()
        while not stopped.wait(self.interval):
            try:
                self.poll()
            except redis.RedisError as exc:
                log.warning("cannot read cancel flags: %s", exc)
                stopped.wait(1.0)


_watcher: CancelWatcher | None = None
_watcher_lock = threading.Lock()


def cancel_watcher() -> CancelWatcher:
    """This process's watcher."""
    global _watcher
    with _watcher_lock:
        if _watcher is None:
            _watcher = CancelWatcher(sync_client())
        return _watcher
