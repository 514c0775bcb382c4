from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "pawa.llm"
    verbose_name = "Models"
