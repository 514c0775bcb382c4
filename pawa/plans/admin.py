from django.contrib import admin

from pawa.plans.models import Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "requests_per_minute", "tokens_per_minute", "tokens_per_day", "tokens_per_month",
                    "max_concurrent", "is_default")
