from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pawa.generation.models import Generation


class ConversationQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def search(self, text: str):
        text = text.strip()
        if not text:
            return self
        return self.filter(Q(title__icontains=text) | Q(messages__content__icontains=text)).distinct()


class Conversation(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(_("title"), max_length=120, blank=True)
    model_name = models.CharField(_("model"), max_length=64)
    system_prompt = models.TextField(_("system prompt"), blank=True)
    temperature = models.FloatField(_("temperature"), default=0.7)
    max_tokens = models.PositiveIntegerField(_("maximum tokens"), default=512)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title or f"#{self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("You")
        ASSISTANT = "assistant", _("PAWA")

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    # Assistant messages are written by a generation; their status follows it.
    generation = models.OneToOneField(
        Generation, on_delete=models.SET_NULL, null=True, blank=True, related_name="message"
    )
    status = models.CharField(max_length=16, choices=Generation.Status.choices, default=Generation.Status.COMPLETE)
    # Earlier messages the model did not read for this answer (the conversation was too long).
    dropped_messages = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    def as_dict(self) -> dict:
        data = {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "dropped_messages": self.dropped_messages,
        }
        if self.generation_id:
            generation = self.generation
            data["generation_id"] = str(generation.id)
            data["stats"] = generation.stats()
        return data
