from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "pawa.dashboard"
    verbose_name = "Dashboard"
