"""The hook through which a turn's steps are observed (events, logs, traces), defined here so
the engine stays pure and knows nothing of who watches.

A :class:`TurnPlan` may carry a :class:`TurnObserver`; ``run_turn`` then reports each step
exactly once, for both drivers, at the point where the engine learns its outcome: a model call
started and ended (and retried), a round's tool calls started and ended, a call held for
approval. The turn's own start and end are reported by the driver-shared ``TurnRun``
(``conversation/stream.py``), which alone sees every way a turn can end. With no observer the
engine does one ``is None`` test per step, nothing per chunk.

Observers must not raise (``promptkit.observe`` guards every handler and exporter) and get only
immutable values (frozen dataclasses), so they cannot change the turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from promptkit._errors import PromptKitError
from promptkit.engine.chunks import Response
from promptkit.engine.dialect import ModelRequest, RoundResult
from promptkit.engine.messages import ToolCall, ToolResult
from promptkit.engine.validation import ValidationResult

__all__ = ["CallOutcome", "TurnObserver"]


class CallOutcome(Protocol):
    """What an observer learns about one finished model call (``engine.turn.RoundOutcome``)."""

    @property
    def result(self) -> RoundResult | None: ...

    @property
    def error(self) -> PromptKitError | None: ...

    @property
    def first_content_at(self) -> float | None:
        """``time.monotonic()`` when the first content event arrived."""
        ...

    @property
    def status(self) -> int | None:
        """The HTTP status of the reply, when one arrived."""
        ...

    @property
    def headers(self) -> Mapping[str, str] | None:
        """The reply's headers (names lower-cased), when one arrived."""
        ...

    @property
    def headers_at(self) -> float | None:
        """``time.monotonic()`` when the status line and headers arrived (first byte)."""
        ...


class TurnObserver(Protocol):
    """Receives a turn's steps. Every method must return quickly and never raise."""

    def turn_started(self, history_turns: int) -> None:
        """The turn began; ``history_turns`` user turns precede it in the history."""
        ...

    def turn_ended(self, response: Response | None, error: BaseException | None) -> None:
        """The turn is over: completed (``response``), failed (``error``), or neither when it
        was closed or cancelled before finishing. Called exactly once, whatever happened."""
        ...

    def call_started(self, request: ModelRequest, attempt: int) -> None:
        """A model call (``attempt`` 0, 1, ... for retries) is about to be sent."""
        ...

    def call_ended(self, request: ModelRequest, attempt: int, outcome: CallOutcome) -> None:
        """A model call ended: a result, or an error (retried or not)."""
        ...

    def call_retried(self, attempt: int, error: PromptKitError, delay: float) -> None:
        """Call ``attempt`` failed with a retryable ``error``; the next one follows in
        ``delay`` seconds."""
        ...

    def tool_started(self, call: ToolCall) -> None:
        """The model's ``call`` is about to run (or be refused with an error result)."""
        ...

    def tool_ended(self, result: ToolResult) -> None:
        """A call's ``result`` (``is_error`` for failures). A call refused before running (an
        unknown tool, invalid arguments) gets this without :meth:`tool_started`."""
        ...

    def approval_required(self, call: ToolCall, reason: str) -> None:
        """``call`` is held for a human decision."""
        ...

    def validation_failed(self, result: ValidationResult) -> None:
        """A guardrail failed (enforced or monitored) on the user message or the answer."""
        ...
