"""Replies to a streaming request that did not come as a stream.

A server may answer ``stream: true`` with a 200 whose body is one JSON document
(``content-type: application/json``: LiteLLM's ``/v1/messages`` does, as do other compatible
servers), or with something else entirely (an HTML page from a proxy). When the content type
is not the dialect's stream type, the dialect wraps its stream decoder in a
:class:`NonStreamDecoder`, which looks at the body itself:

- a body that starts like the dialect's stream (an SSE field, or the JSON a dialect streams)
  is a mislabelled stream and goes to the stream decoder unchanged, read by read;
- otherwise the body is read whole (at most :data:`MAX_BODY` bytes). An error envelope
  (``{"error": ...}``) is handed to the stream decoder as an in-band error event, so it maps
  to its typed error with its own message; a complete non-streamed reply is turned by the
  dialect into the events its stream would have carried, so text, tool calls and usage are
  delivered as if streamed; anything else is a :class:`~promptkit.StreamProtocolError`
  quoting the start of the body.

Pure: bytes in, chunks out, like every decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptkit._errors import ProviderError, StreamProtocolError
from promptkit._json import loads
from promptkit.engine.chunks import StreamChunk
from promptkit.engine.dialect import RoundDecoder, RoundResult

__all__ = [
    "MAX_BODY",
    "NonStreamDecoder",
    "json_start",
    "media_type",
    "sse_or_json_start",
    "sse_start",
]

#: The largest non-streamed body read whole (a complete reply is far smaller).
MAX_BODY = 32 * 1024 * 1024
_SNIPPET = 200
_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"

#: A complete reply → the payloads of the SSE data events its stream would have carried
#: (``None`` when the value is not such a reply).
ReplyEvents = Callable[[Any], list[str] | None]


def media_type(content_type: str) -> str:
    """``"text/event-stream"`` from ``"Text/Event-Stream; charset=utf-8"``."""
    return content_type.split(";", 1)[0].strip().lower()


def sse_start(head: bytes) -> bool | None:
    """Whether a body starting with ``head`` is SSE (``None``: too short to tell yet)."""
    for field in _SSE_FIELDS:
        if head.startswith(field):
            return True
        if field.startswith(head):
            return None
    return False


def json_start(head: bytes) -> bool | None:
    """Whether a body starting with ``head`` is JSON text (an object or an array)."""
    return head[:1] in (b"{", b"[")


def sse_or_json_start(head: bytes) -> bool | None:
    """Whether a body starting with ``head`` is SSE or JSON text (Gemini streams either)."""
    return True if json_start(head) else sse_start(head)


class NonStreamDecoder:
    """Wraps a dialect's stream decoder for a reply whose content type is not its stream's
    (implements ``RoundDecoder``); see the module docstring."""

    __slots__ = ("_body", "_content_type", "_error", "_expected", "_inner", "_mode",
                 "_passthrough", "_reads", "_reply")

    def __init__(self, inner: RoundDecoder, *, content_type: str, expected: str,
                 passthrough: Callable[[bytes], bool | None], reply: ReplyEvents | None) -> None:
        self._inner = inner
        self._content_type = content_type or "none"
        self._expected = expected  # what the stream would have been, for messages
        self._passthrough = passthrough
        self._reply = reply
        self._mode = "sniff"  # → "stream" (the inner decoder has the bytes) or "body"
        self._body = bytearray()
        self._reads = 0
        self._error: ProviderError | None = None

    @property
    def done(self) -> bool:
        return self._error is not None or (self._mode == "stream" and self._inner.done)

    @property
    def events(self) -> int:
        """The inner decoder's events, plus each read of a body read whole (progress for the
        idle and first-token clocks)."""
        return self._reads + self._inner.events

    @property
    def partial_text(self) -> str:
        return self._inner.partial_text

    def feed(self, data: bytes) -> list[StreamChunk]:
        self._check()
        if self._mode == "stream":
            return self._inner.feed(data)
        if not data:
            return []
        self._body += data
        if self._mode == "sniff":
            decided = self._passthrough(self._head())
            if decided is None and len(self._body) < 64:
                return []
            if decided:
                return self._to_stream()
            self._mode = "body"
        self._reads += 1
        if len(self._body) > MAX_BODY:
            self._fail(StreamProtocolError(
                f"expected {self._expected}, got a {self._content_type} body over "
                f"{MAX_BODY >> 20} MiB"))
        return []

    def flush(self) -> list[StreamChunk]:
        self._check()
        if self._mode == "sniff":
            if not self._head() or self._passthrough(self._head()):
                return self._to_stream() + self._inner.flush()
            self._mode = "body"
        if self._mode == "stream":
            return self._inner.flush()
        return self._whole_body()

    def finish(self) -> RoundResult:
        if self._mode != "stream":
            self.flush()
        self._check()
        return self._inner.finish()

    # --- internals ---------------------------------------------------------------------------

    def _head(self) -> bytes:
        return bytes(self._body[:64]).removeprefix(_BOM).lstrip(_WHITESPACE)

    def _to_stream(self) -> list[StreamChunk]:
        self._mode = "stream"
        data = bytes(self._body)
        self._body.clear()
        return self._inner.feed(data) if data else []

    def _whole_body(self) -> list[StreamChunk]:
        """The buffered body, read whole at end of stream."""
        data = bytes(self._body)
        self._body.clear()
        try:
            value = loads(data.removeprefix(_BOM))
        except ValueError:
            value = None
        payloads: list[str] | None = None
        if isinstance(value, dict) and value.get("error"):
            payloads = [data.decode("utf-8", "replace")]  # the in-band error path
        elif value is not None and self._reply is not None:
            try:
                payloads = self._reply(value)
            except (AttributeError, TypeError, KeyError, ValueError):
                payloads = None
        if payloads is None:
            text = " ".join(data[:_SNIPPET * 4].decode("utf-8", "replace").split())
            snippet = text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"
            what = "a complete reply" if self._reply is not None else "a stream"
            return self._fail(StreamProtocolError(
                f"expected {self._expected} or {what}, got a {self._content_type} body: "
                f"{snippet!r}"))
        self._mode = "stream"
        framed = "".join(f"data: {payload}\n\n" for payload in payloads).encode("utf-8")
        return self._inner.feed(framed) + self._inner.flush()

    def _fail(self, error: ProviderError) -> list[StreamChunk]:
        self._error = error
        raise error

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
