from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView

from pawa.api import views

urlpatterns = [
    path("models", views.ModelList.as_view(), name="api-models"),
    path("models/<str:model_id>", views.ModelDetail.as_view(), name="api-model"),
    path("chat/completions", views.ChatCompletions.as_view(), name="api-chat-completions"),
    path("completions", views.Completions.as_view(), name="api-completions"),
    path("chat/request", views.ChatRequest.as_view(), name="api-chat-request"),
    # JSON whatever the Accept header says (the plain view answers YAML to clients that send none).
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="api-schema"),
]
