from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlansConfig(AppConfig):
    name = "pawa.plans"
    verbose_name = _("Plans")

    def ready(self):
        from pawa.plans import receivers  # noqa: F401  (new sign-ups wait for approval when required)
