from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A PAWA account. People sign in with their email address.

    `plan` None means the default plan (pawa/plans/quotas.py). `approval_pending`: signed up
    while PAWA_REQUIRE_APPROVAL was on and not approved yet (may log in, not chat or call the API).
    """

    plan = models.ForeignKey("plans.Plan", on_delete=models.SET_NULL, null=True, blank=True, related_name="users",
                             verbose_name=_("plan"))
    approval_pending = models.BooleanField(_("waiting for approval"), default=False)

    def __str__(self) -> str:
        return self.email or self.username
