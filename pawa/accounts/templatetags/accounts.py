from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def emails_go_to_the_log() -> bool:
    """True in the local setup: Django's console backend writes emails to the server's output."""
    return settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"
