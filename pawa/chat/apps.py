from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatConfig(AppConfig):
    name = "pawa.chat"
    verbose_name = _("Chat")

    def ready(self):
        from pawa.chat import receivers  # noqa: F401
