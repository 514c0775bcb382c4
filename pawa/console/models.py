from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AdminAction(models.Model):
    """One change an administrator made in the console: who, what, when and to what."""

    class Kind(models.TextChoices):
        APPROVE = "approve", _("Approved")
        DEACTIVATE = "deactivate", _("Deactivated")
        REACTIVATE = "reactivate", _("Reactivated")
        SET_PLAN = "set_plan", _("Changed plan")
        SET_LIMITS = "set_limits", _("Changed limits")
        EDIT_PLAN = "edit_plan", _("Edited plan")
        REVOKE_KEY = "revoke_key", _("Revoked API key")
        DELETE_CONVERSATION = "delete_conversation", _("Deleted conversation")

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              related_name="admin_actions")
    action = models.CharField(max_length=32, choices=Kind.choices)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64)
    target = models.CharField(max_length=255)  # how the target read when it was changed (it may be gone since)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("admin action")
        verbose_name_plural = _("admin actions")
