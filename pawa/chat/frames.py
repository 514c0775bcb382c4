"""The chat websocket's request frames: their written shape, and who may still send them.

A frame is a JSON object with a `type` and the fields below; `request_id` (string or number)
is optional on every frame and comes back on the answer. Ids of conversations and messages are
integers (a string of digits is accepted); generation ids are strings.

    send        content: str, conversation_id: id | null, model: str | null,
                settings: object | null (system_prompt, temperature, max_tokens to save first)
    stop        generation_id: str
    resume      generation_id: str, last_id: str | null
    regenerate  conversation_id: id
    edit        message_id: id, content: str
    watch       conversation_id: id

Anything else is refused with a ChatError of code `bad_frame`.
"""

from __future__ import annotations

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from pawa.chat.services import ChatError

ID, STR, OBJECT, OPTIONAL = "id", "str", "object", "?"
FRAMES: dict[str, dict[str, str]] = {
    "send": {"content": STR, "conversation_id": ID + OPTIONAL, "model": STR + OPTIONAL,
             "settings": OBJECT + OPTIONAL},
    "stop": {"generation_id": STR},
    "resume": {"generation_id": STR, "last_id": STR + OPTIONAL},
    "regenerate": {"conversation_id": ID},
    "edit": {"message_id": ID, "content": STR},
    "watch": {"conversation_id": ID},
}


def _bad(field: str) -> ChatError:
    return ChatError(_("This request is malformed (%(field)s).") % {"field": field}, code="bad_frame")


def parse_frame(content) -> tuple[str, dict]:
    """(type, fields) of a valid frame; fields hold only the declared ones (and request_id).
    Raises ChatError(code="bad_frame") naming the first field at fault."""
    if not isinstance(content, dict):
        raise _bad("type")
    kind = content.get("type")
    if not isinstance(kind, str) or kind not in FRAMES:
        raise ChatError(_("Unknown request."), code="bad_frame")
    fields = {"type": kind, "request_id": content.get("request_id")}
    for name, spec in FRAMES[kind].items():
        value = content.get(name)
        if value is None:
            if not spec.endswith(OPTIONAL):
                raise _bad(name)
            fields[name] = None
            continue
        if spec.startswith(ID):
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
                raise _bad(name)
        elif spec.startswith(OBJECT):
            if not isinstance(value, dict):
                raise _bad(name)
        elif not isinstance(value, str):
            raise _bad(name)
        fields[name] = value
    return kind, fields


def user_group(user_id) -> str:
    """The channel layer group of every chat socket a user has open."""
    return f"pawa.user.{int(user_id)}"


def session_still_valid(scope: dict, user) -> bool:
    """The socket's user is still active, and the session it was opened with still logs that
    user in with the same password (Django's session auth hash). Reads the database."""
    from django.contrib.auth import get_user_model

    current = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    if current is None:
        return False
    session = scope.get("session")
    if session is None or not getattr(session, "session_key", None):
        return True  # opened without a session (tests, trusted callers): the user check holds
    stored = session.__class__(session.session_key)
    data = stored.load()
    if str(data.get(SESSION_KEY)) != str(user.pk) or not data.get(BACKEND_SESSION_KEY):
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), current.get_session_auth_hash())
