"""Stream chunks: the typed pieces a streaming turn yields, and the turn's final Response."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from promptkit._errors import PromptKitError
from promptkit.engine.held import PendingToolCall
from promptkit.engine.messages import Message, ToolCall, ToolResult, Usage
from promptkit.engine.validation import ValidationResult

__all__ = ["ChunkType", "Response", "StreamChunk"]


class ChunkType(enum.Enum):
    """What a :class:`StreamChunk` carries. Consumers should ignore types they do not know."""

    TEXT = "text"
    """``chunk.text`` is the next piece of the model's answer."""
    THINKING = "thinking"
    """``chunk.text`` is the next piece of the model's reasoning; never part of the answer."""
    TOOL_CALL = "tool_call"
    """``chunk.tool_call`` is a complete call the model asked for; it runs next."""
    TOOL_RESULT = "tool_result"
    """``chunk.tool_result`` is what a tool returned (``is_error`` when it failed)."""
    APPROVAL_REQUIRED = "approval_required"
    """``chunk.tool_call`` needs a human decision (``chunk.text``: why); the turn ends after
    it, with ``Response.pending_tools``: ``approve()`` / ``reject()``, then ``resume()``."""
    CLIENT_TOOL = "client_tool"
    """``chunk.tool_call`` is for a client-side tool: run it, ``send_tool_result()``, then
    ``resume()``."""
    VALIDATION = "validation"
    """A guardrail blocked the turn: ``chunk.validation`` is the failed result
    (``blocked=True``); replace what was shown with the DONE response's text."""
    DONE = "done"
    """The turn completed; ``chunk.response`` is the full :class:`Response`. Always last."""
    ERROR = "error"
    """The turn failed; ``chunk.error`` is the exception. Nothing follows it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """The outcome of one completed turn.

    ``text`` is the final answer, ``tool_calls`` every tool call of the turn (all rounds),
    ``usage`` and ``cost`` (USD, ``None`` when the model's price is unknown or the provider
    reported no usage: all counts zero) are summed over the turn's rounds, never over the
    whole history. A turn that stopped for approvals or
    client tools lists them in ``pending_tools``. ``duration`` and ``time_to_first_token``
    are in seconds. ``messages`` are the messages the turn added to the history.
    """

    text: str
    message: Message
    usage: Usage
    cost: float | None
    finish_reason: str | None
    tool_calls: tuple[ToolCall, ...]
    tool_results: tuple[ToolResult, ...]
    duration: float
    time_to_first_token: float | None
    model: str
    provider: str
    messages: tuple[Message, ...]
    pending_tools: tuple[PendingToolCall, ...] = ()
    """Held calls the turn is waiting on (approvals, client tools); empty when complete."""
    parsed: Any = None
    """The answer decoded for ``response_format=``: an instance of the dataclass, TypedDict,
    msgspec.Struct or pydantic model asked for (the JSON value for a schema mapping); ``None``
    without a ``response_format``."""
    validations: tuple[ValidationResult, ...] = ()
    """The result of every guardrail that ran this turn (input ones first)."""

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """The Response as JSON-serialisable data (what ``promptkit send --json`` prints in
        its ``done`` line): text, finish reason, usage, cost, model, provider, timings, the
        turn's tool calls and results, held calls, ``parsed`` as plain JSON values, and the
        guardrails' ``validations`` when any ran."""
        data: dict[str, Any] = {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "cost": self.cost,
            "model": self.model,
            "provider": self.provider,
            "duration": round(self.duration, 6),
            "time_to_first_token": self.time_to_first_token,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "tool_results": [result.to_dict() for result in self.tool_results],
            "pending_tools": [_pending_dict(p) for p in self.pending_tools],
        }
        if self.parsed is not None:
            data["parsed"] = _plain(self.parsed)
        if self.validations:
            data["validations"] = [v.to_dict() for v in self.validations]
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamChunk:
    """One item of a stream; check ``type`` (or ``error``) to know which field is set.

        >>> chunk = StreamChunk(type=ChunkType.TEXT, text="Hi")
        >>> chunk.text, chunk.error
        ('Hi', None)
    """

    type: ChunkType
    text: str = ""
    tool_call: ToolCall | None = None
    tool_result: ToolResult | None = None
    response: Response | None = None
    error: PromptKitError | None = None
    validation: ValidationResult | None = None


def _pending_dict(pending: PendingToolCall) -> dict[str, Any]:
    return {"call_id": pending.call_id, "name": pending.name,
            "arguments": dict(pending.arguments), "kind": pending.kind,
            "reason": pending.reason, "decision": pending.decision}


def _plain(value: Any) -> Any:
    """A decoded ``parsed`` value as JSON data (pydantic models through ``model_dump``)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a dependency on CPython
        import dataclasses

        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return value
    return msgspec.to_builtins(value)


_new = object.__new__
_slots: Any = StreamChunk.__dict__  # the slot descriptors of the frozen dataclass
_set_type = _slots["type"].__set__
_set_text = _slots["text"].__set__
_set_tool_call = _slots["tool_call"].__set__
_set_tool_result = _slots["tool_result"].__set__
_set_response = _slots["response"].__set__
_set_error = _slots["error"].__set__
_set_validation = _slots["validation"].__set__
_TEXT = ChunkType.TEXT


def text_chunk(text: str) -> StreamChunk:
    """The hot-path constructor for TEXT chunks: equal to ``StreamChunk(type=TEXT, text=text)``
    but about three times cheaper, since it skips the frozen dataclass's ``__init__``."""
    chunk: StreamChunk = _new(StreamChunk)
    _set_type(chunk, _TEXT)
    _set_text(chunk, text)
    _set_tool_call(chunk, None)
    _set_tool_result(chunk, None)
    _set_response(chunk, None)
    _set_error(chunk, None)
    _set_validation(chunk, None)
    return chunk
