"""Where API keys are checked: `Authorization: Bearer pawa-…`."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from pawa.api.errors import ApiError
from pawa.api.keys import apikey_authenticate, apikey_expired


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            raise exceptions.NotAuthenticated()
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise exceptions.AuthenticationFailed()
        key = apikey_authenticate(secret.strip())
        if key is None:
            expired = apikey_expired(secret.strip())
            if expired is not None:
                when = timezone.localtime(expired.expires_at).strftime("%Y-%m-%d %H:%M:%S %Z")
                raise ApiError(401, f"This API key expired at {when}. Create a new key on your dashboard.",
                               code="api_key_expired", headers={"WWW-Authenticate": 'Bearer realm="api"'})
            raise exceptions.AuthenticationFailed()
        return key.user, key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
