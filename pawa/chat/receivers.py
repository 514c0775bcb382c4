from django.dispatch import receiver

from pawa.chat.models import Message
from pawa.generation.models import Generation
from pawa.generation.signals import generation_finished


@receiver(generation_finished, sender=Generation)
def keep_the_answer(sender, generation: Generation, **kwargs) -> None:
    """The assistant message takes the generation's final text and status."""
    Message.objects.filter(generation_id=generation.id).update(content=generation.text, status=generation.status)
