from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pawa.generation.models import Generation


class ApiKeyQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiKey(models.Model):
    """A personal API key. Only a SHA-256 hash of the secret is stored; the secret is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, unique=True)  # "pawa-" + 8 characters, for lookup and display
    last4 = models.CharField(max_length=4)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    # Models this key may use; empty: every model the owner's plan allows.
    allowed_models = models.JSONField(_("allowed models"), default=list, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def display(self) -> str:
        return f"{self.prefix}…{self.last4}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and not self.is_expired


class ApiLimits(models.Model):
    """Per-user overrides set by administrators: of the user's plan (chat and API alike, see
    pawa/plans/quotas.py) and, for requests and tokens per minute, of each key's API limits."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_limits")
    requests_per_minute = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(_("tokens per minute"), null=True, blank=True)
    tokens_per_day = models.PositiveIntegerField(_("tokens per day"), null=True, blank=True)
    tokens_per_month = models.PositiveBigIntegerField(_("tokens per month"), null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(_("concurrent streams"), null=True, blank=True)

    class Meta:
        verbose_name = _("API limits")
        verbose_name_plural = _("API limits")


class ApiUsage(models.Model):
    """One API request: what it cost and how it ended."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_usage")
    generation = models.ForeignKey(Generation, on_delete=models.SET_NULL, null=True, blank=True)
    endpoint = models.CharField(max_length=64)
    model_name = models.CharField(max_length=64, blank=True)
    status_code = models.PositiveSmallIntegerField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(default=0)
    streamed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API usage")
        verbose_name_plural = _("API usage")
