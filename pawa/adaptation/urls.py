from django.urls import path

from pawa.adaptation import views

urlpatterns = [
    path("", views.adaptation_list, name="adaptation_list"),
    path("<int:adaptation_id>/", views.adaptation_detail, name="adaptation_detail"),
    path("<int:adaptation_id>/cancel/", views.adaptation_cancel_view, name="adaptation_cancel"),
]
