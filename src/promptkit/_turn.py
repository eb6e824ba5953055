"""The turn engine: one user turn, including the tool loop, as a sans-I/O generator.

``run_turn`` yields what it needs and receives the outcome::

    CallModel(request)  -> RoundOutcome      stream one model call (the driver yields its TEXT
                                              chunks to the caller as they arrive)
    Backoff(seconds)    -> None              wait before retrying a model call
    RunTools(runs)      -> list[ToolResult]  run handlers, results in the same order
    Emit(chunk)         -> None              hand a TOOL_CALL / TOOL_RESULT chunk to the caller
    Commit(messages)    -> None              append the turn's messages to the store

and returns the turn's :class:`Response`. It raises a :class:`PromptKitError` when the turn
fails; nothing is committed then. The drivers in ``_conversation.py`` and
``_async_conversation.py`` run it, one with blocking I/O and one with asyncio.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._chunks import ChunkType, Response, StreamChunk
from ._errors import PromptKitError, ToolLoopLimitError
from ._messages import Message, ToolCall, ToolResult, Usage
from ._pricing import cost_of
from ._retry import RetryPolicy
from ._tools import Invocation, RegisteredTool, plan_calls
from .providers._base import ModelRequest, RoundResult, ToolDefinition

__all__ = [
    "Backoff",
    "CallModel",
    "Commit",
    "Emit",
    "RoundOutcome",
    "RunTools",
    "TurnPlan",
    "run_turn",
]


@dataclass(frozen=True, slots=True)
class CallModel:
    request: ModelRequest


@dataclass(frozen=True, slots=True)
class Backoff:
    seconds: float


@dataclass(frozen=True, slots=True)
class RunTools:
    runs: Sequence[Invocation]


@dataclass(frozen=True, slots=True)
class Emit:
    chunk: StreamChunk


@dataclass(frozen=True, slots=True)
class Commit:
    messages: tuple[Message, ...]


Action = CallModel | Backoff | RunTools | Emit | Commit


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundOutcome:
    """How one model call ended: a result, or an error and whether chunks were delivered."""

    result: RoundResult | None = None
    error: PromptKitError | None = None
    delivered: bool = False
    first_content_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnPlan:
    """Everything a turn needs, prepared by the conversation before any I/O."""

    conversation_id: str
    provider: str
    model: str
    system: str
    history: tuple[Message, ...]
    user_message: Message
    tools: tuple[ToolDefinition, ...] = ()
    handlers: Mapping[str, RegisteredTool] = field(default_factory=dict)
    allowed_tools: frozenset[str] | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tool_choice: str | None = None
    max_rounds: int = 5
    max_tool_calls: int = 10
    blocklist: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deadline: float = float("inf")
    started: float = 0.0


def run_turn(plan: TurnPlan) -> Generator[Action, Any, Response]:
    """Run one turn; see the module docstring for the protocol."""
    added: list[Message] = [plan.user_message]
    usage = Usage()
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    first_content_at: float | None = None
    tool_rounds = 0
    repeat_rounds = 0
    seen: dict[str, int] = {}
    schemas = {tool.name: tool.parameters for tool in plan.tools}
    while True:
        request = ModelRequest(
            model=plan.model, system=plan.system, messages=plan.history + tuple(added),
            tools=plan.tools, parameters=plan.parameters,
            tool_choice=_tool_choice(plan, tool_rounds),
        )
        outcome = yield from _call_with_retries(request, plan.retry)
        if first_content_at is None:
            first_content_at = outcome.first_content_at
        assert outcome.result is not None
        result = outcome.result
        usage = usage + result.usage
        message = result.message
        round_calls = message.tool_calls
        added.append(message)
        if not round_calls:
            break
        tool_rounds += 1
        if tool_rounds > plan.max_rounds:
            raise ToolLoopLimitError(
                f"the model kept calling tools after {plan.max_rounds} round(s) "
                "(tool_policy.max_rounds)")
        if len(calls) + len(round_calls) > plan.max_tool_calls:
            raise ToolLoopLimitError(
                f"the model asked for more than {plan.max_tool_calls} tool calls in one turn "
                "(tool_policy.max_tool_calls_per_turn)")
        calls.extend(round_calls)
        for call in round_calls:
            yield Emit(StreamChunk(type=ChunkType.TOOL_CALL, tool_call=call))
        round_plan = plan_calls(
            round_calls, plan.handlers, schemas=schemas, allowed=plan.allowed_tools,
            blocklist=plan.blocklist, conversation_id=plan.conversation_id,
            deadline=plan.deadline, seen=seen)
        if round_plan.repeats:
            repeat_rounds += 1
            if repeat_rounds > 1:
                raise ToolLoopLimitError(
                    "the model kept repeating identical tool calls after being told to stop")
        slots = round_plan.slots
        if round_plan.runs:
            ran: Sequence[ToolResult] = yield RunTools(round_plan.runs)
            for run, tool_result in zip(round_plan.runs, ran, strict=True):
                slots[run.index] = tool_result
        for slot in slots:
            assert slot is not None
            results.append(slot)
            added.append(Message(role="tool", tool_result=slot))
            yield Emit(StreamChunk(type=ChunkType.TOOL_RESULT, tool_result=slot))

    final = added[-1]
    model = result.model or plan.model
    turn_messages = tuple(added)
    yield Commit(turn_messages)
    now = time.monotonic()
    return Response(
        text=final.text,
        message=final,
        usage=usage,
        cost=cost_of(model, usage),
        finish_reason=result.finish_reason,
        tool_calls=tuple(calls),
        tool_results=tuple(results),
        duration=now - plan.started,
        time_to_first_token=None if first_content_at is None else first_content_at - plan.started,
        model=model,
        provider=plan.provider,
        messages=turn_messages,
    )


def _tool_choice(plan: TurnPlan, tool_rounds: int) -> str | None:
    """The pack's ``tool_choice`` for this round.

    ``"none"`` holds for the whole turn; forcing a call (``"required"`` or a tool name) applies
    to the first round only, so the model can answer once it has the tools' results.
    """
    choice = plan.tool_choice if plan.tools else None
    if choice is not None and choice != "none" and tool_rounds > 0:
        return None
    return choice


def _call_with_retries(
    request: ModelRequest, policy: RetryPolicy
) -> Generator[Action, Any, RoundOutcome]:
    attempt = 0
    while True:
        outcome: RoundOutcome = yield CallModel(request)
        if outcome.error is None:
            return outcome
        delay = None if outcome.delivered else policy.delay(attempt, outcome.error)
        if delay is None:
            raise outcome.error
        attempt += 1
        yield Backoff(delay)
