import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class GenerationQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def active(self):
        return self.filter(status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING])


class Generation(models.Model):
    """One answer produced by a model: queued by the web side, run by a worker, streamed by Redis."""

    class Kind(models.TextChoices):
        CHAT = "chat", _("Chat")
        COMPLETION = "completion", _("Completion")

    class Source(models.TextChoices):
        WEB = "web", _("Web chat")
        API = "api", _("API")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        COMPLETE = "complete", _("Complete")
        STOPPED = "stopped", _("Stopped")
        INTERRUPTED = "interrupted", _("Interrupted")
        ERROR = "error", _("Error")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHAT)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.WEB)
    model_name = models.CharField(max_length=64)
    # Chat: [{"role", "content"}, ...] including any system prompt; completion: {"prompt": text}.
    prompt = models.JSONField()
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    text = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="generation_user_created")]  # quotas

    def __str__(self) -> str:
        return f"{self.model_name} {self.status} {self.id}"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    def stats(self) -> dict:
        return {
            "status": self.status,
            "finish_reason": self.finish_reason,
            "model": self.model_name,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "time_to_first_token_ms": self.time_to_first_token_ms,
            "tokens_per_second": self.tokens_per_second,
            "total_ms": self.total_ms,
        }
