"""Where API keys are checked: `Authorization: Bearer pawa-…`."""

from rest_framework import authentication, exceptions

from pawa.api.keys import apikey_authenticate


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
            raise exceptions.AuthenticationFailed()
        return key.user, key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
