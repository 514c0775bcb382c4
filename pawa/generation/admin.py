from django.contrib import admin

from pawa.generation.models import Generation


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    """What ran, for whom, how fast. Prompts and answers stay private: they are not shown here."""

    list_display = ("created_at", "user", "source", "model_name", "status", "finish_reason", "prompt_tokens",
                    "completion_tokens", "time_to_first_token_ms", "tokens_per_second")
    list_filter = ("status", "source", "model_name")
    search_fields = ("user__email", "user__username")
    fields = ("id", "user", "source", "kind", "model_name", "status", "finish_reason", "error", "prompt_tokens",
              "completion_tokens", "time_to_first_token_ms", "tokens_per_second", "total_ms", "created_at",
              "started_at", "finished_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
