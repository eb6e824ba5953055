"""What the sync and async streams share: the state of one running turn, and its façade.

A stream is two objects on purpose. The *turn* (a ``TurnRun`` subclass in each driver) owns the
generator that runs the engine; the *stream* the user holds owns the turn and that generator.
The generator references only the turn, never the stream, so there is no reference cycle.

The turn takes the conversation (its turn lock) only when it starts: at the first iteration
or on entering ``with``; ``stream()`` itself only checks that it could start, so a stream made
and never iterated holds nothing. A started turn lets go when it ends, when the stream is
closed, or when it is dropped: a weak reference with a callback releases the conversation for
the next turn immediately. The sync driver watches the generator (``for chunk in
conv.stream(...): break`` drops it at once, and its ``finally`` closes the HTTP response);
the async driver watches the stream object, because an abandoned async generator is closed
later, in a task the event loop schedules for it. Nothing of an abandoned turn is committed.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from promptkit._errors import (
    APIConnectionError,
    PromptKitError,
    StreamInterruptedError,
    TurnTimeout,
)
from promptkit.engine.chunks import ChunkType, Response, StreamChunk
from promptkit.engine.held import PendingToolError, pending_calls
from promptkit.engine.messages import Message
from promptkit.engine.turn import ResumeItem, TurnPlan, resume_items, run_turn

if TYPE_CHECKING:
    from promptkit.conversation.core import ConversationCore
    from promptkit.conversation.fitting import Fold
    from promptkit.conversation.kept import TurnHistory
    from promptkit.engine.dialect import RoundDecoder

__all__ = ["StreamFacade", "TurnRun"]


class TurnRun:
    """The state of one turn: its plan, the store version it started from, and its outcome."""

    __slots__ = ("_closing", "_released", "_started", "_watch", "conversation", "error",
                 "estimate", "fold", "history", "loaded", "plan", "response", "resume",
                 "version")

    def __init__(self, conversation: ConversationCore, plan: TurnPlan) -> None:
        self.conversation = conversation
        self.plan = plan
        self.history: tuple[Message, ...] = ()
        self.loaded: TurnHistory | None = None
        self.resume: tuple[ResumeItem, ...] = ()
        self.version = 0
        self.response: Response | None = None
        self.error: PromptKitError | None = None
        self._started = False
        self._released = False
        self._closing = False
        self.estimate = 0  # the estimated tokens sent, when a ContextPolicy applies
        self.fold: Fold | None = None  # a summary to make before sending (ContextPolicy)

    def start(self) -> None:
        """Take the conversation for this turn (idempotent); raises ConversationBusyError or
        ConversationClosedError if it cannot be taken now."""
        if self._started:
            return
        if self._released:
            raise RuntimeError("this stream was closed before its turn started")
        self.conversation._begin_turn()
        self._started = True

    def closing(self) -> None:
        """The stream is being closed by its user (its state then reads ``closed``)."""
        self._closing = True

    def release(self) -> None:
        """Let the conversation start its next turn (idempotent; a turn that never started
        holds nothing, and may not start afterwards). A started turn is over then: its
        observer hears how it ended (``sys.exc_info()``: the close or cancellation under way)."""
        if not self._released:
            self._released = True
            if self._started:
                observer = self.plan.observer
                if observer is not None:
                    observer.turn_ended(self.response, self.error or sys.exc_info()[1])
                self.conversation._end_turn()

    @property
    def state(self) -> str:
        """``"not started"``, ``"streaming"``, ``"done"``, ``"failed"`` or ``"closed"``."""
        if self.response is not None:
            return "done"
        if self.error is not None:
            return "failed"
        if self._released or self._closing:
            return "closed"
        return "streaming" if self._started else "not started"

    def watch(self, generator: Any) -> None:
        """Release the conversation the moment ``generator`` is dropped (module docstring)."""
        # A plain weak reference is far cheaper than weakref.finalize; it lives on the turn,
        # and CPython drops its callback (so the turn's reference) once it has fired.
        self._watch = weakref.ref(generator, self._generator_gone)

    def _generator_gone(self, _ref: Any) -> None:
        self.release()

    def final_chunk(self) -> StreamChunk | None:
        """The DONE or ERROR chunk that ends the stream, once the turn is over."""
        if self.error is not None:
            return StreamChunk(type=ChunkType.ERROR, error=self.error)
        if self.response is not None:
            # the turn is committed: its evals start now, in the background
            self.conversation._turn_completed(self.history, self.response)
            if self.conversation._context is not None:
                self.conversation._context.observed(self, self.response)
            return StreamChunk(type=ChunkType.DONE, response=self.response)
        return None

    def outcome(self) -> Response:
        """The Response of a drained stream, or the turn's error raised."""
        if self.error is not None:
            raise self.error
        if self.response is None:
            raise RuntimeError("the stream was closed before the turn finished")
        return self.response

    def prepare(self, loaded: TurnHistory) -> None:
        """Complete the plan with the loaded history: a new turn must find nothing held; a
        resumed one takes the decisions on the held calls."""
        self.loaded = loaded
        self.version = loaded.version
        history = loaded.messages
        if self.plan.observer is not None:
            self.plan.observer.turn_started(loaded.user_turns)
        if self.plan.user_message is None:
            self.history = loaded.visible
            self.resume = resume_items(history)
            self._fit_context()
            return
        held, _ = pending_calls(history)
        if held:
            ids = ", ".join(p.call_id for p in held)
            raise PendingToolError(
                f"the last turn is waiting on held tool call(s) {ids}: decide them "
                "(approve/reject, send_tool_result/reject_client_tool) and call resume()")
        self.history = loaded.visible
        self._fit_context()

    def _fit_context(self) -> None:
        """Trim what is sent to the conversation's ContextPolicy (stored history unchanged)."""
        keeper = self.conversation._context
        if keeper is not None:
            self.fold = keeper.fit(self)

    def committed(self, messages: tuple[Message, ...], version: Any) -> None:
        """Record a commit: the conversation keeps its history extended by the turn."""
        if self.loaded is not None:
            kept = self.conversation._committed(self.loaded, messages, version)
            if kept is not None:
                self.loaded, self.version = kept, kept.version

    def engine(self) -> Generator[Any, Any, Response]:
        """The turn engine for the prepared history (``promptkit.engine.turn.run_turn``)."""
        return run_turn(self.plan, self.history, self.resume)

    def backoff_allowed(self, seconds: float) -> None:
        """Raise TurnTimeout if waiting ``seconds`` would pass the turn's deadline."""
        if seconds >= self.plan.deadline - time.monotonic():
            raise TurnTimeout("the turn passed its deadline while waiting to retry")

    def time_left_for_tools(self) -> float:
        """Seconds left for a round of tools (``inf`` without a deadline); raise if none."""
        remaining = self.plan.deadline - time.monotonic()
        if remaining <= 0:
            raise TurnTimeout("the turn passed its deadline before its tools ran")
        return remaining


def connection_error(exc: APIConnectionError, decoder: RoundDecoder | None) -> PromptKitError:
    """A dropped connection: interrupted if content had arrived, else (retryable) as it is."""
    if decoder is not None and decoder.events:
        return StreamInterruptedError(f"the connection dropped mid-stream: {exc}",
                                      partial_text=decoder.partial_text)
    return exc


class StreamFacade:
    """The read-only part of both stream classes."""

    _turn: TurnRun

    def _attach(self, turn: TurnRun, chunks: Any) -> None:
        self._turn = turn
        self._chunks = chunks
        turn.watch(chunks)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(conversation_id={self._turn.plan.conversation_id!r}, "
                f"state={self._turn.state!r})")

    @property
    def state(self) -> str:
        """``"not started"`` (not iterated yet), ``"streaming"``, ``"done"``, ``"failed"`` or
        ``"closed"`` (closed or dropped before the turn finished)."""
        return self._turn.state

    @property
    def response(self) -> Response | None:
        """The turn's :class:`Response` once DONE was delivered, else ``None``."""
        return self._turn.response

    @property
    def error(self) -> PromptKitError | None:
        """The error delivered in the ERROR chunk, if the turn failed."""
        return self._turn.error
