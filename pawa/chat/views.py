"""The chat page and the small JSON endpoints its sidebar and settings use."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from pawa.chat import selectors, services
from pawa.chat.models import Conversation
from pawa.ops.jsonstrict import BadJSON, loads_strict
from pawa.llm.store import default_model_name, installed_models


def _json_body(request) -> dict:
    try:
        data = loads_strict(request.body or b"{}")
    except BadJSON:
        raise services.ChatError(_("The request could not be understood.")) from None
    if not isinstance(data, dict):
        raise services.ChatError(_("The request could not be understood."))
    return data


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _own(request, conversation_id) -> Conversation:
    try:
        return selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    except Conversation.DoesNotExist:
        raise Http404 from None


def chat_strings() -> dict:
    """Everything the chat script shows, translated for the page's language."""
    return {
        "send": _("Send"), "stop": _("Stop"), "regenerate": _("Regenerate"), "edit": _("Edit"),
        "copy": _("Copy"), "copied": _("Copied"), "save": _("Save"), "cancel": _("Cancel"),
        "delete": _("Delete"), "rename": _("Rename"), "error": _("Error"), "try_again": _("Try again"),
        "reconnecting": _("Connection lost — reconnecting…"), "loading": _("Loading…"),
        "queue_position": _("Position in queue: %(position)s"),
        "queue_wait": _("Position in queue: %(position)s (~%(seconds)s s)"),
        "trimmed": _("Earlier messages were left out: the conversation is longer than this model can read, "
                     "so this answer only saw the latest messages."),
        "no_worker": _("No model worker is running, so no answer can be written now. Try again later."),
        "not_taken": _("This answer was not written: no model worker took it from the queue. Send it again."),
        "answering": _("PAWA is answering…"), "answered": _("The answer is complete."),
        "stopped": _("Stopped"), "interrupted": _("Interrupted: the worker stopped while writing this answer."),
        "failed": _("The answer could not be written."),
        "tokens": _("Tokens"), "ttft": _("Time to first token"), "tps": _("Tokens per second"),
        "details": _("Details"), "untitled": _("New conversation"),
        "instruct": _("instruction-tuned"), "base": _("base model (continues text)"),
        "languages": _("Languages"), "size": _("Size"), "context": _("Context length"),
        "saved": _("Saved"), "you": _("You"), "assistant": _("PAWA"), "prompt_tokens": _("prompt"),
        "completion_tokens": _("answer"), "seconds": _("s"), "no_results": _("No conversations found."),
        "too_long": _("The message is too long: %(length)s characters, at most %(limit)s. Shorten it and send "
                      "again."),
        "counter": _("%(length)s of %(limit)s characters"),
    }


@login_required
def chat_page(request, conversation_id=None):
    conversation = _own(request, conversation_id) if conversation_id else None
    models = installed_models()
    model_name = conversation.model_name if conversation else default_model_name()
    context = {
        "base_model": any(card.name == model_name and card.kind == "base" for card in models),
        "conversation": conversation,
        "messages_data": selectors.conversation_messages(conversation) if conversation else [],
        "conversations": selectors.conversation_summaries(user=request.user),
        "models": models,
        "models_data": [
            {"name": c.name, "display_name": c.display_name, "kind": c.kind, "languages": c.languages,
             "parameters": c.parameters, "size": c.size_on_disk_bytes, "context_length": c.context_length,
             "description": c.description, "default_system_prompt": c.default_system_prompt}
            for c in models
        ],
        "conversation_settings": services.conversation_settings(conversation) if conversation else None,
        "default_model": default_model_name(),
        "strings": chat_strings(),
        "max_message_chars": settings.PAWA_MAX_MESSAGE_CHARS,
    }
    return render(request, "chat/index.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def conversations(request):
    if request.method == "GET":
        return JsonResponse({"conversations": selectors.conversation_summaries(
            user=request.user, search=request.GET.get("q", "")[:200])})
    try:
        data = _json_body(request)
        conversation = services.conversation_create(user=request.user, model_name=data.get("model") or None)
    except services.ChatError as exc:
        return _error(str(exc))
    return JsonResponse(_conversation_data(conversation), status=201)


def _conversation_data(conversation: Conversation) -> dict:
    return {
        "id": conversation.id, "title": conversation.title, "model": conversation.model_name,
        "system_prompt": conversation.system_prompt, "temperature": conversation.temperature,
        "max_tokens": conversation.max_tokens, "messages": selectors.conversation_messages(conversation),
        "settings": services.conversation_settings(conversation),
    }


@login_required
@require_http_methods(["GET", "PATCH", "DELETE"])
def conversation_detail(request, conversation_id):
    conversation = _own(request, conversation_id)
    if request.method == "GET":
        return JsonResponse(_conversation_data(conversation))
    if request.method == "DELETE":
        services.conversation_delete(conversation=conversation)
        return JsonResponse({"deleted": True})
    try:
        data = _json_body(request)
        if "title" in data:
            services.conversation_rename(conversation=conversation, title=str(data["title"]))
        settings_fields = services.settings_parse(data)
        if settings_fields:
            services.conversation_update_settings(conversation=conversation, **settings_fields)
    except services.ChatError as exc:
        return _error(str(exc))
    return JsonResponse(_conversation_data(conversation))
