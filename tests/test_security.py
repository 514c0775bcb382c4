"""Security headers and the websocket origin check."""

import pytest
from channels.testing import WebsocketCommunicator

from pawa.asgi import application
from pawa.chat.origin import origin_allowed

pytestmark = pytest.mark.django_db(transaction=True)


def scope(origin, host="127.0.0.1:8000", scheme="ws"):
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize("origin,host,scheme,allowed", [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),
    ("https://pawa.example", "pawa.example", "wss", False),  # not in ALLOWED_HOSTS
    ("http://localhost:9999", "localhost:8000", "ws", False),  # another port
    ("https://127.0.0.1:8000", "127.0.0.1:8000", "ws", False),  # another scheme
    ("http://127.0.0.1", "127.0.0.1:80", "ws", True),  # default port written or not
    ("http://evil.example", "127.0.0.1:8000", "ws", False),
    ("null", "127.0.0.1:8000", "ws", False),
    (None, "127.0.0.1:8000", "ws", False),
])
def test_websocket_origins_match_scheme_host_and_port(origin, host, scheme, allowed):
    assert origin_allowed(scope(origin, host, scheme)) is allowed


def test_trusted_origins_are_allowed(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.org"]
    assert origin_allowed(scope("https://chat.example.org", "127.0.0.1:8000"))


async def test_a_page_on_another_port_cannot_open_the_chat_socket(owner):
    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"origin", b"http://localhost:9999"), (b"host", b"localhost:8000")])
    communicator.scope["user"] = owner
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


def test_pages_carry_a_strict_content_security_policy(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"
    assert "unsafe-inline" not in directives["script-src"] and "unsafe-inline" not in directives["style-src"]
    assert directives["form-action"] == "'self'"


def test_health_checks_are_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 301
