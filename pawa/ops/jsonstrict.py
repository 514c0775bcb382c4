"""One strict JSON reader for every body and frame PAWA accepts (API, chat endpoints, websocket).

Python's json module accepts what PAWA must refuse with a clear 4xx instead of failing later:
NaN/Infinity, strings with lone UTF-16 surrogates ("\\ud800", which no database or encoder
takes), and nesting deep enough to exhaust the interpreter's recursion limit.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class BadJSON(ValueError):
    """The input is not acceptable JSON. `reason` is a short English phrase for logs and API
    clients; user interfaces show their own translated message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _reject_constant(name: str):
    raise BadJSON(f"{name} is not valid JSON")


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadJSON("a string contains an invalid Unicode character (a lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON text (bytes must be UTF-8). Raises BadJSON for anything not acceptable."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadJSON("the body is not UTF-8") from None
    # Nesting is counted before parsing: json.loads itself recurses once per level.
    depth = 0
    in_string = escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise BadJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except BadJSON:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadJSON(f"the body is not valid JSON ({exc})" if isinstance(exc, ValueError)
                      else "JSON nested too deeply") from None
    _check(value, 0)
    return value
