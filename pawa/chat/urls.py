from django.urls import path

from pawa.chat import views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="index"),
    path("<int:conversation_id>/", views.chat_page, name="conversation"),
    path("api/conversations/", views.conversations, name="conversations"),
    path("api/conversations/<int:conversation_id>/", views.conversation_detail, name="conversation_detail"),
]
