"""Reads for the chat: every lookup is scoped to its owner, so another user's id is simply not found."""

from pawa.chat.models import Conversation, Message


def conversation_get(*, user, conversation_id) -> Conversation:
    """Raises Conversation.DoesNotExist for anything the user does not own."""
    return Conversation.objects.for_user(user).get(pk=int(conversation_id))


def message_get(*, user, message_id) -> Message:
    return Message.objects.select_related("conversation", "generation").get(
        pk=int(message_id), conversation__user=user
    )


def conversation_messages(conversation: Conversation) -> list[dict]:
    return [m.as_dict() for m in conversation.messages.select_related("generation")]


def conversation_summaries(*, user, search: str = "") -> list[dict]:
    conversations = Conversation.objects.for_user(user).search(search)[:200]
    return [
        {"id": c.id, "title": c.title, "model": c.model_name, "updated_at": c.updated_at.isoformat()}
        for c in conversations
    ]
