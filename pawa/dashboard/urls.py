from django.urls import path

from pawa.dashboard import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("keys/", views.api_keys, name="dashboard_keys"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke, name="dashboard_key_revoke"),
    path("usage/", views.usage, name="dashboard_usage"),
]
