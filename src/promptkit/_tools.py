"""Tool handlers: registration, planning a round of calls, and turning results into text.

Everything here is pure; the drivers run the planned invocations (threads for the sync
driver, tasks for the async one) and hand the outcomes back through :func:`result_from_value`
and :func:`result_from_exception`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._messages import ToolCall, ToolResult

__all__ = [
    "Invocation",
    "RegisteredTool",
    "ToolContext",
    "ToolHandler",
    "ToolRegistry",
    "plan_calls",
    "result_from_exception",
    "result_from_value",
]

ToolHandler = Callable[..., Any]
"""``handler(args)`` or ``handler(args, ctx)``; may be ``async def``; returns anything JSON-able."""

MAX_RESULT_CHARS = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """What a handler may want to know about the call it serves.

    ``deadline`` is the turn's deadline on the ``time.monotonic()`` clock (``inf`` when the
    turn has none).
    """

    conversation_id: str
    call_id: str
    tool_name: str
    deadline: float


@dataclass(frozen=True, slots=True)
class RegisteredTool:
    """A handler and how to call it."""

    fn: ToolHandler
    takes_context: bool
    is_async: bool

    @classmethod
    def of(cls, fn: ToolHandler) -> RegisteredTool:
        if not callable(fn):
            raise TypeError(f"tool handler must be callable, not {type(fn).__name__}")
        target = fn if inspect.isroutine(fn) else type(fn).__call__  # callable objects
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(target)
        try:
            params = [
                p for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            takes_context = len(params) >= 2
        except (TypeError, ValueError):  # builtins without signatures
            takes_context = False
        return cls(fn, takes_context, is_async)


class ToolRegistry:
    """Tool name → handler, shared safely between threads."""

    def __init__(self, handlers: Mapping[str, RegisteredTool] | None = None) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, RegisteredTool] = dict(handlers or {})

    def register(self, name: str, fn: ToolHandler) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("tool name must be a non-empty string")
        entry = RegisteredTool.of(fn)
        with self._lock:
            self._handlers[name] = entry

    def snapshot(self) -> dict[str, RegisteredTool]:
        with self._lock:
            return dict(self._handlers)

    def copy(self) -> ToolRegistry:
        return ToolRegistry(self.snapshot())


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call to run: the handler, the arguments and its context."""

    index: int
    call: ToolCall
    tool: RegisteredTool
    context: ToolContext

    def args(self) -> tuple[Any, ...]:
        arguments = dict(self.call.arguments)
        return (arguments, self.context) if self.tool.takes_context else (arguments,)


def error_result(call: ToolCall, message: str) -> ToolResult:
    return ToolResult(call_id=call.id, name=call.name, content=f"Error: {message}", is_error=True)


def plan_calls(
    calls: Sequence[ToolCall],
    handlers: Mapping[str, RegisteredTool],
    *,
    allowed: Iterable[str] | None,
    blocklist: Iterable[str],
    conversation_id: str,
    deadline: float,
) -> tuple[list[Invocation], list[ToolResult | None]]:
    """Split a round's calls into handler invocations and immediate error results.

    Returns the invocations to run and a list, in call order, holding the error result of
    each call that will not run (unknown, not allowed, blocked, unparsable arguments) and
    ``None`` where an invocation will fill the slot.
    """
    allowed_set = None if allowed is None else set(allowed)
    blocked = set(blocklist)
    runs: list[Invocation] = []
    slots: list[ToolResult | None] = []
    for index, call in enumerate(calls):
        problem: str | None = None
        if call.name in blocked:
            problem = f"tool {call.name!r} is blocked by the prompt's tool policy"
        elif allowed_set is not None and call.name not in allowed_set:
            problem = f"tool {call.name!r} is not available to this prompt"
        elif call.name not in handlers:
            problem = f"tool {call.name!r} is not registered"
        elif call.raw_arguments.strip() and not call.arguments and _unparsable(call.raw_arguments):
            problem = f"arguments are not valid JSON: {call.raw_arguments[:200]!r}"
        if problem is not None:
            slots.append(error_result(call, problem))
            continue
        context = ToolContext(conversation_id=conversation_id, call_id=call.id,
                              tool_name=call.name, deadline=deadline)
        runs.append(Invocation(index, call, handlers[call.name], context))
        slots.append(None)
    return runs, slots


def _unparsable(raw: str) -> bool:
    try:
        value = json.loads(raw)
    except ValueError:
        return True
    return not isinstance(value, dict)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def result_from_value(call: ToolCall, value: Any, *, limit: int = MAX_RESULT_CHARS) -> ToolResult:
    """A handler's return value as the text the model sees (strings are passed as they are)."""
    if isinstance(value, str):
        content = value
    else:
        try:
            content = json.dumps(value, default=_jsonable, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            return error_result(call, f"the tool returned a value that is not JSON: {exc}")
    if len(content) > limit:
        dropped = len(content) - limit
        content = content[:limit] + f"\n[truncated: {dropped} more characters]"
    return ToolResult(call_id=call.id, name=call.name, content=content)


def result_from_exception(call: ToolCall, exc: BaseException) -> ToolResult:
    """A failed handler as an error result the model can read and react to."""
    detail = str(exc) or type(exc).__name__
    return error_result(call, f"tool {call.name!r} failed: {detail}")
