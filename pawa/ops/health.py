"""Health checks, each bounded to about a second.

Liveness (/healthz): this web process can serve — its database answers, Redis answers, and a
broker producer can be taken from the pool (a wedged pool is what once hung every request while
/healthz still said 200). Readiness (/readyz): all of that, and at least one model worker is
registered (pawa.generation.workers), so generations can run.
"""

import logging

import redis
from django.conf import settings
from django.db import connection

from pawa.celery import app
from pawa.generation.workers import workers_alive

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 1.0


def database_ok() -> bool:
    """SELECT 1 answers (PostgreSQL: connect timeout 5 s; SQLite: a local file)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        log.exception("database check failed")
        return False


def redis_ok() -> bool:
    """PING answers within TIMEOUT_SECONDS."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=TIMEOUT_SECONDS,
                                  socket_connect_timeout=TIMEOUT_SECONDS)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def broker_ok() -> bool:
    """A producer can be taken from the pool that enqueueing uses (without sending anything)."""
    try:
        with app.producer_pool.acquire(block=True, timeout=TIMEOUT_SECONDS):
            return True
    except Exception:  # noqa: BLE001 - an exhausted or broken pool
        log.warning("no broker producer available within %.1f s", TIMEOUT_SECONDS)
        return False


def workers_ok() -> bool:
    """At least one worker is in the registry (one Redis read, no broker round trip)."""
    return bool(workers_alive())


def liveness_checks() -> dict[str, bool]:
    """What this web process needs to serve: {"database", "redis", "broker"} → ok."""
    checks = {"database": database_ok(), "redis": redis_ok()}
    # Both the broker and the worker registry live in Redis: without it they cannot answer.
    checks["broker"] = checks["redis"] and broker_ok()
    return checks


def run_checks() -> dict[str, bool]:
    """Readiness: the liveness checks and a registered worker."""
    checks = liveness_checks()
    checks["worker"] = checks["redis"] and workers_ok()
    return checks
