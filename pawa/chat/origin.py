"""Websocket origin check: scheme, host and port of the page must be this server's own.

Channels' AllowedHostsOriginValidator compares host names only, so a page on another port or
scheme of an allowed host (http://localhost:9999, https://… for a ws:// server) could open the
chat socket with the user's cookies. Here the Origin header must equal the origin the browser
used to reach this server (the Host header and ws/wss scheme of the request, behind a proxy
as uvicorn's --proxy-headers report it), or one of CSRF_TRUSTED_ORIGINS; the host must also be
in ALLOWED_HOSTS.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def origin_allowed(scope: dict) -> bool:
    """True when the websocket request's Origin is this server's own origin or a trusted one."""
    headers = {name.lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    origin = _origin_tuple(headers.get(b"origin", ""))
    host = headers.get(b"host", "")
    if origin is None or not host:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    if origin == _origin_tuple(f"{scheme}://{host}"):
        return True
    return origin in {_origin_tuple(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}


class SameOriginValidator:
    """ASGI middleware: refuse websockets from any other origin (close before accept)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
