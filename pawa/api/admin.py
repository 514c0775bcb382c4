from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from pawa.api.keys import apikey_revoke
from pawa.api.models import ApiKey, ApiLimits, ApiUsage


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Administrators see and revoke any key; the secret is never stored, so never shown."""

    list_display = ("name", "display", "user", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__email", "user__username")
    readonly_fields = ("user", "prefix", "last4", "created_at", "last_used_at", "revoked_at")
    exclude = ("secret_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created by their owner (dashboard) or `manage.py apikey create`

    @admin.action(description=_("Revoke selected keys"))
    def revoke(self, request, queryset):
        for key in queryset:
            apikey_revoke(key=key)
        self.message_user(request, _("Revoked %(count)d keys.") % {"count": queryset.count()}, messages.SUCCESS)


@admin.register(ApiLimits)
class ApiLimitsAdmin(admin.ModelAdmin):
    list_display = ("user", "requests_per_minute", "tokens_per_minute", "max_concurrent")
    search_fields = ("user__email", "user__username")
    autocomplete_fields = ("user",)


@admin.register(ApiUsage)
class ApiUsageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "api_key", "endpoint", "model_name", "status_code", "prompt_tokens",
                    "completion_tokens", "latency_ms")
    list_filter = ("endpoint", "model_name", "status_code")
    search_fields = ("user__email",)
    readonly_fields = [f.name for f in ApiUsage._meta.fields]

    def has_add_permission(self, request):
        return False
