"""New sign-ups wait for an administrator's approval when PAWA_REQUIRE_APPROVAL is on."""

from allauth.account.signals import user_signed_up
from django.conf import settings
from django.dispatch import receiver


@receiver(user_signed_up)
def hold_for_approval(sender, request, user, **kwargs) -> None:
    if settings.PAWA_REQUIRE_APPROVAL and not user.is_staff:
        user.approval_pending = True
        user.save(update_fields=["approval_pending"])
