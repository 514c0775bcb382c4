from django.apps import AppConfig


class AdaptationConfig(AppConfig):
    name = "pawa.adaptation"
    verbose_name = "Model adaptation"

    def ready(self):
        from pawa.adaptation import tasks  # noqa: F401  (connect the worker signal)
