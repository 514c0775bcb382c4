from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("pawa.pages.urls")),
    path("accounts/", include("allauth.urls")),
    path("dashboard/", include("pawa.dashboard.urls")),
    path("console/", include("pawa.console.urls")),
    path("chat/", include("pawa.chat.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("v1/", include("pawa.api.urls")),
    path("console/adapt/", include("pawa.adaptation.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "pawa.pages.views.bad_request"
handler403 = "pawa.pages.views.permission_denied"
handler404 = "pawa.pages.views.page_not_found"
handler500 = "pawa.pages.views.server_error"
