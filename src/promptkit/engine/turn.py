"""The turn engine: one user turn, including the tool loop, as a sans-I/O generator.

``run_turn`` yields what it needs and receives the outcome::

    CallModel(request)  -> RoundOutcome      stream one model call (the driver yields its TEXT
                                              chunks to the caller as they arrive)
    Backoff(seconds)    -> None              wait before retrying a model call
    RunTools(runs)      -> list[ToolResult]  run handlers, results in the same order
    Emit(chunk)         -> None              hand a TOOL_CALL / TOOL_RESULT chunk to the caller
    Commit(messages)    -> None              append the turn's messages to the store
    RunChecks(checks)   -> list[value]       run async guardrail checks (engine.guardrails)

and returns the turn's :class:`Response`. It raises a :class:`PromptKitError` when the turn
fails; nothing is committed then.

Guardrails (``TurnPlan.guardrails``, compiled by ``promptkit.checks``) run here too: input
checks before the first model call (a blocked message is neither sent nor committed), an
:class:`OutputGuard` on each model call's TEXT chunks (``CallModel.guard``: the driver feeds
the chunks through it and stops reading when it trips), and whole-answer checks at the end.
A blocked turn ends with a VALIDATION chunk and a Response with ``finish_reason "safety"``.

The drivers in ``conversation/sync_driver.py`` and ``conversation/async_driver.py`` run it,
one with blocking I/O and one with asyncio.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from promptkit._errors import PromptKitError, ToolLoopLimitError
from promptkit.engine.chunks import ChunkType, Response, StreamChunk, text_chunk
from promptkit.engine.dialect import ModelRequest, RoundResult, ToolDefinition, WireMemo
from promptkit.engine.guardrails import (
    Guardrail,
    OutputGuard,
    RunChecks,
    blocked_result,
    first_blocked,
    output_guard,
    run_checks,
    split_guardrails,
)
from promptkit.engine.held import (
    PendingToolCall,
    PendingToolError,
    held_marker,
    pending_calls,
    resolved_result,
)
from promptkit.engine.messages import Message, ToolCall, ToolResult, Usage
from promptkit.engine.observer import TurnObserver
from promptkit.engine.output import OutputSpec
from promptkit.engine.pricing import cost_of
from promptkit.engine.retry import RetryPolicy
from promptkit.engine.tool_round import Invocation, RegisteredTool, RoundPlan, plan_calls
from promptkit.engine.validation import ValidationResult

__all__ = [
    "Backoff",
    "CallModel",
    "Commit",
    "Emit",
    "ResumeItem",
    "RoundOutcome",
    "RunChecks",
    "RunTools",
    "TurnPlan",
    "run_turn",
]

_NO_USAGE = Usage()  # frozen: the zero every turn starts from


@dataclass(frozen=True, slots=True)
class CallModel:
    request: ModelRequest
    #: pass the call's decoded chunks through ``guard.feed``; stop once it trips
    guard: OutputGuard | None = None


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


Action = CallModel | Backoff | RunTools | Emit | Commit | RunChecks


# Not frozen (built per model call; a frozen init costs ~0.2 µs a field); never changed.
@dataclass(slots=True, kw_only=True)
class RoundOutcome:
    """How one model call ended: a result, or an error and whether chunks were delivered."""

    result: RoundResult | None = None
    error: PromptKitError | None = None
    delivered: bool = False
    first_content_at: float | None = None
    # for observers (logs, traces): the reply's HTTP status and headers, and when they
    # arrived (time.monotonic())
    status: int | None = None
    headers: Mapping[str, str] | None = None
    headers_at: float | None = None
    #: the call's OutputGuard tripped and the driver stopped reading
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class ResumeItem:
    """A held call being resumed: its decided result, or ``None`` to run it (approved)."""

    call: ToolCall
    result: ToolResult | None


# Not frozen: one is built per turn and a frozen init costs ~0.2 µs a field; never changed
# after it is built (dataclasses.replace makes variants).
@dataclass(slots=True, kw_only=True)
class TurnPlan:
    """Everything a turn needs, prepared by the conversation before any I/O."""

    conversation_id: str
    provider: str
    model: str
    system: str
    user_message: Message | None
    tools: tuple[ToolDefinition, ...] = ()
    handlers: Mapping[str, RegisteredTool] = field(default_factory=dict)
    allowed_tools: frozenset[str] | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tool_choice: str | None = None
    response_format: Mapping[str, Any] | None = None
    output: OutputSpec | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    #: the conversation's memo of converted history messages (``dialect.WireMemo``)
    memo: WireMemo | None = None
    max_rounds: int = 5
    max_tool_calls: int = 10
    blocklist: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deadline: float = float("inf")
    started: float = 0.0
    observer: TurnObserver | None = None
    """Told of each step (``engine/observer.py``); ``None`` when nobody watches."""
    #: compiled validators (``promptkit.checks``), run on the user message and the answer
    guardrails: tuple[Guardrail, ...] = ()
    #: ``fit(history, added)``: the history to send on a tool round, once the turn's own
    #: messages ``added`` have grown (a ContextPolicy, ``engine/context.py``); None: all of it
    context_fit: Callable[[tuple[Message, ...], tuple[Message, ...]],
                          tuple[Message, ...]] | None = None


def run_turn(plan: TurnPlan, history: tuple[Message, ...],
             resume: tuple[ResumeItem, ...] = ()) -> Generator[Action, Any, Response]:
    """Run one turn after ``history`` (the committed messages providers see); ``resume``
    holds the decided calls of a held turn being continued. See the module docstring for the
    protocol."""
    added: list[Message] = [] if plan.user_message is None else [plan.user_message]
    state = _TurnState(plan)
    result: RoundResult | None = None
    guard: OutputGuard | None = None
    if plan.guardrails:
        inputs, outputs = split_guardrails(plan.guardrails)
        if inputs and plan.user_message is not None:
            checked = yield from run_checks(inputs, plan.user_message.text, "input")
            _record(plan, state, checked)
            blocked = first_blocked(checked)
            if blocked is not None:  # neither sent nor stored
                yield Emit(StreamChunk(type=ChunkType.VALIDATION, validation=blocked))
                return _safety_response(plan, state, blocked, ())
        guard = output_guard(outputs)
    if resume:  # a held turn continues: the decided calls' results come first
        yield from _resume_calls(resume, plan, state, added)
    while True:
        if plan.context_fit is not None and (state.tool_rounds or resume):
            history = plan.context_fit(history, tuple(added))
        request = ModelRequest(
            model=plan.model, system=plan.system, messages=history + tuple(added),
            tools=plan.tools, parameters=plan.parameters,
            tool_choice=_tool_choice(plan, first_call=not resume and state.tool_rounds == 0),
            response_format=plan.response_format,
            extra_headers=plan.extra_headers, extra_body=plan.extra_body, memo=plan.memo,
        )
        outcome = yield from _call_with_retries(request, plan.retry, plan.observer, guard)
        if state.first_content_at is None:
            state.first_content_at = outcome.first_content_at
        if outcome.blocked:
            assert guard is not None
            return (yield from _block(plan, state, blocked_result(guard), added))
        assert outcome.result is not None
        result = outcome.result
        state.usage = state.usage + result.usage
        message = result.message
        round_calls = message.tool_calls
        added.append(message)
        if not round_calls:
            break
        state.tool_rounds += 1
        if state.tool_rounds > plan.max_rounds:
            raise ToolLoopLimitError(
                f"the model kept calling tools after {plan.max_rounds} round(s) "
                "(tool_policy.max_rounds)")
        if len(state.calls) + len(round_calls) > plan.max_tool_calls:
            raise ToolLoopLimitError(
                f"the model asked for more than {plan.max_tool_calls} tool calls in one turn "
                "(tool_policy.max_tool_calls_per_turn)")
        state.calls += tuple(round_calls)
        if state.seen is None:
            state.seen = {}
        for call in round_calls:
            yield Emit(StreamChunk(type=ChunkType.TOOL_CALL, tool_call=call))
        round_plan = plan_calls(
            round_calls, plan.handlers, schemas=state.schemas, allowed=plan.allowed_tools,
            blocklist=plan.blocklist, conversation_id=plan.conversation_id,
            deadline=plan.deadline, seen=state.seen)
        if round_plan.repeats:
            state.repeat_rounds += 1
            if state.repeat_rounds > 1:
                raise ToolLoopLimitError(
                    "the model kept repeating identical tool calls after being told to stop")
        if round_plan.held:  # mark the message before its results follow it
            added[-1] = replace(message, extra={**message.extra,
                                                **held_marker(round_plan.held)})
        yield from _run_and_record(round_plan, state, added)
        if round_plan.held:
            for call, kind, reason in round_plan.held:
                if kind == "approval" and plan.observer is not None:
                    plan.observer.approval_required(call, reason)
                chunk_type = ChunkType.APPROVAL_REQUIRED if kind == "approval" \
                    else ChunkType.CLIENT_TOOL
                yield Emit(StreamChunk(type=chunk_type, tool_call=call, text=reason))
            state.pending = tuple(
                PendingToolCall(call_id=call.id, name=call.name, arguments=call.arguments,
                                kind=kind, reason=reason)
                for call, kind, reason in round_plan.held)
            break

    assert result is not None
    final = added[-1] if added[-1].role == "assistant" else result.message
    before_final = added[:-1] if added[-1].role == "assistant" else added
    if guard is not None:
        tail = guard.finish()
        if tail is None:
            return (yield from _block(plan, state, blocked_result(guard), before_final))
        if tail:
            yield Emit(text_chunk(tail))
    if plan.guardrails and not state.pending:
        outputs = split_guardrails(plan.guardrails)[1]
        checked = yield from run_checks(outputs, final.text, "output",
                                        passed=() if guard is None else guard.guardrails)
        blocked = first_blocked(checked)
        _record(plan, state, [r for r in checked if r is not blocked])
        if blocked is not None:  # _block records it, last
            return (yield from _block(plan, state, blocked, before_final))
    model = result.model or plan.model
    parsed = None
    if plan.output is not None and not state.pending:  # before the commit: a failure keeps none
        parsed = plan.output.parse(final.text, result.finish_reason)
    turn_messages = tuple(added)
    yield Commit(turn_messages)
    now = time.monotonic()
    return Response(
        text=final.text,
        message=final,
        usage=state.usage,
        # no token counts at all: the server reported no usage, so the cost is unknown too
        cost=cost_of(model, state.usage) if state.usage.total_tokens else None,
        finish_reason=result.finish_reason,
        tool_calls=state.calls,
        tool_results=state.results,
        duration=now - plan.started,
        time_to_first_token=None if state.first_content_at is None
        else state.first_content_at - plan.started,
        model=model,
        provider=plan.provider,
        messages=turn_messages,
        pending_tools=state.pending,
        parsed=parsed,
        validations=state.validations,
    )


def _record(plan: TurnPlan, state: _TurnState, results: Sequence[ValidationResult]) -> None:
    """Keep guardrail results for the Response; tell the observer of each failure (the one
    place ``validation.failed`` comes from)."""
    state.validations += tuple(results)
    observer = plan.observer
    if observer is not None:
        for result in results:
            if not result.passed:
                observer.validation_failed(result)


def _block(plan: TurnPlan, state: _TurnState, blocked: ValidationResult,
           kept: list[Message]) -> Generator[Action, Any, Response]:
    """End the turn with a guardrail block: the VALIDATION chunk, then history gets ``kept``
    (the user message and any tool rounds) and the replacement answer, never the violation."""
    yield Emit(StreamChunk(type=ChunkType.VALIDATION, validation=blocked))
    _record(plan, state, (blocked,))
    replacement = Message(role="assistant", text=blocked.message, finish_reason="safety")
    turn_messages = (*kept, replacement)
    yield Commit(turn_messages)
    return _safety_response(plan, state, blocked, turn_messages)


def _safety_response(plan: TurnPlan, state: _TurnState, blocked: ValidationResult,
                     turn_messages: tuple[Message, ...]) -> Response:
    message = turn_messages[-1] if turn_messages else Message(
        role="assistant", text=blocked.message, finish_reason="safety")
    return Response(
        text=blocked.message, message=message, usage=state.usage,
        cost=cost_of(plan.model, state.usage), finish_reason="safety",
        tool_calls=state.calls, tool_results=state.results,
        duration=time.monotonic() - plan.started,
        time_to_first_token=None if state.first_content_at is None
        else state.first_content_at - plan.started,
        model=plan.model, provider=plan.provider, messages=turn_messages,
        validations=state.validations)


@dataclass(slots=True)
class _TurnState:
    """What a turn accumulates across its rounds."""

    plan: TurnPlan
    # tuples and a dict made on first use: a plain turn allocates none of them (every object
    # alive during a stream is work for the garbage collector at high concurrency)
    usage: Usage = _NO_USAGE
    calls: tuple[ToolCall, ...] = ()
    results: tuple[ToolResult, ...] = ()
    first_content_at: float | None = None
    tool_rounds: int = 0
    repeat_rounds: int = 0
    seen: dict[str, int] | None = None
    pending: tuple[PendingToolCall, ...] = ()
    validations: tuple[ValidationResult, ...] = ()

    @property
    def schemas(self) -> dict[str, Mapping[str, Any]]:
        return {tool.name: tool.parameters for tool in self.plan.tools}


def _run_and_record(round_plan: RoundPlan, state: _TurnState, added: list[Message]
                    ) -> Generator[Action, Any, None]:
    """Run a round's invocations, then record and emit every result in call order."""
    slots = round_plan.slots
    observer = state.plan.observer
    if round_plan.runs:
        if observer is not None:
            for run in round_plan.runs:
                observer.tool_started(run.call)
        ran: Sequence[ToolResult] = yield RunTools(round_plan.runs)
        for run, tool_result in zip(round_plan.runs, ran, strict=True):
            slots[run.index] = tool_result
    for slot in slots:
        if slot is None:  # a held call: its result comes with resume()
            continue
        if observer is not None:
            observer.tool_ended(slot)
        state.results += (slot,)
        added.append(Message(role="tool", tool_result=slot))
        yield Emit(StreamChunk(type=ChunkType.TOOL_RESULT, tool_result=slot))


def _resume_calls(resume: tuple[ResumeItem, ...], plan: TurnPlan, state: _TurnState,
                  added: list[Message]) -> Generator[Action, Any, None]:
    """Turn the decisions on held calls into tool results (running the approved ones)."""
    to_run = [item.call for item in resume if item.result is None]
    round_plan = plan_calls(
        to_run, plan.handlers, schemas=state.schemas, allowed=plan.allowed_tools,
        blocklist=plan.blocklist, conversation_id=plan.conversation_id,
        deadline=plan.deadline, hold=False)
    decided = iter(round_plan.slots)
    slots: list[ToolResult | None] = []
    runs = []
    for item in resume:
        if item.result is not None:
            slots.append(item.result)
            continue
        slot = next(decided)
        if slot is None:
            run = next(r for r in round_plan.runs if r.call is item.call)
            runs.append(replace(run, index=len(slots)))
        slots.append(slot)
    state.calls += tuple(item.call for item in resume)
    yield from _run_and_record(RoundPlan(runs, slots), state, added)


def _tool_choice(plan: TurnPlan, *, first_call: bool) -> str | None:
    """The pack's ``tool_choice`` for this model call.

    ``"none"`` holds for the whole turn; forcing a call (``"required"`` or a tool name) applies
    to the turn's first model call only, so the model can answer once it has the tools'
    results (a resumed turn's first call already follows results: it is not forced).
    """
    choice = plan.tool_choice if plan.tools else None
    if choice is not None and choice != "none" and not first_call:
        return None
    return choice


def _call_with_retries(
    request: ModelRequest, policy: RetryPolicy, observer: TurnObserver | None = None,
    guard: OutputGuard | None = None,
) -> Generator[Action, Any, RoundOutcome]:
    attempt = 0
    while True:
        if observer is not None:
            observer.call_started(request, attempt)
        outcome: RoundOutcome = yield CallModel(request, guard)
        if observer is not None:
            observer.call_ended(request, attempt, outcome)
        if outcome.error is None:
            return outcome
        delay = None if outcome.delivered else policy.delay(attempt, outcome.error)
        if delay is None:
            raise outcome.error
        if observer is not None:
            observer.call_retried(attempt, outcome.error, delay)
        attempt += 1
        yield Backoff(delay)


def resume_items(history: Sequence[Message]) -> tuple[ResumeItem, ...]:
    """What ``resume()`` feeds the engine: every held call of the last turn with its decision.

    Raises :class:`PendingToolError` when nothing is held or a held call is still undecided.
    """
    pending, decisions = pending_calls(history)
    if not pending:
        raise PendingToolError("nothing to resume: the conversation holds no tool calls")
    undecided = [p.call_id for p in pending if p.decision is None]
    if undecided:
        raise PendingToolError(f"still waiting on held tool call(s): {', '.join(undecided)}")
    items = []
    for held in pending:
        decision = decisions[held.call_id]
        arguments = {**held.arguments, **dict(decision.get("arguments") or {})}
        call = ToolCall(id=held.call_id, name=held.name, arguments=arguments,
                        raw_arguments=json.dumps(arguments))
        items.append(ResumeItem(call, resolved_result(held, decision)))
    return tuple(items)
