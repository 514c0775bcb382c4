"""A user's quotas (their plan, with an administrator's per-user overrides) and their usage.

Usage is read from the generations the user started, chat and API alike (`Generation` rows:
one request each, tokens = prompt tokens + completion tokens). `generation_admit` calls
`quota_exceeded` while it holds the user's lock, so counting and inserting never interleave:
the counts are exact under concurrency.

Windows: requests and tokens per minute count the last 60 seconds (sliding); tokens per day
and per month count from the start of the current day and month in TIME_ZONE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pawa.api.models import ApiLimits
from pawa.generation.models import Generation
from pawa.plans.models import Plan

MINUTE = timedelta(seconds=60)
RATE_LIMIT = "rate_limit_exceeded"  # a per-minute quota: wait a little
INSUFFICIENT_QUOTA = "insufficient_quota"  # a per-day or per-month token quota: wait for the reset

QUOTA_LABELS = {
    "requests_per_minute": _("Requests per minute"),
    "tokens_per_minute": _("Tokens per minute"),
    "tokens_per_day": _("Tokens per day"),
    "tokens_per_month": _("Tokens per month"),
}


@dataclass(frozen=True)
class Quotas:
    """What one user may do. A quota of None is unlimited; `allowed_models` empty allows all."""

    plan: Plan | None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    max_concurrent: int = 0
    allowed_models: tuple[str, ...] = field(default_factory=tuple)

    def allows_model(self, name: str) -> bool:
        return not self.allowed_models or name in self.allowed_models


@dataclass(frozen=True)
class Exceeded:
    """A quota that is used up: `name` is a key of QUOTA_LABELS, `category` RATE_LIMIT or
    INSUFFICIENT_QUOTA, `resets_at` an aware datetime, `retry_after` whole seconds (≥ 1)."""

    name: str
    category: str
    limit: int
    resets_at: datetime
    retry_after: int


def default_plan() -> Plan | None:
    """PAWA_DEFAULT_PLAN (a plan's short name) when set, else the plan marked default."""
    if settings.PAWA_DEFAULT_PLAN:
        plan = Plan.objects.filter(slug=settings.PAWA_DEFAULT_PLAN).first()
        if plan is not None:
            return plan
    return Plan.objects.filter(is_default=True).first()


# The plan a superuser without a plan of their own is on: the person who installed PAWA is not
# held to the sign-up plan (a console edit gives them any other).
SUPERUSER_PLAN = "enterprise"


def plan_for(user) -> Plan | None:
    """The user's own plan; else, for a superuser, the Enterprise plan; else the default plan.
    None only when no plan exists at all."""
    plan_id = getattr(user, "plan_id", None)
    if plan_id is not None:
        plan = Plan.objects.filter(pk=plan_id).first()
        if plan is not None:
            return plan
    if getattr(user, "is_superuser", False):
        plan = Plan.objects.filter(slug=SUPERUSER_PLAN).first()
        if plan is not None:
            return plan
    return default_plan()


def quotas_for(user) -> Quotas:
    """The plan's quotas, each replaced by the user's override (`ApiLimits`) where one is set."""
    plan = plan_for(user)
    override = ApiLimits.objects.filter(user_id=user.pk).first()

    def pick(name: str):
        value = getattr(override, name, None) if override is not None else None
        if value is not None:
            return value
        return getattr(plan, name, None) if plan is not None else None

    return Quotas(
        plan=plan,
        requests_per_minute=pick("requests_per_minute"),
        tokens_per_minute=pick("tokens_per_minute"),
        tokens_per_day=pick("tokens_per_day"),
        tokens_per_month=pick("tokens_per_month"),
        max_concurrent=pick("max_concurrent") or settings.PAWA_MAX_CONCURRENT_GENERATIONS,
        allowed_models=tuple(plan.allowed_models or ()) if plan is not None else (),
    )


def _window_starts(now: datetime) -> dict[str, datetime]:
    local = timezone.localtime(now)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {"minute": now - MINUTE, "day": day, "month": day.replace(day=1)}


def _next_month(start: datetime) -> datetime:
    naive = start.replace(tzinfo=None)
    following = naive.replace(year=naive.year + 1, month=1) if naive.month == 12 else naive.replace(month=naive.month + 1)
    return timezone.make_aware(following, timezone.get_current_timezone())


def _usage(user, since: datetime):
    tokens = Coalesce(F("prompt_tokens"), Value(0)) + Coalesce(F("completion_tokens"), Value(0))
    return Generation.objects.filter(user_id=user.pk, created_at__gte=since).aggregate(
        requests=Count("id"), tokens=Coalesce(Sum(tokens), Value(0)),
    )


def _minute_reset(user, since: datetime, now: datetime, *, tokens_needed: int | None = None) -> datetime:
    """When the sliding minute frees room: the oldest request in it leaves the window (for
    tokens: when enough of the oldest requests' tokens have left)."""
    rows = Generation.objects.filter(user_id=user.pk, created_at__gte=since).order_by("created_at")
    if tokens_needed is None:
        oldest = rows.values_list("created_at", flat=True).first()
        return (oldest or now) + MINUTE
    freed = 0
    for created_at, prompt, completion in rows.values_list("created_at", "prompt_tokens", "completion_tokens"):
        freed += (prompt or 0) + (completion or 0)
        if freed >= tokens_needed:
            return created_at + MINUTE
    return now + MINUTE


def _exceeded(name: str, category: str, limit: int, resets_at: datetime, now: datetime) -> Exceeded:
    retry = max(1, int((resets_at - now).total_seconds() + 0.999))
    return Exceeded(name=name, category=category, limit=limit, resets_at=resets_at, retry_after=retry)


def quota_exceeded(*, user, quotas: Quotas, now: datetime | None = None) -> Exceeded | None:
    """The first quota one more request would break, or None. Call it under the user's lock
    (`generation_admit` does) so that the count and the new generation are one step."""
    now = now or timezone.now()
    starts = _window_starts(now)
    if quotas.requests_per_minute is not None or quotas.tokens_per_minute is not None:
        minute = _usage(user, starts["minute"])
        if quotas.requests_per_minute is not None and minute["requests"] >= quotas.requests_per_minute:
            return _exceeded("requests_per_minute", RATE_LIMIT, quotas.requests_per_minute,
                             _minute_reset(user, starts["minute"], now), now)
        if quotas.tokens_per_minute is not None and minute["tokens"] >= quotas.tokens_per_minute:
            needed = minute["tokens"] - quotas.tokens_per_minute + 1
            return _exceeded("tokens_per_minute", RATE_LIMIT, quotas.tokens_per_minute,
                             _minute_reset(user, starts["minute"], now, tokens_needed=needed), now)
    if quotas.tokens_per_day is not None and _usage(user, starts["day"])["tokens"] >= quotas.tokens_per_day:
        return _exceeded("tokens_per_day", INSUFFICIENT_QUOTA, quotas.tokens_per_day,
                         starts["day"] + timedelta(days=1), now)
    if quotas.tokens_per_month is not None and _usage(user, starts["month"])["tokens"] >= quotas.tokens_per_month:
        return _exceeded("tokens_per_month", INSUFFICIENT_QUOTA, quotas.tokens_per_month,
                         _next_month(starts["month"]), now)
    return None


def minute_headroom(user, now: datetime | None = None, *, counting: bool = True) -> dict[str, tuple[int, int, int]]:
    """The user's per-minute quotas that are set: {"requests" | "tokens": (limit, remaining,
    seconds until the sliding minute frees room)}. With `counting`, `remaining` requests leaves
    out the request being made (a generation not admitted yet); never below 0."""
    now = now or timezone.now()
    quotas = quotas_for(user)
    if quotas.requests_per_minute is None and quotas.tokens_per_minute is None:
        return {}
    since = now - MINUTE
    minute = _usage(user, since)
    reset = max(1, int((_minute_reset(user, since, now) - now).total_seconds() + 0.999))
    headroom = {}
    if quotas.requests_per_minute is not None:
        headroom["requests"] = (quotas.requests_per_minute,
                                max(0, quotas.requests_per_minute - minute["requests"] - counting), reset)
    if quotas.tokens_per_minute is not None:
        headroom["tokens"] = (quotas.tokens_per_minute, max(0, quotas.tokens_per_minute - minute["tokens"]), reset)
    return headroom


def quota_status(user, now: datetime | None = None) -> list[dict]:
    """Each quota of the user's plan with its use so far, for the dashboard:
    [{"name", "label", "limit" (None: unlimited), "used", "remaining", "resets_at"}]."""
    now = now or timezone.now()
    quotas = quotas_for(user)
    starts = _window_starts(now)
    minute, day, month = (_usage(user, starts[window]) for window in ("minute", "day", "month"))
    rows = [
        ("requests_per_minute", minute["requests"], now + MINUTE),
        ("tokens_per_minute", minute["tokens"], now + MINUTE),
        ("tokens_per_day", day["tokens"], starts["day"] + timedelta(days=1)),
        ("tokens_per_month", month["tokens"], _next_month(starts["month"])),
    ]
    status = []
    for name, used, resets_at in rows:
        limit = getattr(quotas, name)
        status.append({"name": name, "label": QUOTA_LABELS[name], "limit": limit, "used": used,
                       "remaining": None if limit is None else max(0, limit - used), "resets_at": resets_at})
    return status
