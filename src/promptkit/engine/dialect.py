"""The pure interface every wire dialect implements, and the values that cross it.

A dialect turns a :class:`ModelRequest` into bytes to send (:meth:`Dialect.build_request`),
decodes the streamed reply incrementally (:meth:`Dialect.decoder`, bytes in, chunks out) and
maps error replies to the error tree (:meth:`Dialect.map_error`). No dialect does I/O; the
transport and the two conversation drivers do.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptkit._errors import APIStatusError
from promptkit._redact import register_header_secrets, register_secret
from promptkit.engine.chunks import StreamChunk
from promptkit.engine.messages import Message, Usage

__all__ = [
    "Dialect",
    "Endpoint",
    "HTTPRequest",
    "ModelRequest",
    "RoundDecoder",
    "RoundResult",
    "ToolDefinition",
    "WireMemo",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDefinition:
    """A tool offered to the model: name, description and JSON-Schema parameters."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class WireMemo:
    """The wire form of the messages a conversation last sent, for its one dialect.

    A conversation sends its whole history every turn, and each turn's history starts with
    the previous request's messages (the same objects: conversations keep their history).
    The memo keeps the previous request's messages and their converted forms; a new request
    reuses the forms of the common prefix (found by identity, at C speed) and converts only
    the rest. Converted forms are never modified afterwards: dialects build new containers
    around them.
    """

    __slots__ = ("_items", "_messages")

    def __init__(self) -> None:
        # empty tuples until the first request (shared: an idle conversation holds no lists)
        self._messages: Sequence[Message] = ()
        self._items: Sequence[Any] = ()

    def convert(self, messages: Sequence[Message], one: Callable[[Message], Any]) -> list[Any]:
        """``[one(m) for m in messages]``, reusing what the previous call converted."""
        previous = self._messages
        shared = min(len(previous), len(messages))
        if shared:
            same = list(map(operator.is_, previous[:shared], messages[:shared]))
            if not all(same):
                shared = same.index(False)
        kept = self._items[:shared]
        items: list[Any] = kept if type(kept) is list else list(kept)
        items += [one(message) for message in messages[shared:]]
        self._messages = list(messages)
        self._items = items
        return list(items)

    def clear(self) -> None:
        self._messages = ()
        self._items = ()

    def __len__(self) -> int:
        return len(self._items)


# Not frozen (built per model call; a frozen init costs ~0.2 µs a field); never changed.
@dataclass(slots=True, kw_only=True)
class ModelRequest:
    """Everything one model call needs, independent of the wire dialect.

    ``parameters`` holds the sampling parameters by their PromptPack names
    (``temperature``, ``max_tokens``, ``top_p``, ``top_k``, ``frequency_penalty``,
    ``presence_penalty``, plus ``stop`` and ``seed`` set in code); ``tool_choice`` is
    ``"auto"``, ``"required"``, ``"none"`` or a tool name, or ``None`` to leave the provider's
    default.
    """

    model: str
    system: str
    messages: Sequence[Message]
    tools: Sequence[ToolDefinition] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tool_choice: str | None = None
    response_format: Mapping[str, Any] | None = None
    """A JSON Schema the answer must follow, or ``{"type": "json_object"}`` for any JSON."""
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers set in code (``extra_headers=``), added after the endpoint's; never auth ones."""
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    """Body keys set in code (``extra_body=``), merged into the JSON body last."""
    memo: WireMemo | None = field(default=None, compare=False, repr=False)
    """The conversation's memo of converted history messages (dialects may use it)."""


# Not frozen (built per model call; a frozen init costs ~0.2 µs a field); never changed.
@dataclass(slots=True, kw_only=True)
class HTTPRequest:
    """An HTTP request ready for the transport. ``headers`` may hold secrets: never log them."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def __repr__(self) -> str:  # headers carry API keys
        return f"HTTPRequest(method={self.method!r}, url={self.url!r}, body={len(self.body)} bytes)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where and how to reach a provider: base URL, credentials and extra headers.

    One dialect serves many endpoints (OpenAI, vLLM, llama.cpp, OpenRouter ...).
    """

    base_url: str
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every key the SDK sends is known to the redactor, whichever dialect sends it: a
        # server that echoes it in an error body must not get it into an error or a log.
        register_secret(self.api_key)
        register_header_secrets(self.headers)

    def __repr__(self) -> str:  # never show the key
        key = "set" if self.api_key else "none"
        return f"Endpoint(base_url={self.base_url!r}, api_key=<{key}>)"


# Not frozen (built per model call; a frozen init costs ~0.2 µs a field); never changed.
@dataclass(slots=True, kw_only=True)
class RoundResult:
    """What one model call produced once its stream ended cleanly."""

    message: Message
    usage: Usage
    finish_reason: str | None
    model: str | None = None
    #: the provider's id of this response (``chatcmpl-…``, ``msg_…``, ``resp_…``, Gemini's
    #: ``responseId``), for ``gen_ai.response.id``; ``None`` when the dialect has none
    response_id: str | None = None


class RoundDecoder(Protocol):
    """Incremental decoder of one streamed reply: bytes in, chunks out, then a result.

    ``feed`` returns the TEXT chunks completed by these bytes (possibly none). ``done`` becomes
    true once the dialect's terminator was seen (the driver may stop reading). ``events`` counts
    content events seen so far (keep-alive comments and pings do not count); drivers use it for
    first-token and idle timeouts. ``partial_text`` is the text so far. At end of stream the
    driver calls ``flush`` (and delivers its chunks), then ``finish``, which returns the result,
    or raises :class:`StreamInterruptedError` when the stream ended early,
    :class:`StreamProtocolError` for bytes that are not the dialect, or an
    :class:`APIStatusError` subclass for an in-band error event (``feed`` may raise those too).
    """

    @property
    def done(self) -> bool: ...

    @property
    def events(self) -> int: ...

    @property
    def partial_text(self) -> str: ...

    def feed(self, data: bytes) -> list[StreamChunk]: ...

    def flush(self) -> list[StreamChunk]:
        """At end of stream: chunks of a final event that had no trailing blank line."""
        ...

    def finish(self) -> RoundResult: ...


class Dialect(Protocol):
    """A wire protocol: request building, stream decoding and error mapping, all pure."""

    #: provider name used in errors and responses, e.g. ``"openai"``
    name: str

    def build_request(self, request: ModelRequest) -> HTTPRequest: ...

    def decoder(self, content_type: str | None = None) -> RoundDecoder:
        """A fresh decoder for one 2xx reply whose ``content-type`` is ``content_type``
        (``None``: unknown, assume the dialect's stream). A reply that is not the dialect's
        stream (a whole JSON reply, an error body, an HTML page) is still decoded: see
        ``promptkit.providers._non_stream``."""
        ...

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError: ...
