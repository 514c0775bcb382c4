"""Text around the model: chat templates, incremental detokenization, stop strings."""

from __future__ import annotations

from datetime import datetime

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from inference.errors import ModelError


def _raise_exception(message: str):
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


_JINJA = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
_JINJA.globals["raise_exception"] = _raise_exception
_JINJA.globals["strftime_now"] = _strftime_now


def render_chat_template(
    template: str, messages: list[dict], *, bos_token: str = "", eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render a Hugging Face-style chat template the way transformers does (sandboxed Jinja2)."""
    try:
        compiled = _JINJA.from_string(template)
        return compiled.render(
            messages=messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except TemplateError as exc:
        raise ModelError(f"The model's chat template failed: {exc}") from exc


class IncrementalDecoder:
    """Turns token ids into text deltas whose concatenation equals the final decode.

    Text is released only once it is stable: a multi-byte UTF-8 character split across
    byte-fallback tokens, or a SentencePiece space that depends on the next token, waits
    until the following token makes it complete.
    """

    def __init__(self, tokenizer: Tokenizer, skip_ids: frozenset[int] = frozenset()):
        self._tokenizer = tokenizer
        self._skip = skip_ids
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> str:
        if token_id in self._skip:
            return ""
        self._ids.append(token_id)
        prefix = self._decode(self._ids[self._prefix_offset:self._read_offset])
        text = self._decode(self._ids[self._prefix_offset:])
        # A UTF-8 character spans at most 4 byte tokens: past that the bytes are invalid
        # and are shown as they are rather than held back forever.
        incomplete = text.endswith("\ufffd") and len(self._ids) - self._read_offset < 4
        if len(text) > len(prefix) and not incomplete:
            delta = text[len(prefix):]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back once generation has ended."""
        prefix = self._decode(self._ids[self._prefix_offset:self._read_offset])
        text = self._decode(self._ids[self._prefix_offset:])
        self._prefix_offset = self._read_offset = len(self._ids)
        # An answer cut by max_tokens inside a multi-byte character ends before it, not with
        # U+FFFD: the incomplete bytes are dropped.
        tail = text[len(prefix):] if text.startswith(prefix) else ""
        return tail.rstrip("\ufffd")

    @property
    def text(self) -> str:
        return self._decode(self._ids)


class StopMatcher:
    """Holds back text that might be the start of a stop string, and cuts at the first match."""

    def __init__(self, stops: tuple[str, ...] | list[str]):
        self._stops = [stop for stop in stops if stop]
        self._pending = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        if self.stopped:
            return ""
        if not self._stops:
            return delta
        self._pending += delta
        cut = min((self._pending.find(stop) for stop in self._stops if stop in self._pending), default=-1)
        if cut >= 0:
            self.stopped = True
            released, self._pending = self._pending[:cut], ""
            return released
        hold = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), 0, -1):
                if self._pending.endswith(stop[:size]):
                    hold = max(hold, size)
                    break
        released = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(released):]
        return released

    def flush(self) -> str:
        released, self._pending = ("" if self.stopped else self._pending), ""
        return released
