from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GenerationConfig(AppConfig):
    name = "pawa.generation"
    verbose_name = _("Generations")

    def ready(self):
        from pawa.generation import preload, workers  # noqa: F401  (connect the worker signals)
