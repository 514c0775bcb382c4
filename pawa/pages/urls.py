from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from csp.decorators import csp_update
from drf_spectacular.views import SpectacularSwaggerSplitView

from pawa.ops import views as ops_views
from pawa.pages import views

urlpatterns = [
    path("", views.home, name="home"),
    path("demo/", views.demo, name="demo"),
    path("docs/", views.docs_page, {"slug": "index"}, name="docs"),
    # The split view serves Swagger UI's start-up script as a file (no inline script); its
    # page keeps three lines of inline CSS.
    path("docs/api/reference/", csp_update({"style-src": ["'self'", "'unsafe-inline'"]})(
        SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api_reference"),
    path("docs/<slug:slug>/", views.docs_page, name="docs_page"),
    path("privacy/", views.privacy, name="privacy"),
    # Browsers ask for /favicon.ico on every page whatever the page links.
    path("favicon.ico", RedirectView.as_view(url=static("img/pawa.svg"), permanent=True)),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics_view, name="metrics"),
]
