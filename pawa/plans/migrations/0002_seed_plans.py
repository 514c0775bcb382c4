"""The four plans of the hosted PAWA: Free 5, Starter 50, Pro 500 requests per minute,
Enterprise unlimited. Free is the default; administrators edit them in the console."""

from django.db import migrations

PLANS = [
    # slug, name, requests/min, tokens/min, tokens/day, tokens/month, concurrent answers, default
    ("free", "Free", 5, 10_000, 100_000, 1_000_000, 1, True),
    ("starter", "Starter", 50, 50_000, 1_000_000, 20_000_000, 2, False),
    ("pro", "Pro", 500, 250_000, 10_000_000, 200_000_000, 8, False),
    ("enterprise", "Enterprise", None, None, None, None, None, False),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("plans", "Plan")
    for order, (slug, name, rpm, tpm, tpd, tpmo, concurrent, default) in enumerate(PLANS):
        Plan.objects.update_or_create(slug=slug, defaults={
            "name": name, "requests_per_minute": rpm, "tokens_per_minute": tpm, "tokens_per_day": tpd,
            "tokens_per_month": tpmo, "max_concurrent": concurrent, "is_default": default, "order": order,
        })


def unseed(apps, schema_editor):
    apps.get_model("plans", "Plan").objects.filter(slug__in=[plan[0] for plan in PLANS]).delete()


class Migration(migrations.Migration):
    dependencies = [("plans", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
