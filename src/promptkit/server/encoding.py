"""JSON shapes of the native API: chunks, responses, messages and errors.

A chunk is ``{"type": <ChunkType value>, ...}`` with the field its type carries (``text``,
``tool_call``, ``tool_result``, ``response``, ``error``, ``validation``), the same objects
``promptkit send --json`` prints. Chunk types added later are encoded generically (every
set field that has a JSON form), so a client can dispatch on ``type`` and ignore the rest.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from promptkit import APIStatusError, Message, Response, StreamChunk
from promptkit._redact import redact

__all__ = ["chunk_json", "error_json", "message_json", "response_json"]

_CHUNK_FIELDS = ("tool_call", "tool_result", "validation")


def plain(value: Any) -> Any:
    """A JSON-able form of a value of the public API (dataclasses, enums, tuples)."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return plain(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def error_json(error: BaseException) -> dict[str, Any]:
    """An error as ``{"type", "message", "retryable"[, "status_code"]}``; the message is the
    exception's text with every credential redacted (a provider may echo the key), never a
    traceback."""
    data: dict[str, Any] = {"type": type(error).__name__, "message": redact(str(error)),
                            "retryable": bool(getattr(error, "retryable", False))}
    if isinstance(error, APIStatusError):
        data["status_code"] = error.status_code
    return data


def response_json(response: Response) -> dict[str, Any]:
    """A turn's Response: text, finish reason, usage, cost (USD or null), timings, tool calls."""
    data: dict[str, Any] = {
        "text": response.text,
        "finish_reason": response.finish_reason,
        "usage": response.usage.to_dict(),
        "cost": response.cost,
        "model": response.model,
        "provider": response.provider,
        "duration": round(response.duration, 6),
        "time_to_first_token": response.time_to_first_token,
        "tool_calls": [call.to_dict() for call in response.tool_calls],
    }
    validations = getattr(response, "validations", None)
    if validations:
        data["validations"] = plain(validations)
    return data


def chunk_json(chunk: StreamChunk) -> dict[str, Any]:
    """One chunk as ``{"type": ..., <its field>: ...}``."""
    data: dict[str, Any] = {"type": chunk.type.value}
    if chunk.text:
        data["text"] = chunk.text
    for name in _CHUNK_FIELDS:
        value = getattr(chunk, name, None)
        if value is not None:
            data[name] = plain(value)
    if chunk.response is not None:
        data["response"] = response_json(chunk.response)
    if chunk.error is not None:
        data["error"] = error_json(chunk.error)
    return data


def message_json(message: Message) -> dict[str, Any]:
    """A committed message: role, text, tool calls / result, usage (no provider-opaque extra)."""
    data: dict[str, Any] = {"role": message.role, "text": message.text}
    if message.tool_calls:
        data["tool_calls"] = [call.to_dict() for call in message.tool_calls]
    if message.tool_result is not None:
        data["tool_result"] = message.tool_result.to_dict()
    if message.usage is not None:
        data["usage"] = message.usage.to_dict()
    return data
