from django.urls import path

from pawa.console import views

app_name = "console"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("users/", views.users, name="users"),
    path("users/bulk/", views.users_bulk, name="users_bulk"),
    path("users/<int:user_id>/", views.user_detail, name="user"),
    path("plans/", views.plans, name="plans"),
    path("plans/new/", views.plan_detail, name="plan_new"),
    path("plans/<int:plan_id>/", views.plan_detail, name="plan"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
    path("conversations/", views.conversations, name="conversations"),
    path("conversations/<int:conversation_id>/", views.conversation_detail, name="conversation"),
    path("conversations/<int:conversation_id>/delete/", views.conversation_delete, name="conversation_delete"),
    path("log/", views.log, name="log"),
]
