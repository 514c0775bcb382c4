"""What the console reads: live state from Redis, usage and speed from the generations."""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Max, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from pawa.generation.models import Generation

CHART_DAYS = 14
TOP_USERS = 8
TOKENS = Coalesce(F("prompt_tokens"), Value(0)) + Coalesce(F("completion_tokens"), Value(0))


def live_state() -> dict:
    """Workers (with their loaded models), queue length, estimated wait of a new request
    (seconds, None before any answer completed) and generations running now."""
    from pawa.generation.services import generation_queue_length, generation_wait_estimate
    from pawa.generation.workers import workers_alive

    workers = workers_alive()
    queue = generation_queue_length()
    return {
        "workers": workers,
        "queue_length": queue,
        "wait_seconds": generation_wait_estimate(queue + 1),
        "running": Generation.objects.filter(status=Generation.Status.RUNNING).count(),
        "queued": Generation.objects.filter(status=Generation.Status.QUEUED).count(),
    }


def today_totals(now=None) -> dict:
    """Today's (TIME_ZONE) requests and tokens, chat and API apart, and the error and
    cancellation rates of today's finished generations (fractions 0–1, None with none finished)."""
    now = now or timezone.now()
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = Generation.objects.filter(created_at__gte=start)
    totals = rows.aggregate(
        requests=Count("id"), tokens=Coalesce(Sum(TOKENS), Value(0)),
        chat=Count("id", filter=Q(source=Generation.Source.WEB)),
        api=Count("id", filter=Q(source=Generation.Source.API)),
        finished=Count("id", filter=~Q(status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING])),
        errors=Count("id", filter=Q(status__in=[Generation.Status.ERROR, Generation.Status.INTERRUPTED])),
        stopped=Count("id", filter=Q(status=Generation.Status.STOPPED)),
    )
    finished = totals["finished"]
    totals["error_rate"] = totals["errors"] / finished if finished else None
    totals["cancel_rate"] = totals["stopped"] / finished if finished else None
    return totals


def _days(now, days: int) -> list:
    today = timezone.localdate(now)
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def _day_starts(day_list: list) -> list[datetime]:
    """Aware midnights (TIME_ZONE) of each day and of the day after the last."""
    following = day_list[-1] + timedelta(days=1)
    return [timezone.make_aware(datetime.combine(day, time.min)) for day in [*day_list, following]]


def daily_usage(days: int = CHART_DAYS, now=None) -> dict:
    """Requests and tokens per day, chat and API apart: {"days": [date], "requests": {"web":
    [n], "api": [n]}, "tokens": {...}}, oldest day first.

    One pass over the period's rows (conditional sums per day on the created_at index); no
    per-row date conversion in the database.
    """
    now = now or timezone.now()
    day_list = _days(now, days)
    bounds = _day_starts(day_list)
    sources = (Generation.Source.WEB, Generation.Source.API)
    aggregates = {}
    for index in range(days):
        for source in sources:
            where = Q(created_at__gte=bounds[index], created_at__lt=bounds[index + 1], source=source)
            aggregates[f"r_{index}_{source}"] = Count("id", filter=where)
            aggregates[f"t_{index}_{source}"] = Coalesce(Sum(TOKENS, filter=where), Value(0))
    totals = Generation.objects.filter(created_at__gte=bounds[0], created_at__lt=bounds[-1]).aggregate(**aggregates)
    return {
        "days": day_list,
        "requests": {source: [totals[f"r_{index}_{source}"] for index in range(days)] for source in sources},
        "tokens": {source: [totals[f"t_{index}_{source}"] for index in range(days)] for source in sources},
    }


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def speed_by_model(days: int = CHART_DAYS, now=None) -> dict:
    """Per model and day: TTFT p50 and p95 (ms) and median tokens per second of the generations
    that produced tokens. {"days": [date], "models": {name: {"ttft_p50": [..], "ttft_p95": [..],
    "tps": [..]}}} with None on days without data."""
    now = now or timezone.now()
    day_list = _days(now, days)
    bounds = _day_starts(day_list)
    samples: dict = defaultdict(lambda: defaultdict(lambda: {"ttft": [], "tps": []}))
    rows = (Generation.objects.filter(created_at__gte=bounds[0], time_to_first_token_ms__isnull=False)
            .values_list("model_name", "created_at", "time_to_first_token_ms", "tokens_per_second"))
    for model, created_at, ttft, tps in rows.iterator(chunk_size=5000):
        day = day_list[min(days - 1, bisect.bisect_right(bounds, created_at) - 1)]
        samples[model][day]["ttft"].append(ttft)
        if tps:
            samples[model][day]["tps"].append(tps)
    models = {}
    for model, by_day in sorted(samples.items()):
        series = {"ttft_p50": [], "ttft_p95": [], "tps": []}
        for day in day_list:
            values = by_day.get(day)
            series["ttft_p50"].append(round(_percentile(values["ttft"], 0.5)) if values and values["ttft"] else None)
            series["ttft_p95"].append(round(_percentile(values["ttft"], 0.95)) if values and values["ttft"] else None)
            series["tps"].append(round(_percentile(values["tps"], 0.5), 1) if values and values["tps"] else None)
        models[model] = series
    return {"days": day_list, "models": models}


def top_users(days: int = 30, limit: int = TOP_USERS, now=None) -> list[tuple[str, int]]:
    """The users with the most tokens over the last `days` days: [(email, tokens)]."""
    now = now or timezone.now()
    rows = (Generation.objects.filter(created_at__gte=now - timedelta(days=days))
            .values("user__email", "user__username").annotate(tokens=Coalesce(Sum(TOKENS), Value(0)))
            .order_by("-tokens")[:limit])
    return [(row["user__email"] or row["user__username"], row["tokens"]) for row in rows if row["tokens"]]


CHARTS_CACHE_KEY = "console:charts"
CHARTS_CACHE_SECONDS = 60


def chart_data() -> dict:
    """`daily_usage`, `speed_by_model` and `top_users` together, cached for a minute: on a
    busy installation they read tens of thousands of rows (benchmarks/console.py measures
    them), and the charts show days, not seconds."""
    from django.core.cache import cache

    def compute() -> dict:
        return {"usage": daily_usage(), "speed": speed_by_model(), "top_users": top_users()}

    return cache.get_or_set(CHARTS_CACHE_KEY, compute, CHARTS_CACHE_SECONDS)


def users_with_usage(days: int = 30, now=None):
    """Every user with `tokens_used` (their tokens over the last `days` days) and `last_active`
    (their latest answer, chat or API, else their last sign-in; None if neither) annotated."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    tokens = Coalesce(F("generations__prompt_tokens"), Value(0)) + Coalesce(F("generations__completion_tokens"),
                                                                             Value(0))
    return get_user_model().objects.select_related("plan").annotate(
        tokens_used=Coalesce(Sum(tokens, filter=Q(generations__created_at__gte=since)), Value(0)),
        last_active=Coalesce(Max("generations__created_at"), F("last_login")))
