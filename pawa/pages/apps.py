from django.apps import AppConfig


class PagesConfig(AppConfig):
    name = "pawa.pages"
    verbose_name = "Pages"
