"""Typed events: :class:`Event`, the names a conversation emits, and the hub that calls handlers.

``conv.on(name, handler)`` registers ``handler(event)`` for an exact name, a prefix
(``"tool.call.*"``) or everything (``"*"``). Handlers may be ``async def``: in a thread with a
running event loop (the async driver) they run as tasks on it; elsewhere they run to completion
before the turn goes on. A handler that raises is logged at WARNING on the ``promptkit`` logger
and the turn carries on. Events observe: ``Event`` is frozen and its ``data`` a read-only
mapping of immutable values or copies, so a handler cannot change the turn.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from promptkit.observe import logs

if TYPE_CHECKING:
    import asyncio

__all__ = ["EVENT_NAMES", "Event", "EventHandler", "EventHub"]

EVENT_NAMES: Mapping[str, str] = MappingProxyType({
    "turn.started": "a turn began (after the history loaded)",
    "turn.completed": "a turn ended with its Response",
    "turn.failed": "a turn ended with an error, or was closed or cancelled before its end",
    "provider.call.started": "one model call (one attempt) is being sent",
    "provider.call.completed": "a model call streamed its reply to the end",
    "provider.call.failed": "a model call failed (it may be retried)",
    "provider.call.retried": "a failed model call is retried after a delay",
    "tool.call.started": "a tool handler starts",
    "tool.call.completed": "a tool returned a result",
    "tool.call.failed": "a tool call ended with an error result (handler error, unknown tool, "
                        "invalid arguments, timeout, refusal)",
    "tool.approval.required": "a tool call is held for a human decision",
    "validation.failed": "a guardrail check failed (enforced or monitored)",
    "eval.completed": "an eval scored a turn or a session",
    "context.truncated": "a ContextPolicy left the oldest turns out of what a turn sends",
    "context.summarized": "a ContextPolicy folded the oldest turns into a new summary",
    "conversation.closed": "the conversation was closed",
})

EventHandler = Callable[["Event"], Any]
"""``handler(event)``; may return an awaitable (``async def``)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a conversation.

    ``time`` is the wall-clock time (``time.time()``), ``turn_index`` the 0-based index of the
    turn it belongs to (``None`` outside a turn), ``data`` what the event carries (see
    ``docs/observability.md``), read-only.
    """

    name: str
    time: float
    conversation_id: str
    turn_index: int | None
    data: Mapping[str, Any]


class EventHub:
    """The handlers of one conversation, and the calling of them."""

    __slots__ = ("_by_name", "_patterns", "_tasks")

    def __init__(self, patterns: list[tuple[str, EventHandler]] | None = None) -> None:
        self._patterns: list[tuple[str, EventHandler]] = list(patterns or ())
        self._by_name: dict[str, tuple[EventHandler, ...]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._index()

    def on(self, name: str, handler: EventHandler) -> None:
        """Call ``handler(event)`` for events named ``name`` (exact, ``"prefix.*"`` or ``"*"``).

        Raises ValueError for a name that matches no event (listing the names) and TypeError
        for a handler that is not callable.
        """
        if not isinstance(name, str) or not _matches_any(name):
            known = ", ".join(EVENT_NAMES)
            raise ValueError(f"unknown event name {name!r}; the events are: {known} "
                             "(or a prefix such as 'tool.call.*', or '*' for all)")
        if not callable(handler):
            raise TypeError(f"an event handler must be callable, not {type(handler).__name__}")
        self._patterns.append((name, handler))
        self._index()

    def copy(self) -> EventHub:
        """A hub with the same handlers (for ``fork()``)."""
        return EventHub(self._patterns)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def wants(self, name: str) -> bool:
        """Whether any handler listens for ``name`` (so the event's data is worth building)."""
        return name in self._by_name

    def emit(self, name: str, conversation_id: str, turn_index: int | None,
             data: dict[str, Any]) -> None:
        """Call every handler of ``name`` with a fresh :class:`Event`; never raises."""
        handlers = self._by_name.get(name)
        if not handlers:
            return
        event = Event(name, time.time(), conversation_id, turn_index, MappingProxyType(data))
        for handler in handlers:
            try:
                outcome = handler(event)
                if inspect.isawaitable(outcome):
                    self._await(handler, event, outcome)
            except Exception as exc:
                logs.handler_failed(handler, event.name, exc)

    def _await(self, handler: EventHandler, event: Event, awaitable: Any) -> None:
        import asyncio  # only once an async handler is called

        coroutine = _guarded(handler, event.name, awaitable)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread (the sync driver): run it now
            asyncio.run(coroutine)
            return
        task = loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the async handlers still running (``aclose()`` does)."""
        import asyncio

        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _index(self) -> None:
        self._by_name = {}
        for event_name in EVENT_NAMES:
            matched = tuple(h for pattern, h in self._patterns if _match(pattern, event_name))
            if matched:
                self._by_name[event_name] = matched


async def _guarded(handler: EventHandler, name: str, awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        logs.handler_failed(handler, name, exc)


def _match(pattern: str, name: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _matches_any(pattern: str) -> bool:
    return any(_match(pattern, name) for name in EVENT_NAMES)


