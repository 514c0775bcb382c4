from django.apps import AppConfig


class AdaptationConfig(AppConfig):
    name = "pawa.adaptation"
    verbose_name = "Model adaptation"
