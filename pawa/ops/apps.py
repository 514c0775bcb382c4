from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "pawa.ops"
    verbose_name = "Operations"
