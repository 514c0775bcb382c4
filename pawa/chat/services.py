"""Writes for conversations and messages. Views and the websocket consumer call these."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from inference.registry import ModelNotFound
from pawa.chat.models import Conversation, Message
from pawa.generation.models import Generation
from pawa.generation.admission import GenerationRefused, default_max_tokens, generation_admit
from pawa.llm.store import default_model_name, model_store

TITLE_LENGTH = 60
MAX_SYSTEM_PROMPT_CHARS = 4000
ANSWER_STATUSES = (Generation.Status.COMPLETE, Generation.Status.STOPPED, Generation.Status.INTERRUPTED)


class ChatError(Exception):
    """Bad input or a refused action; the message is for people, in their language.

    `code` is stable for the page: "refused" for the chat's own rules, else the admission's
    code (`concurrency_limit`, `queue_full`, `no_worker`, …).
    """

    def __init__(self, message, code: str = "refused"):
        super().__init__(message)
        self.code = code


def title_from(text: str) -> str:
    """A title from the first message: one line, no Markdown marks, cut at a word."""
    line = re.sub(r"[#*_`>\[\]]+", "", " ".join(text.split()))
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH].rsplit(" ", 1)[0] or line[:TITLE_LENGTH]
    return cut + "…"


def _check_model(model_name: str) -> str:
    try:
        model_store().get(model_name)
    except ModelNotFound as exc:
        raise ChatError(_("The model “%(name)s” is not installed.") % {"name": model_name}) from exc
    return model_name


def message_validate(content: str) -> str:
    content = (content or "").strip()
    if not content:
        raise ChatError(_("Write a message first."))
    if len(content) > settings.PAWA_MAX_MESSAGE_CHARS:
        raise ChatError(
            _("The message is too long: %(length)d characters, at most %(limit)d.")
            % {"length": len(content), "limit": settings.PAWA_MAX_MESSAGE_CHARS}
        )
    return content


def conversation_create(*, user, model_name: str | None = None) -> Conversation:
    if model_name is not None and not isinstance(model_name, str):
        raise ChatError(_("The model must be given by its name."), code="bad_request")
    name = model_name or default_model_name()
    if name is None:
        raise ChatError(_("No model is installed yet. Ask an administrator to install one."))
    _check_model(name)
    card = model_store().get(name)
    return Conversation.objects.create(
        user=user, model_name=name, system_prompt=card.default_system_prompt,
        max_tokens=default_max_tokens(card.context_length),
    )


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    title = " ".join((title or "").split())[:120]
    if not title:
        raise ChatError(_("The title cannot be empty."))
    conversation.title = title
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


SETTINGS_FIELDS = ("model_name", "system_prompt", "temperature", "max_tokens")


def conversation_settings(conversation: Conversation) -> dict:
    """The settings an answer in this conversation is written with (the chat form shows them)."""
    return {field: getattr(conversation, field) for field in SETTINGS_FIELDS}


def settings_parse(data) -> dict:
    """The settings fields of a request (the form's strings or JSON numbers), typed."""
    if not isinstance(data, dict):
        raise ChatError(_("Check the values you entered."))
    fields = {key: data[key] for key in SETTINGS_FIELDS if key in data}
    try:
        if "model_name" in fields:
            fields["model_name"] = str(fields["model_name"])
        if "system_prompt" in fields:
            fields["system_prompt"] = str(fields["system_prompt"])
        if "temperature" in fields:
            fields["temperature"] = float(fields["temperature"])
        if "max_tokens" in fields:
            fields["max_tokens"] = int(fields["max_tokens"])
    except (TypeError, ValueError):
        raise ChatError(_("Check the values you entered.")) from None
    return fields


def conversation_update_settings(
    *, conversation: Conversation, model_name: str | None = None, system_prompt: str | None = None,
    temperature: float | None = None, max_tokens: int | None = None,
) -> Conversation:
    if model_name is not None and model_name != conversation.model_name:
        try:
            old_default = model_store().get(conversation.model_name).default_system_prompt
        except ModelNotFound:
            old_default = ""
        conversation.model_name = _check_model(model_name)
        # The old model's own prompt does not suit the new one; a prompt the user wrote is kept.
        if system_prompt is None and conversation.system_prompt.strip() == (old_default or "").strip():
            conversation.system_prompt = model_store().get(model_name).default_system_prompt
    if system_prompt is not None:
        if len(system_prompt) > MAX_SYSTEM_PROMPT_CHARS:
            raise ChatError(_("The system prompt is too long (at most %(limit)d characters).") % {"limit": MAX_SYSTEM_PROMPT_CHARS})
        conversation.system_prompt = system_prompt.strip()
    if temperature is not None:
        if not 0 <= temperature <= 2:
            raise ChatError(_("Temperature must be between 0 and 2."))
        conversation.temperature = temperature
    if max_tokens is not None:
        limit = model_store().get(conversation.model_name).context_length // 2
        if not 1 <= max_tokens <= limit:
            raise ChatError(_("Maximum tokens must be between 1 and %(limit)d.") % {"limit": limit})
        conversation.max_tokens = max_tokens
    conversation.save()
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    from pawa.generation.services import generation_cancel

    for message in conversation.messages.select_related("generation").filter(generation__isnull=False):
        if message.generation.is_active:
            generation_cancel(generation=message.generation)
    conversation.delete()


def _history(conversation: Conversation) -> list[dict]:
    messages = []
    if conversation.system_prompt:
        messages.append({"role": "system", "content": conversation.system_prompt})
    for message in conversation.messages.all():
        if message.role == Message.Role.USER:
            messages.append({"role": "user", "content": message.content})
        elif message.status in ANSWER_STATUSES and message.content:
            messages.append({"role": "assistant", "content": message.content})
    return messages


def _active_answer(conversation: Conversation) -> Message | None:
    return conversation.messages.filter(
        role=Message.Role.ASSISTANT, status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING]
    ).first()


def _start_answer(conversation: Conversation) -> Message:
    """Queue a generation answering the conversation as it stands, and its assistant message.

    Old turns that do not fit the model are left out, and the answer says how many.
    """
    if _active_answer(conversation) is not None:
        raise ChatError(_("An answer is still being written in this conversation. Wait for it or stop it."))
    try:
        admission = generation_admit(
            user=conversation.user, model_name=conversation.model_name, kind=Generation.Kind.CHAT,
            source=Generation.Source.WEB, prompt=_history(conversation),
            params={"temperature": conversation.temperature, "max_tokens": conversation.max_tokens}, trim=True,
        )
    except GenerationRefused as exc:
        raise ChatError(str(exc), code=exc.code) from exc
    answer = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, generation=admission.generation,
        status=Generation.Status.QUEUED, dropped_messages=admission.dropped_messages,
    )
    conversation.save(update_fields=["updated_at"])
    return answer


@transaction.atomic
def message_send(*, conversation: Conversation, content: str) -> tuple[Message, Message]:
    content = message_validate(content)
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if _active_answer(conversation) is not None:
        raise ChatError(_("An answer is still being written in this conversation. Wait for it or stop it."))
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER, content=content)
    if not conversation.title:
        conversation.title = title_from(content)
        conversation.save(update_fields=["title", "updated_at"])
    return question, _start_answer(conversation)


@transaction.atomic
def message_regenerate(*, conversation: Conversation) -> Message:
    """Answer the last question again, replacing the last answer."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    last = conversation.messages.last()
    if last is None:
        raise ChatError(_("There is nothing to regenerate yet."))
    if last.role == Message.Role.ASSISTANT:
        if last.status in (Generation.Status.QUEUED, Generation.Status.RUNNING):
            raise ChatError(_("An answer is still being written in this conversation. Wait for it or stop it."))
        last.delete()
    return _start_answer(conversation)


@transaction.atomic
def message_edit(*, message: Message, content: str) -> tuple[Message, Message]:
    """Change an earlier question and answer it again; every later turn is replaced."""
    if message.role != Message.Role.USER:
        raise ChatError(_("Only your own messages can be edited."))
    content = message_validate(content)
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    if _active_answer(conversation) is not None:
        raise ChatError(_("An answer is still being written in this conversation. Wait for it or stop it."))
    conversation.messages.filter(id__gt=message.id).delete()
    first = conversation.messages.filter(role=Message.Role.USER).first()
    if first is not None and first.pk == message.pk and conversation.title == title_from(message.content):
        # The title was made from the old question (not chosen by the user): make it again.
        conversation.title = title_from(content)
        conversation.save(update_fields=["title", "updated_at"])
    message.content = content
    message.save(update_fields=["content"])
    return message, _start_answer(conversation)
