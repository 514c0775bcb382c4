"""How long the admin console's reads and the plan quota check take on a busy installation.

Fills a database of its own (SQLite in a temporary folder, removed at the end) with
`--generations` answers from `--users` people over 30 days, then prints the median time of:
each overview query (the page caches the three chart queries for a minute), the users page's
token annotation, and `quota_exceeded` (the check every admission makes under the user's lock,
all four quotas set).

    python benchmarks/console.py --generations 50000 --users 200
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(function, repeat: int) -> float:
    """Median milliseconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    # Always a database of its own: the benchmark writes tens of thousands of rows.
    own_dir = tempfile.mkdtemp(prefix="pawa-bench-console-")
    os.environ["PAWA_VAR_DIR"] = own_dir
    os.environ.pop("DATABASE_URL", None)
    try:
        run(args)
    finally:
        shutil.rmtree(own_dir, ignore_errors=True)


def run(args) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pawa.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from pawa.console import selectors
    from pawa.generation.models import Generation
    from pawa.plans.quotas import Quotas, quota_exceeded

    call_command("migrate", verbosity=0)
    print(f"Filling {args.generations} generations of {args.users} users in {os.environ['PAWA_VAR_DIR']}…")
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"u{n}", email=f"u{n}@example.invalid") for n in range(args.users)])
    users = list(get_user_model().objects.all())
    now, rng = timezone.now(), random.Random(1)
    rows = []
    for _ in range(args.generations):
        rows.append(Generation(
            user=rng.choice(users), model_name=rng.choice(["gemma3-270m", "smollm2-135m-instruct"]), prompt=[],
            source=rng.choice(["web", "api"]), status=rng.choice(["complete"] * 8 + ["stopped", "error"]),
            prompt_tokens=rng.randint(10, 400), completion_tokens=rng.randint(1, 512),
            time_to_first_token_ms=rng.uniform(80, 3000), tokens_per_second=rng.uniform(5, 60)))
    Generation.objects.bulk_create(rows, batch_size=2000)
    # auto_now_add stamped them all now: spread them over 30 days.
    for generation_id in Generation.objects.values_list("id", flat=True).iterator():
        Generation.objects.filter(pk=generation_id).update(
            created_at=now - timedelta(seconds=rng.uniform(0, 30 * 86400)))
    busiest = max(users, key=lambda user: Generation.objects.filter(user=user).count())
    quotas = Quotas(plan=None, requests_per_minute=10**6, tokens_per_minute=10**9, tokens_per_day=10**9,
                    tokens_per_month=10**12, max_concurrent=2)
    checks = {
        "today_totals": selectors.today_totals,
        "daily_usage (14 days)": selectors.daily_usage,
        "speed_by_model (14 days, p50/p95)": selectors.speed_by_model,
        "top_users (30 days)": selectors.top_users,
        "users page (50 rows by tokens used)": lambda: list(selectors.users_with_usage().order_by("-tokens_used")[:50]),
        "quota_exceeded (busiest user, 4 quotas)": lambda: quota_exceeded(user=busiest, quotas=quotas),
    }
    for name, function in checks.items():
        print(f"{name:45s} {timed(function, args.repeat):8.1f} ms")


if __name__ == "__main__":
    main()
