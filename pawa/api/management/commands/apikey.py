"""python manage.py apikey create --user USERNAME_OR_EMAIL --name NAME | revoke PREFIX | list"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from pawa.api.keys import apikey_create, apikey_revoke
from pawa.api.models import ApiKey


class Command(BaseCommand):
    help = "Create, list and revoke API keys."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key; prints only the key on stdout.")
        create.add_argument("--user", required=True, help="username or email")
        create.add_argument("--name", required=True)
        create.add_argument("--expires-in-days", type=int)
        revoke = sub.add_parser("revoke", help="Revoke a key by its prefix (pawa-xxxxxxxx).")
        revoke.add_argument("prefix")
        listing = sub.add_parser("list", help="List keys (never their secrets).")
        listing.add_argument("--user")

    def _user(self, identifier: str):
        users = get_user_model().objects.filter(Q(username=identifier) | Q(email__iexact=identifier))
        if users.count() != 1:
            raise CommandError(f"No single user matches {identifier!r}")
        return users.get()

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_create(self, *, user, name, expires_in_days, **options):
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1")
        expires = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        _key, secret = apikey_create(user=self._user(user), name=name, expires_at=expires)
        self.stdout.write(secret)

    def do_revoke(self, *, prefix, **options):
        key = ApiKey.objects.filter(prefix=prefix.split("…")[0]).first()
        if key is None:
            raise CommandError(f"No API key with prefix {prefix!r}")
        apikey_revoke(key=key)
        self.stderr.write(f"Revoked {key.display} ({key.name}) of {key.user}")

    def do_list(self, *, user, **options):
        keys = ApiKey.objects.select_related("user")
        if user:
            keys = keys.filter(user=self._user(user))
        for key in keys:
            state = "revoked" if key.revoked_at else ("expired" if key.is_expired else "active")
            self.stdout.write(f"{key.display}\t{state}\t{key.user}\t{key.name}")
