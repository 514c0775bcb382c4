from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    name = "pawa.api"
    verbose_name = _("Developer API")

    def ready(self):
        from pawa.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
