"""Pieces every native dialect shares: the decoder skeleton, THINKING chunks, argument and
tool-result parsing, and small request-building helpers.

The decoder skeleton (:class:`DecoderBase`) holds the state of the ``RoundDecoder``
protocol and the rule that keeps chunk delivery independent of how the bytes were split: an
error found after chunks of the same read were completed waits until those chunks are
delivered (``done`` becomes true and ``finish`` or the next ``feed`` raises it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from promptkit._errors import ProviderError, StreamProtocolError
from promptkit._json import loads
from promptkit.engine.chunks import ChunkType, StreamChunk, text_chunk
from promptkit.engine.messages import Message, ToolCall, ToolResult

__all__ = [
    "DecoderBase",
    "dumps",
    "int_of",
    "protocol_error",
    "stop_sequences",
    "text_of",
    "thinking_chunk",
    "tool_call",
    "tool_result_value",
    "turns",
]

_SNIPPET = 200
_slots: Any = StreamChunk.__dict__
_set_type = _slots["type"].__set__
_THINKING = ChunkType.THINKING


def thinking_chunk(text: str) -> StreamChunk:
    """A THINKING chunk (reasoning text, never part of the answer), built as cheaply as
    :func:`~promptkit.engine.chunks.text_chunk`."""
    chunk = text_chunk(text)
    _set_type(chunk, _THINKING)
    return chunk


def text_of(value: Any) -> str:
    """``value`` when it is a string; anything else is a wrong JSON type (``TypeError``,
    which decoders report as a :class:`StreamProtocolError`)."""
    if type(value) is not str:
        raise TypeError("expected a string")
    return value


def dumps(value: Any) -> str:
    """Compact UTF-8 JSON, as every dialect sends it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def int_of(value: Any) -> int:
    """``value`` if it is an int (not a bool), else 0: token counts from untrusted JSON."""
    return value if type(value) is int else 0


def protocol_error(what: str, payload: str) -> StreamProtocolError:
    """A :class:`StreamProtocolError` quoting at most 200 characters of the bad payload."""
    snippet = payload if len(payload) <= _SNIPPET else payload[:_SNIPPET] + "…"
    return StreamProtocolError(f"{what}, got: {snippet!r}")


def tool_call(call_id: str, name: str, raw: str) -> ToolCall:
    """A finished call: ``raw`` parsed once; empty means ``{}``, and text that is not a JSON
    object (e.g. cut by the token limit) gives ``arguments={}`` with ``raw`` kept for the
    engine to report."""
    arguments: dict[str, Any] = {}
    if raw.strip():
        try:
            parsed = loads(raw)
        except ValueError:
            parsed = None
        if type(parsed) is dict:
            arguments = parsed
    return ToolCall(id=call_id, name=name, arguments=arguments, raw_arguments=raw)


def tool_result_value(result: ToolResult) -> Any:
    """The JSON value of a tool's ``content`` (the text itself when it is not JSON)."""
    content = result.content
    try:
        return loads(content)
    except ValueError:
        return content


def stop_sequences(parameters: Mapping[str, Any]) -> list[str] | None:
    """The ``stop`` parameter as a list of strings, or ``None`` when absent or empty."""
    stop = parameters.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else None
    if isinstance(stop, Sequence) and stop:
        return [str(s) for s in stop]
    return None


def turns(messages: Sequence[Message]) -> Iterator[Message | list[ToolResult]]:
    """The messages in order, with each run of consecutive tool messages (one round's
    results) grouped into a list of their results."""
    results: list[ToolResult] = []
    for message in messages:
        if message.role == "tool":
            if message.tool_result is None:
                raise ValueError("a tool message needs a tool_result")
            results.append(message.tool_result)
            continue
        if results:
            yield results
            results = []
        yield message
    if results:
        yield results


class DecoderBase:
    """The state every dialect decoder keeps, and the error-after-chunks rule."""

    __slots__ = ("_error", "_flushed", "_provider", "_text", "done", "events")

    def __init__(self, provider: str) -> None:
        self.done = False
        self.events = 0
        self._provider = provider
        self._text: list[str] = []
        self._flushed = False
        self._error: ProviderError | None = None

    @property
    def partial_text(self) -> str:
        """The answer text streamed so far."""
        return "".join(self._text)

    def _settle(self, chunks: list[StreamChunk], error: ProviderError) -> list[StreamChunk]:
        """Raise ``error`` now, or, when this read completed chunks, after they are delivered."""
        if not chunks:
            self.done = True
            self._error = error
            raise error
        self._error = error
        self.done = True
        return chunks

    def _check(self) -> None:
        """Raise the error that ended the stream, if any (``feed`` after it, ``finish``)."""
        if self._error is not None:
            raise self._error

    def feed(self, data: bytes) -> list[StreamChunk]:
        """Decode one network read; return its TEXT and THINKING chunks."""
        self._check()
        if self.done:
            return []
        try:
            payloads = self._frame(data)
        except ProviderError as exc:  # bytes that are not the framing at all
            return self._settle([], exc)
        return self._consume(payloads)

    def flush(self) -> list[StreamChunk]:
        """At EOF: the chunks of a final event that had no terminating newline."""
        if self._flushed or self.done:
            return []
        self._flushed = True
        try:
            payloads = self._frame_end()
        except ProviderError as exc:
            return self._settle([], exc)
        return self._consume(payloads)

    # --- what each dialect provides ---------------------------------------------------------

    def _frame(self, data: bytes) -> list[Any]:
        """Split a read into the dialect's payloads (SSE data, NDJSON values ...)."""
        raise NotImplementedError

    def _frame_end(self) -> list[Any]:
        """The payload left at end of stream, if any."""
        raise NotImplementedError

    def _consume(self, payloads: list[Any]) -> list[StreamChunk]:
        """Apply payloads; return their chunks (errors wait behind earlier chunks)."""
        raise NotImplementedError
