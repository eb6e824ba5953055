"""Held tool calls: approvals (human in the loop) and client-side tools, kept in the history.

A turn whose model asks for a held call ends early: the turn is committed with the assistant
message marked ``held`` and the results of the calls that did run. Decisions (approve, reject,
a client's result) are appended to the history as *control* messages, one store append each,
with the version they were decided on: two processes deciding the same call race on that
append, and the loser finds the decision already made. ``resume()`` turns the decisions into
tool results and continues the turn. Control messages are never sent to a provider and never
shown in ``conv.messages``.

Everything here is pure; it works with any store that implements ``load``/``append``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from promptkit._errors import ToolError, present_as_promptkit
from promptkit.engine.messages import Message, ToolCall, ToolResult

__all__ = [
    "PendingToolCall",
    "PendingToolError",
    "decision_message",
    "is_control",
    "pending_calls",
    "visible",
]

HeldKind = Literal["approval", "client"]
_KEY = "promptkit"


class PendingToolError(ToolError):
    """A decision about a held tool call cannot be taken (unknown, already decided, or a
    resume with undecided or no held calls)."""


present_as_promptkit(PendingToolError)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingToolCall:
    """A tool call the turn is waiting on: an approval, or a client-side tool's result.

    ``decision`` is ``None`` while undecided, else ``"approved"``, ``"rejected"`` or
    ``"result"`` (a client tool's result was sent).
    """

    call_id: str
    name: str
    arguments: Mapping[str, Any]
    kind: HeldKind
    reason: str = ""
    decision: str | None = None


def held_marker(held: Sequence[tuple[ToolCall, HeldKind, str]]) -> dict[str, Any]:
    """The ``extra`` entry that marks an assistant message's held calls."""
    return {_KEY: {"held": {call.id: {"kind": kind, "reason": reason}
                            for call, kind, reason in held}}}


def decision_message(call_id: str, action: str, **data: Any) -> Message:
    """A control message recording a decision about held call ``call_id``."""
    return Message(role="system", extra={_KEY: {"decision": {"call_id": call_id,
                                                              "action": action, **data}}})


def is_control(message: Message) -> bool:
    info = message.extra.get(_KEY) if message.extra else None
    return isinstance(info, Mapping) and "decision" in info


def visible(messages: Sequence[Message]) -> tuple[Message, ...]:
    """The messages without control records (what providers and users see)."""
    return tuple(m for m in messages if not is_control(m))


def _held_of(message: Message) -> Mapping[str, Mapping[str, str]]:
    info = message.extra.get(_KEY) if message.extra else None
    held = info.get("held") if isinstance(info, Mapping) else None
    return held if isinstance(held, Mapping) else {}


def pending_calls(history: Sequence[Message]) -> tuple[list[PendingToolCall],
                                                       dict[str, Mapping[str, Any]]]:
    """The held calls of the history's last turn and the decisions taken on them.

    Returns ``([], {})`` when the last assistant message holds nothing, or when its held
    calls were already resumed (their tool results follow it).
    """
    for index in range(len(history) - 1, -1, -1):
        message = history[index]
        if message.role != "assistant":
            continue
        held = _held_of(message)
        if not held:
            return [], {}
        later = history[index + 1:]
        answered = {m.tool_result.call_id for m in later if m.tool_result is not None}
        decisions: dict[str, Mapping[str, Any]] = {}
        for record in later:
            if is_control(record):
                decision = record.extra[_KEY]["decision"]
                decisions.setdefault(str(decision["call_id"]), decision)
        calls = []
        for call in message.tool_calls:
            if call.id in held and call.id not in answered:
                decided = decisions.get(call.id)
                calls.append(PendingToolCall(
                    call_id=call.id, name=call.name, arguments=call.arguments,
                    kind=held[call.id].get("kind", "approval"),  # type: ignore[arg-type]
                    reason=held[call.id].get("reason", ""),
                    decision=None if decided is None else str(decided["action"])))
        return calls, decisions
    return [], {}


def check_decision(pending: Sequence[PendingToolCall], call_id: str, kind: HeldKind) -> None:
    """Raise PendingToolError unless ``call_id`` is an undecided held call of ``kind``."""
    found = next((p for p in pending if p.call_id == call_id), None)
    if found is None:
        known = ", ".join(p.call_id for p in pending) or "none"
        raise PendingToolError(f"no held tool call {call_id!r} (held: {known})")
    if found.kind != kind:
        wanted = "approve()/reject()" if found.kind == "approval" else \
            "send_tool_result()/reject_client_tool()"
        raise PendingToolError(f"tool call {call_id!r} is a {found.kind} call: use {wanted}")
    if found.decision is not None:
        raise PendingToolError(f"tool call {call_id!r} was already {found.decision}")


def resolved_result(call: PendingToolCall, decision: Mapping[str, Any]) -> ToolResult | None:
    """The tool result a decision stands for, or ``None`` when the tool must run first."""
    action = decision["action"]
    if action == "rejected":
        reason = decision.get("reason") or "no reason given"
        return ToolResult(call_id=call.call_id, name=call.name,
                          content=f"Error: tool call rejected: {reason}", is_error=True)
    if action == "result":
        return ToolResult(call_id=call.call_id, name=call.name,
                          content=str(decision.get("content", "")),
                          is_error=bool(decision.get("is_error", False)))
    return None
