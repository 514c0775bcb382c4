"""Readiness checks: the database, Redis and at least one Celery worker must answer."""

import logging

import redis
from django.conf import settings
from django.db import connection

from pawa.celery import app

log = logging.getLogger(__name__)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        log.exception("database check failed")
        return False


def redis_ok() -> bool:
    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def workers_ok(timeout: float = 1.0) -> bool:
    try:
        return bool(app.control.ping(timeout=timeout))
    except Exception:  # noqa: BLE001 - broker down or no answer
        return False


def run_checks() -> dict[str, bool]:
    checks = {"database": database_ok(), "redis": redis_ok()}
    # Asking workers goes through the broker: without Redis there is no answer to wait for.
    checks["worker"] = checks["redis"] and workers_ok()
    return checks
