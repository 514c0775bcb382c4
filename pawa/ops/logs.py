"""Log records that say which request and which generation they belong to.

Two context variables hold the ids of what the current code serves: the request id (the
`X-Request-ID` header, set by `RequestIdMiddleware`; a websocket frame's own id) and the
generation id (set by the worker's task and by the web readers that relay a generation's
stream). `ContextFilter`, installed on the log handlers by `settings.LOGGING`, copies both
onto every record as `request_id` and `generation_id` ("-" when none), so the plain format
shows them and the JSON format (`PAWA_LOG_FORMAT=json`) has them as fields.

The request id travels to the worker with the task (`run_generation(..., request_id=...)`),
so one answer can be followed across the web process, the worker and the relay by grepping
its generation id or the request id that asked for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

NONE = "-"

request_id_var: ContextVar[str] = ContextVar("pawa_request_id", default=NONE)
generation_id_var: ContextVar[str] = ContextVar("pawa_generation_id", default=NONE)

PLAIN_FORMAT = "%(levelname)s %(name)s [%(request_id)s %(generation_id)s]: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(request_id)s %(generation_id)s %(message)s"


class ContextFilter(logging.Filter):
    """Adds `request_id` and `generation_id` (strings, "-" when unknown) to every record.

    A record that already carries them (passed with `extra=`) keeps its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "generation_id"):
            record.generation_id = generation_id_var.get()
        return True


def current_request_id() -> str | None:
    """The request id of the code running now, or None outside any request."""
    value = request_id_var.get()
    return None if value == NONE else value


def set_request_id(request_id: str | None) -> None:
    """Tag what this context logs from now on with `request_id` (a new asyncio task or an ASGI
    request has a context of its own, so this does not leak to other requests)."""
    request_id_var.set(request_id or NONE)


@contextmanager
def log_context(*, request_id: str | None = None, generation_id: str | None = None) -> Iterator[None]:
    """Within the block, records carry these ids (None leaves the current value alone)."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if generation_id is not None:
        tokens.append((generation_id_var, generation_id_var.set(str(generation_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def logging_config(*, log_format: str, level: str) -> dict:
    """The `LOGGING` dict of the settings: one console handler, `plain` or `json` records,
    both carrying the request and generation ids. Raises ValueError for another format."""
    if log_format not in ("plain", "json"):
        raise ValueError(f"PAWA_LOG_FORMAT must be 'plain' or 'json', not {log_format!r}")
    formatters = {
        "plain": {"format": PLAIN_FORMAT},
        # python-json-logger: one JSON object per line with these fields and any `extra=`.
        "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS,
                 "rename_fields": {"levelname": "level", "asctime": "time", "name": "logger"}},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "pawa.ops.logs.ContextFilter"}},
        "formatters": {log_format: formatters[log_format]},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format,
                                 "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }
