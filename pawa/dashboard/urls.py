from django.urls import path

from pawa.dashboard import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
