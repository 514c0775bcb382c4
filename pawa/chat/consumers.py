"""The chat websocket: messages in, tokens out (relayed from each generation's Redis Stream)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation.trans_real import parse_accept_lang_header

from inference import relay
from pawa.chat import selectors, services
from pawa.generation import services as generation_services
from pawa.generation.admission import GenerationRefused
from pawa.generation.models import Generation
from pawa.chat.frames import parse_frame, session_still_valid, user_group
from pawa.generation.redis import async_client
from pawa.ops.jsonstrict import BadJSON, loads_strict
from pawa.ops.logs import log_context, set_request_id

log = logging.getLogger(__name__)


def scope_language(scope) -> str:
    supported = {code for code, _ in settings.LANGUAGES}
    cookie = scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME)
    if cookie in supported:
        return cookie
    headers = dict(scope.get("headers", []))
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    for code, _quality in parse_accept_lang_header(accept):
        base = code.split("-")[0]
        if base in supported:
            return base
    return settings.LANGUAGE_CODE


@database_sync_to_async
def _idle_event(generation_id: str) -> dict | None:
    return generation_services.generation_idle_event(generation_id=generation_id)


def _apply_settings(conversation, new_settings) -> None:
    """Settings the page changed but did not save come with the message: the answer uses them."""
    if new_settings is not None:
        services.conversation_update_settings(conversation=conversation, **services.settings_parse(new_settings))


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user = user
        self.language = scope_language(self.scope)
        self.relays: dict[str, asyncio.Task] = {}
        self.watching: set[str] = set()
        self.started: set[str] = set()  # generations this socket started
        self.redis = async_client()
        # Logout, deactivation or a password change elsewhere closes this socket at once.
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        await self.accept()

    @staticmethod
    def group_name(conversation_id) -> str:
        return f"pawa.conversation.{int(conversation_id)}"

    async def disconnect(self, code):
        # Leaving does not stop an answer: the page resumes it when it comes back.
        for task in getattr(self, "relays", {}).values():
            task.cancel()
        for group in getattr(self, "watching", set()):
            await self.channel_layer.group_discard(group, self.channel_name)
        if hasattr(self, "user"):
            await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
        if hasattr(self, "redis"):
            await self.redis.aclose()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Every frame gets an answer: malformed ones an error event with code `bad_frame`
        (the socket stays open), a request after the session ended closes the socket."""
        with translation.override(self.language):
            if text_data is None:
                await self._error("bad_frame", _("Send requests as JSON text."))
                return
            try:
                content = loads_strict(text_data)
            except BadJSON:
                await self._error("bad_frame", _("The request could not be understood."))
                return
            if not await self._still_signed_in():
                await self.close(code=4401)
                return
            await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        request_id = content.get("request_id") if isinstance(content, dict) else None
        if not isinstance(request_id, (str, int, type(None))) or isinstance(request_id, bool):
            request_id = None
        kind = None
        # Each frame is a request of its own for the logs (and for the worker that runs its answer).
        set_request_id(f"ws_{uuid.uuid4().hex}")
        try:
            kind, fields = parse_frame(content)
            await getattr(self, f"on_{kind}")(fields)
        except (ObjectDoesNotExist, ValidationError):  # ValidationError: an id that is not a UUID
            missing = _("Answer not found.") if kind in ("stop", "resume") else _("Conversation not found.")
            await self._error("not_found", missing, request_id)
        except (services.ChatError, GenerationRefused) as exc:
            # GenerationRefused arrives here from the commit: the broker did not take the task.
            await self._error(exc.code, str(exc), request_id)
        except Exception:  # noqa: BLE001 - a bug must not drop the socket; it is logged
            log.exception("chat request %r failed", content.get("type"))
            await self._error("internal_error", _("Something went wrong. Try again."), request_id)

    async def _error(self, code: str, message: str, request_id=None) -> None:
        await self.send_json({"type": "error", "code": code, "request_id": request_id, "message": message})

    @database_sync_to_async
    def _still_signed_in(self) -> bool:
        """The user is still active and, for a socket opened with a session, still logged in
        with the same password (the session's auth hash)."""
        return session_still_valid(self.scope, self.user)

    async def session_ended(self, message):
        """A group message: the user logged out, was deactivated or changed the password."""
        session_key = message.get("session_key")
        own_key = getattr(self.scope.get("session"), "session_key", None)
        if session_key is not None and session_key != own_key:
            return
        await self._stop_started()
        await self.close(code=4401)

    async def _stop_started(self) -> None:
        for generation_id in list(self.started):
            try:
                await self._stop(generation_id)
            except ObjectDoesNotExist:
                pass

    # Requests ---------------------------------------------------------------------------

    async def on_send(self, content):
        question, answer, conversation = await self._send(content.get("conversation_id"), content.get("content"),
                                                          content.get("model"), content.get("settings"))
        await self._accepted(content, conversation, answer, question=question)

    @database_sync_to_async
    def _send(self, conversation_id, text, model_name, new_settings):
        with transaction.atomic():  # a refused first message leaves no empty conversation behind
            services.message_validate(text)  # before anything is saved
            if conversation_id:
                conversation = selectors.conversation_get(user=self.user, conversation_id=conversation_id)
            else:
                conversation = services.conversation_create(user=self.user, model_name=model_name or None)
            _apply_settings(conversation, new_settings)
            question, answer = services.message_send(conversation=conversation, content=text)
        conversation.refresh_from_db()
        return question.as_dict(), answer.as_dict(), conversation

    async def on_regenerate(self, content):
        answer, conversation = await self._regenerate(content.get("conversation_id"), content.get("settings"))
        await self._accepted(content, conversation, answer)

    @database_sync_to_async
    def _regenerate(self, conversation_id, new_settings):
        with transaction.atomic():
            conversation = selectors.conversation_get(user=self.user, conversation_id=conversation_id)
            _apply_settings(conversation, new_settings)
            answer = services.message_regenerate(conversation=conversation)
        return answer.as_dict(), conversation

    async def on_edit(self, content):
        question, answer, conversation = await self._edit(content.get("message_id"), content.get("content"),
                                                          content.get("settings"))
        await self._accepted(content, conversation, answer, question=question)

    @database_sync_to_async
    def _edit(self, message_id, text, new_settings):
        with transaction.atomic():
            message = selectors.message_get(user=self.user, message_id=message_id)
            services.message_validate(text)
            _apply_settings(message.conversation, new_settings)
            question, answer = services.message_edit(message=message, content=text)
        conversation = message.conversation
        conversation.refresh_from_db()
        return question.as_dict(), answer.as_dict(), conversation

    async def on_stop(self, content):
        await self._stop(content.get("generation_id"))

    @database_sync_to_async
    def _stop(self, generation_id):
        generation = Generation.objects.for_user(self.user).get(pk=generation_id)
        generation_services.generation_cancel(generation=generation)

    async def on_watch(self, content):
        """Another tab may change this conversation: hear about it (channel layer group)."""
        conversation_id = await self._own_conversation(content.get("conversation_id"))
        group = self.group_name(conversation_id)
        if group not in self.watching:
            await self.channel_layer.group_add(group, self.channel_name)
            self.watching.add(group)

    @database_sync_to_async
    def _own_conversation(self, conversation_id) -> int:
        return selectors.conversation_get(user=self.user, conversation_id=conversation_id).id

    async def conversation_changed(self, message):
        """A group message: a new answer was started from another tab."""
        if message.get("origin") != self.channel_name:
            await self.send_json({"type": "conversation_changed", "conversation_id": message["conversation_id"],
                                  "generation_id": message["generation_id"]})

    async def on_resume(self, content):
        generation_id = await self._own_generation(content.get("generation_id"))
        self.follow(generation_id, str(content.get("last_id") or "0-0"))

    @database_sync_to_async
    def _own_generation(self, generation_id) -> str:
        return str(Generation.objects.for_user(self.user).values_list("pk", flat=True).get(pk=generation_id))

    async def _accepted(self, content, conversation, answer, question=None):
        await self.send_json({
            "type": "accepted",
            "request_id": content.get("request_id"),
            "conversation": {"id": conversation.id, "title": conversation.title, "model": conversation.model_name},
            "settings": services.conversation_settings(conversation),
            "question": question,
            "answer": answer,
        })
        self.started.add(str(answer["generation_id"]))
        self.follow(answer["generation_id"], "0-0")
        await self.channel_layer.group_send(self.group_name(conversation.id), {
            "type": "conversation.changed", "conversation_id": conversation.id,
            "generation_id": answer["generation_id"], "origin": self.channel_name,
        })

    # Relay --------------------------------------------------------------------------------

    async def _send_frame(self, payload: dict) -> bool:
        """Send one frame of an answer; False when the page has gone.

        A reload or a closed tab ends the socket between two frames: that is normal (the
        answer goes on and the page resumes it), so it is logged at debug, not as an error.
        The ASGI server says so with an OSError (uvicorn's ClientDisconnected).
        """
        try:
            await self.send_json(payload)
        except OSError as exc:
            log.debug("page left while relaying %s: %r", payload.get("generation_id"), exc)
            return False
        return True

    def follow(self, generation_id: str, last_id: str) -> None:
        previous = self.relays.pop(generation_id, None)
        if previous is not None:
            previous.cancel()
        self.relays[generation_id] = asyncio.create_task(self._relay(generation_id, last_id))

    async def _relay(self, generation_id: str, last_id: str) -> None:
        with log_context(generation_id=generation_id):
            await self._relay_events(generation_id, last_id)

    async def _relay_events(self, generation_id: str, last_id: str) -> None:
        log.info("relaying generation %s to a page from %s", generation_id, last_id)
        try:
            async for entry_id, event in relay.follow(
                self.redis, generation_id, last_id, on_idle=lambda: _idle_event(generation_id)
            ):
                if not await self._send_frame({**event, "generation_id": generation_id, "id": entry_id}):
                    return
                if event["type"] in relay.FINAL_EVENTS:
                    log.info("relayed generation %s to its end (%s)", generation_id, event["type"])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the page is told; the answer itself goes on
            log.exception("relay of %s failed", generation_id)
            with translation.override(self.language):
                await self._send_frame({"type": "error", "code": "relay", "generation_id": generation_id,
                                        "message": _("Connection lost — reconnecting…")})
        finally:
            if self.relays.get(generation_id) is asyncio.current_task():
                del self.relays[generation_id]
