"""The API's JSON parser: DRF's, reading through pawa.ops.jsonstrict."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from pawa.ops.jsonstrict import BadJSON, loads_strict


class StrictJSONParser(JSONParser):
    """Refuses deep nesting, NaN/Infinity and lone surrogates with a 400 (never a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return loads_strict(stream.read() if stream is not None else b"")
        except BadJSON as exc:
            raise ParseError(f"JSON parse error: {exc.reason}") from None
