import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pawa.settings")
# Django must be set up before anything imports models (routing, consumers).
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from pawa.chat.origin import SameOriginValidator  # noqa: E402
from pawa.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The platform serves its own CSS/JS so it works offline with no extra web server.
        "http": ASGIStaticFilesHandler(django_http),
        "websocket": SameOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
