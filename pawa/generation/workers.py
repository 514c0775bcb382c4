"""The worker registry: every Celery worker process announces itself in Redis while it runs.

Each worker process writes `{REDIS_PREFIX}:worker:<hostname>` (JSON: hostname, pid, started,
concurrency, loaded models, last beat) every PAWA_WORKER_HEARTBEAT_SECONDS; the key expires
after PAWA_WORKER_TTL seconds without a beat, so a killed worker drops out on its own. A clean
shutdown removes it at once. Reading the registry is one Redis round trip with short timeouts:
the web process never asks the broker whether a worker lives (a broadcast ping shares the
producer pool with enqueueing, and under a burst it wedged every request).

The same heartbeat thread runs the reaper (`generation_reap`) every PAWA_REAP_SECONDS.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import redis
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connection

from pawa.generation.redis import sync_client

log = logging.getLogger(__name__)


def worker_key(hostname: str) -> str:
    """One worker process's entry; it expires PAWA_WORKER_TTL seconds after the last beat."""
    return f"{settings.REDIS_PREFIX}:worker:{hostname}"


def index_key() -> str:
    """The hostnames that may have an entry: reading the registry never scans the keyspace."""
    return f"{settings.REDIS_PREFIX}:workers"


def last_seen_key() -> str:
    """Unix time of the latest beat or clean shutdown of any worker (never expires)."""
    return f"{settings.REDIS_PREFIX}:workers:last-seen"


def _loaded_models() -> list[str]:
    try:
        from pawa.generation.engines import loaded_models
    except (ImportError, AttributeError):
        return []
    try:
        return list(loaded_models())
    except Exception:  # noqa: BLE001 - the registry must keep beating whatever the engines do
        log.exception("could not list the loaded models")
        return []


class Heartbeat:
    """Keeps one worker's registry entry fresh from a daemon thread, and runs the reaper."""

    def __init__(self, hostname: str, *, concurrency: int = 1, reap: bool = True):
        self.hostname = hostname
        self.concurrency = max(1, int(concurrency or 1))
        self.reap = reap
        self.started = time.time()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_reap = 0.0

    def entry(self) -> dict:
        """What the registry says about this worker (see `workers_alive`)."""
        return {
            "hostname": self.hostname,
            "pid": os.getpid(),
            "started": self.started,
            "beat": time.time(),
            "concurrency": self.concurrency,
            "models": _loaded_models(),
        }

    def beat(self) -> None:
        """Write this worker's entry (raises redis.RedisError when Redis cannot be reached)."""
        now = time.time()
        pipe = sync_client().pipeline()
        pipe.set(worker_key(self.hostname), json.dumps(self.entry()), ex=settings.PAWA_WORKER_TTL)
        pipe.sadd(index_key(), self.hostname)
        pipe.set(last_seen_key(), now)
        pipe.execute()

    def start(self) -> Heartbeat:
        """Beat once now, then every PAWA_WORKER_HEARTBEAT_SECONDS from a daemon thread.

        Raises redis.RedisError when the first beat cannot be written.
        """
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"pawa-heartbeat-{self.hostname}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and leave the registry at once."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            pipe = sync_client().pipeline()
            pipe.delete(worker_key(self.hostname))
            pipe.srem(index_key(), self.hostname)
            pipe.set(last_seen_key(), time.time())
            pipe.execute()
        except redis.RedisError:
            log.warning("could not remove worker %s from the registry", self.hostname)

    def _run(self) -> None:
        while not self._stopped.wait(settings.PAWA_WORKER_HEARTBEAT_SECONDS):
            try:
                self.beat()
            except redis.RedisError as exc:
                log.warning("worker heartbeat failed: %s", exc)
            if self.reap and time.monotonic() - self._last_reap >= settings.PAWA_REAP_SECONDS:
                self._last_reap = time.monotonic()
                self._reap()

    def _reap(self) -> None:
        from pawa.generation.services import generation_reap

        try:
            generation_reap()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("reaping generations failed")
        finally:
            # This thread is no request: nothing else closes its database connection.
            close_old_connections()
            connection.close()


_heartbeat: Heartbeat | None = None
_heartbeat_lock = threading.Lock()


def worker_heartbeat_start(*, hostname: str, concurrency: int = 1) -> Heartbeat:
    """Register this process as a live worker and keep it registered until stopped.

    One heartbeat per process: a second call replaces the first. Raises redis.RedisError when
    the first beat cannot be written.
    """
    global _heartbeat
    with _heartbeat_lock:
        if _heartbeat is not None:
            _heartbeat.stop()
        _heartbeat = Heartbeat(hostname, concurrency=concurrency).start()
        return _heartbeat


def worker_heartbeat_stop() -> None:
    """Leave the registry (a clean shutdown); nothing happens when no heartbeat runs."""
    global _heartbeat
    with _heartbeat_lock:
        if _heartbeat is not None:
            _heartbeat.stop()
            _heartbeat = None


def workers_alive() -> list[dict]:
    """The registry entries of the workers that beat within PAWA_WORKER_TTL seconds.

    Each entry: hostname, pid, started and beat (Unix seconds), concurrency (tasks at once),
    models (names loaded in that process). An empty list when Redis cannot be reached.
    """
    try:
        return _registry_entries()
    except redis.RedisError:
        log.warning("cannot read the worker registry")
        return []


def _registry_entries() -> list[dict]:
    """Raises redis.RedisError when Redis cannot be reached."""
    client = sync_client()
    hostnames = sorted(name.decode() if isinstance(name, bytes) else name for name in client.smembers(index_key()))
    values = client.mget([worker_key(name) for name in hostnames]) if hostnames else []
    expired = [name for name, value in zip(hostnames, values) if value is None]
    if expired:  # killed workers: their entry expired, forget their name
        client.srem(index_key(), *expired)
    entries = []
    for value in values:
        try:
            entries.append(json.loads(value))
        except (TypeError, ValueError):
            continue
    return entries


def seconds_without_worker() -> float:
    """0 while a worker is registered; else seconds since the last beat or clean shutdown of any
    worker (infinity when none ever ran).

    Raises redis.RedisError when Redis cannot be reached: an unreachable registry says nothing
    about the workers, so callers must not end generations on it.
    """
    if _registry_entries():
        return 0.0
    last = sync_client().get(last_seen_key())
    return max(0.0, time.time() - float(last)) if last else float("inf")


def worker_capacity(workers: list[dict] | None = None) -> int:
    """How many generations the live workers accept at once (the sum of their Celery
    concurrency; at least 1, also when none is alive)."""
    workers = workers_alive() if workers is None else workers
    return max(1, sum(int(entry.get("concurrency") or 1) for entry in workers))


@worker_ready.connect
def _register_on_ready(sender=None, **kwargs) -> None:
    """The worker consumes: announce it (sender is its Consumer). Training workers do not
    answer generations: they are not announced."""
    if settings.PAWA_WORKER_ROLE != "inference":
        return
    hostname = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    concurrency = getattr(getattr(sender, "controller", None), "concurrency", 1)
    try:
        worker_heartbeat_start(hostname=hostname, concurrency=concurrency)
    except redis.RedisError:
        log.exception("could not register worker %s", hostname)


@worker_shutdown.connect
def _unregister_on_shutdown(sender=None, **kwargs) -> None:
    worker_heartbeat_stop()
