from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from pawa.accounts.models import User


@admin.register(User)
class PawaUserAdmin(UserAdmin):
    search_fields = ("username", "email", "first_name", "last_name")
    list_display = ("email", "username", "plan", "is_active", "approval_pending", "is_staff", "date_joined")
    list_filter = ("is_active", "approval_pending", "is_staff", "plan")
    fieldsets = UserAdmin.fieldsets + ((None, {"fields": ("plan", "approval_pending")}),)
