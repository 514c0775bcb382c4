"""Redis clients for the relay, from settings.REDIS_URL."""

from functools import lru_cache

import redis
import redis.asyncio as aioredis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Bounded waits: a Redis in trouble fails a request instead of hanging it.
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=3, socket_timeout=10)


def sync_client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def async_client() -> aioredis.Redis:
    # One per event loop and caller: asyncio connections cannot be shared across loops.
    return aioredis.Redis.from_url(settings.REDIS_URL)
