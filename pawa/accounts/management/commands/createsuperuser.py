"""`createsuperuser` for a site where people log in by email.

    DJANGO_SUPERUSER_PASSWORD=… python manage.py createsuperuser --email admin@example.com --noinput

works without --username (one is made from the address), and the new administrator's address is
recorded as verified for django-allauth, so they log in on /accounts/login/ with it at once.
"""

import re

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser
from django.core.management.base import CommandError


def username_from_email(email: str) -> str:
    """The address's local part (Django's username characters only), made unique."""
    User = get_user_model()
    base = re.sub(r"[^\w.@+-]", "", email.split("@")[0])[:140] or "admin"
    name, number = base, 1
    while User.objects.filter(username=name).exists():
        number += 1
        name = f"{base}{number}"
    return name


class Command(createsuperuser.Command):
    help = "Create an administrator. With --email and --noinput the username is made from the address."

    def handle(self, *args, **options):
        User = get_user_model()
        email = (options.get("email") or "").strip()
        if email and (User.objects.filter(email__iexact=email).exists()
                      or EmailAddress.objects.filter(email__iexact=email).exists()):
            raise CommandError(
                f"An account with the email address {email} already exists. To make it an administrator, "
                "tick Staff status and Superuser status on its page in /admin/, or use another address."
            )
        before = set(User.objects.filter(is_superuser=True).values_list("pk", flat=True))
        if not options["interactive"] and not options.get(User.USERNAME_FIELD) and options.get("email"):
            options[User.USERNAME_FIELD] = username_from_email(options["email"])
        super().handle(*args, **options)
        for user in User.objects.filter(is_superuser=True).exclude(pk__in=before).exclude(email=""):
            EmailAddress.objects.update_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True}
            )
