"""One adaptation run: teach an installed model a domain from an example file (LoRA)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Adaptation(models.Model):
    """A training run and its outcome. Progress fields are written by the training task each
    step; `cancel_requested` is read by it each step."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        COMPLETE = "complete", _("Complete")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   related_name="adaptations")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    base_model = models.CharField(max_length=64)
    name = models.CharField(max_length=64, help_text="the new model's name")
    data_file = models.CharField(max_length=500)
    data_name = models.CharField(max_length=200)
    data_sha256 = models.CharField(max_length=64)
    examples = models.PositiveIntegerField(default=0)
    holdout_file = models.CharField(max_length=500, blank=True)
    holdout_fraction = models.FloatField(default=0.0)
    steps = models.PositiveIntegerField()
    rank = models.PositiveIntegerField()
    learning_rate = models.FloatField()
    retrieval_k = models.PositiveSmallIntegerField(
        default=3, help_text="examples retrieved into each prompt of the adapted model (0: none)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=32, blank=True)
    step = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    elapsed_seconds = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error_code = models.CharField(max_length=32, blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    error_detail = models.TextField(blank=True)
    results = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.base_model} → {self.name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int:
        return int(100 * self.step / self.steps) if self.steps else 0
