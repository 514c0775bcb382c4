"""API key lifecycle: create (secret shown once), authenticate (hash lookup), revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import IntegrityError
from django.utils import timezone

from pawa.api.models import ApiKey

KEY_PREFIX = "pawa-"
LOOKUP_CHARS = 8
LAST_USED_PRECISION = timedelta(seconds=60)


def _hash(secret: str) -> str:
    # The secret has 256 bits of entropy: a plain SHA-256 cannot be brute-forced.
    return hashlib.sha256(secret.encode()).hexdigest()


def apikey_create(*, user, name: str, expires_at=None, allowed_models=None) -> tuple[ApiKey, str]:
    """Returns the key and its secret. The secret is not stored and cannot be shown again.
    `allowed_models`: the model names this key may use (None or empty: any the plan allows)."""
    name = (name or "").strip()[:100] or "default"
    for _attempt in range(5):
        secret = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
        try:
            key = ApiKey.objects.create(
                user=user, name=name, prefix=secret[: len(KEY_PREFIX) + LOOKUP_CHARS], last4=secret[-4:],
                secret_hash=_hash(secret), expires_at=expires_at, allowed_models=list(allowed_models or []),
            )
        except IntegrityError:
            continue  # the 8-character prefix collided; draw another key
        return key, secret
    raise RuntimeError("could not generate a unique API key")


def apikey_authenticate(secret: str) -> ApiKey | None:
    """The usable key for a secret, or None. Revocation and expiry apply on the very next request."""
    if not secret or not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=secret[: len(KEY_PREFIX) + LOOKUP_CHARS]).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    if not key.is_usable or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def apikey_expired(secret: str) -> ApiKey | None:
    """The key for a secret when it is right but expired (not revoked), else None: lets the
    API say "expired" instead of "incorrect"."""
    if not secret or not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    key = ApiKey.objects.filter(prefix=secret[: len(KEY_PREFIX) + LOOKUP_CHARS]).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    return key if key.revoked_at is None and key.is_expired else None


def apikey_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
