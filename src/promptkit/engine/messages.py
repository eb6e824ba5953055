"""Conversation values: messages, tool calls, tool results and token usage.

All are small frozen keyword-only dataclasses; they round-trip through plain dicts
(``to_dict`` / ``from_dict``) so stores can persist them losslessly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Message", "Role", "ToolCall", "ToolResult", "Usage"]

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = frozenset(("system", "user", "assistant", "tool"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A tool the model asked to run: ``id``, ``name`` and parsed ``arguments``.

    ``raw_arguments`` keeps the exact argument string the model produced; it is sent back to
    the provider unchanged in follow-up requests.
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments,
                "raw_arguments": self.raw_arguments}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(id=str(data["id"]), name=str(data["name"]),
                   arguments=dict(data.get("arguments") or {}),
                   raw_arguments=str(data.get("raw_arguments") or ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    """What a tool returned (``content``, JSON text), or why it failed (``is_error``)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "content": self.content,
                "is_error": self.is_error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolResult:
        return cls(call_id=str(data["call_id"]), name=str(data["name"]),
                   content=str(data["content"]), is_error=bool(data.get("is_error", False)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts of one turn, normalised across providers.

    ``input_tokens`` includes ``cached_tokens``; ``output_tokens`` includes
    ``reasoning_tokens``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_tokens": self.cached_tokens, "reasoning_tokens": self.reasoning_tokens}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(**{k: int(data.get(k) or 0) for k in
                      ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")})


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message of a conversation.

    ``role`` is ``"user"``, ``"assistant"``, ``"tool"`` (or ``"system"``); ``text`` the text
    content; an assistant message may carry ``tool_calls``; a tool message carries its
    ``tool_result``. ``extra`` holds provider-opaque data (e.g. reasoning signatures) that must
    be sent back unchanged.

        >>> Message(role="user", text="Hi").text
        'Hi'
    """

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_result: ToolResult | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"unknown message role {self.role!r}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "text": self.text}
        if self.tool_calls:
            data["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_result is not None:
            data["tool_result"] = self.tool_result.to_dict()
        if self.usage is not None:
            data["usage"] = self.usage.to_dict()
        if self.finish_reason is not None:
            data["finish_reason"] = self.finish_reason
        if self.extra:
            data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        result = data.get("tool_result")
        usage = data.get("usage")
        return cls(
            role=data["role"],
            text=str(data.get("text") or ""),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            tool_result=ToolResult.from_dict(result) if result else None,
            usage=Usage.from_dict(usage) if usage else None,
            finish_reason=data.get("finish_reason"),
            extra=dict(data.get("extra") or {}),
        )
