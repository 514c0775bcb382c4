"""Plans: the quotas a user's chat and API generations share (see pawa/plans/quotas.py)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Plan(models.Model):
    """A tier of service. An empty quota (None) means unlimited; `allowed_models` empty means
    every installed model. `max_concurrent` None falls back to PAWA_MAX_CONCURRENT_GENERATIONS."""

    slug = models.SlugField(_("short name"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=64)
    requests_per_minute = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(_("tokens per minute"), null=True, blank=True)
    tokens_per_day = models.PositiveIntegerField(_("tokens per day"), null=True, blank=True)
    tokens_per_month = models.PositiveBigIntegerField(_("tokens per month"), null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(_("concurrent answers"), null=True, blank=True)
    allowed_models = models.JSONField(_("allowed models"), default=list, blank=True)
    is_default = models.BooleanField(_("default plan"), default=False)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("plan")
        verbose_name_plural = _("plans")

    def __str__(self) -> str:
        return self.name
