"""Per-key request and token rate limits, stored atomically in Redis (per-user concurrency: admission)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from pawa.api.errors import ApiError
from pawa.api.models import ApiLimits
from pawa.generation.admission import max_concurrent_for
from pawa.plans.quotas import minute_headroom


@lru_cache(maxsize=2)
def _limiter(url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(url))


def limiter() -> MovingWindowRateLimiter:
    return _limiter(settings.REDIS_URL)


@dataclass
class Limits:
    requests_per_minute: int
    tokens_per_minute: int
    max_concurrent: int


def limits_for(user) -> Limits:
    try:
        override = user.api_limits
    except ApiLimits.DoesNotExist:
        override = None

    def pick(name: str, default: int) -> int:
        value = getattr(override, name, None) if override else None
        return value if value is not None else default

    return Limits(
        requests_per_minute=pick("requests_per_minute", settings.PAWA_API_REQUESTS_PER_MINUTE),
        tokens_per_minute=pick("tokens_per_minute", settings.PAWA_API_TOKENS_PER_MINUTE),
        max_concurrent=max_concurrent_for(user),
    )


def _namespace() -> str:
    """The limiter's key namespace: this installation's Redis prefix (two installations, or two
    test runs, sharing one Redis never count each other's requests)."""
    return f"{settings.REDIS_PREFIX}:api-limits"


def _key_id(api_key) -> str:
    """An API key's identity for counting: its random public prefix, unique and never reused
    (database ids are reused after a rollback or a restore)."""
    return api_key.prefix


def _headers(kind: str, item, key_id: str) -> dict:
    stats = limiter().get_window_stats(item, _namespace(), kind, key_id)
    reset = max(0.0, stats.reset_time - time.time())
    return {
        f"x-ratelimit-limit-{kind}": str(item.amount),
        f"x-ratelimit-remaining-{kind}": str(max(0, stats.remaining)),
        f"x-ratelimit-reset-{kind}": f"{math.ceil(reset)}s",
    }, reset


def check_and_count_request(api_key, user) -> dict:
    """Count one request; 429 when over the per-minute limits. Returns the x-ratelimit-* headers."""
    limits = limits_for(user)
    requests = RateLimitItemPerMinute(limits.requests_per_minute)
    tokens = RateLimitItemPerMinute(limits.tokens_per_minute)
    key_id = _key_id(api_key)
    allowed = limiter().hit(requests, _namespace(), "requests", key_id)
    headers, request_reset = _headers("requests", requests, key_id)
    token_headers, token_reset = _headers("tokens", tokens, key_id)
    headers.update(token_headers)
    if not allowed:
        raise _too_many("requests", requests.amount, request_reset, headers)
    if not limiter().test(tokens, _namespace(), "tokens", key_id):
        raise _too_many("tokens", tokens.amount, token_reset, headers)
    return headers


def plan_tightened_headers(headers: dict, user, *, generates: bool = True) -> dict:
    """The x-ratelimit-* headers of the stricter of the two per-minute limits: the key's (in
    `headers`, from check_and_count_request) and the user's plan (pawa/plans/quotas.py), so a
    Free plan's 5 requests per minute is what a client reads, not the key's default of 60.
    `generates`: the request starts a generation, which the plan counts (listing models does not)."""
    tightened = dict(headers)
    for kind, (limit, remaining, reset) in minute_headroom(user, counting=generates).items():
        key_limit = int(headers.get(f"x-ratelimit-limit-{kind}", limit + 1))
        key_remaining = int(headers.get(f"x-ratelimit-remaining-{kind}", remaining + 1))
        if limit < key_limit or remaining < key_remaining:
            tightened.update({f"x-ratelimit-limit-{kind}": str(min(limit, key_limit)),
                              f"x-ratelimit-remaining-{kind}": str(min(remaining, key_remaining)),
                              f"x-ratelimit-reset-{kind}": f"{reset}s"})
    return tightened


def count_tokens(api_key, user, tokens_used: int) -> None:
    if tokens_used > 0:
        item = RateLimitItemPerMinute(limits_for(user).tokens_per_minute)
        limiter().hit(item, _namespace(), "tokens", _key_id(api_key), cost=tokens_used)


def _too_many(kind: str, amount: int, reset: float, headers: dict) -> ApiError:
    retry = max(1, math.ceil(reset))
    return ApiError(
        429,
        f"Rate limit reached: {amount} {kind} per minute for this key. Try again in {retry} seconds.",
        type="requests" if kind == "requests" else "tokens",
        code="rate_limit_exceeded",
        headers={**headers, "Retry-After": str(retry)},
    )
