from allauth.account.signals import password_changed, password_reset
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from pawa.chat.models import Message
from pawa.generation.models import Generation
from pawa.generation.signals import generation_finished


@receiver(generation_finished, sender=Generation)
def keep_the_answer(sender, generation: Generation, **kwargs) -> None:
    """The assistant message takes the generation's final text and status."""
    Message.objects.filter(generation_id=generation.id).update(content=generation.text, status=generation.status)


def _end_sessions(user_id, session_key: str | None = None) -> None:
    """Close the user's chat sockets (only those of one session when a key is given)."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from pawa.chat.frames import user_group

    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "session.ended", "session_key": session_key})


@receiver(user_logged_out)
def close_sockets_on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        _end_sessions(user.pk, getattr(request.session, "session_key", None))


@receiver(password_changed)
@receiver(password_reset)
def close_sockets_on_password_change(sender, request, user, **kwargs) -> None:
    _end_sessions(user.pk)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def close_sockets_on_deactivation(sender, instance, created, **kwargs) -> None:
    """A deactivated user's sockets close and the answers they had running stop."""
    if created or instance.is_active:
        return
    from pawa.generation.services import generation_cancel

    for generation in Generation.objects.for_user(instance).active():
        generation_cancel(generation=generation)
    _end_sessions(instance.pk)
