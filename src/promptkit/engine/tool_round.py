"""The tool round of a turn: what a registered tool is, planning its calls, results as text.

Everything here is pure; handlers are registered by ``promptkit.tools``, and the drivers run
the planned invocations (threads for the sync driver, tasks for the async one) and hand the
outcomes back through :func:`result_from_value` and :func:`result_from_exception`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from promptkit.engine.messages import ToolCall, ToolResult

__all__ = [
    "Invocation",
    "RegisteredTool",
    "RoundPlan",
    "ToolContext",
    "ToolHandler",
    "plan_calls",
    "result_from_exception",
    "result_from_value",
]

ToolHandler = Callable[..., Any]
"""``handler(args)`` or ``handler(args, ctx)``; may be ``async def``; returns anything JSON-able."""

ApprovalCheck = Callable[[dict[str, Any]], "bool | str | None"]
"""``check(args)``: truthy (or a reason string) holds the call for a human decision."""

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


DEFAULT_TOOL_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class RegisteredTool:
    """A handler and how to call it.

    ``named_params`` handlers are called with the arguments as keyword arguments (and get a
    JSON Schema from their signature, used when the pack does not declare the tool);
    the others get the argument dict (and the context as a second argument if they take one).
    """

    fn: ToolHandler
    takes_context: bool
    is_async: bool
    timeout: float | None = DEFAULT_TOOL_TIMEOUT
    named_params: bool = False
    context_param: str | None = None
    schema: Mapping[str, Any] | None = None
    description: str = ""
    approval: ApprovalCheck | bool = False
    client: bool = False

    def needs_approval(self, arguments: Mapping[str, Any]) -> str | None:
        """Why this call must wait for a human decision, or ``None`` to run it now."""
        if self.approval is False:
            return None
        if self.approval is True:
            return "this tool requires approval"
        verdict = self.approval(dict(arguments))
        if not verdict:
            return None
        return verdict if isinstance(verdict, str) else "approval required"

    @classmethod
    def client_side(cls, schema: Mapping[str, Any] | None, description: str
                    ) -> RegisteredTool:
        """A tool the application runs itself: calls suspend the turn."""
        return cls(_client_tool, False, False, None, schema=schema, description=description,
                   client=True)


def _client_tool(*_: Any, **__: Any) -> Any:
    raise RuntimeError("a client-side tool runs in the application, not in promptkit")


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call to run: the handler, the validated arguments and its context."""

    index: int
    call: ToolCall
    tool: RegisteredTool
    context: ToolContext
    arguments: Mapping[str, Any]

    def invoke(self) -> Any:
        """Call the handler; returns its value (a coroutine for ``async def`` handlers)."""
        tool = self.tool
        arguments = dict(self.arguments)
        if tool.named_params:
            if tool.context_param:
                arguments[tool.context_param] = self.context
            return tool.fn(**arguments)
        if tool.takes_context:
            return tool.fn(arguments, self.context)
        return tool.fn(arguments)


def error_result(call: ToolCall, message: str) -> ToolResult:
    return ToolResult(call_id=call.id, name=call.name, content=f"Error: {message}", is_error=True)


REPEAT_LIMIT = 3


@dataclass(slots=True)
class RoundPlan:
    """A round's calls split into invocations to run and results known at once.

    ``slots`` holds, in call order, the error result of each call that will not run and
    ``None`` where an invocation fills the slot; ``repeats`` counts calls refused because
    they repeated an identical earlier call too often.
    """

    runs: list[Invocation]
    slots: list[ToolResult | None]
    repeats: int = 0
    held: list[tuple[ToolCall, Literal["approval", "client"], str]] = field(
        default_factory=list)


def plan_calls(
    calls: Sequence[ToolCall],
    handlers: Mapping[str, RegisteredTool],
    *,
    schemas: Mapping[str, Mapping[str, Any]],
    allowed: Iterable[str] | None,
    blocklist: Iterable[str],
    conversation_id: str,
    deadline: float,
    seen: dict[str, int] | None = None,
    hold: bool = True,
) -> RoundPlan:
    """Check a round's calls (policy, registration, JSON, schema, repeats) and plan them.

    ``schemas`` maps tool names to their parameters schema; ``seen`` counts identical calls
    (same name and arguments) across the turn's rounds and is updated in place. With ``hold``,
    client-side tools and calls needing approval go to ``held`` (their slot stays ``None``).
    """
    from promptkit.engine.arguments import argument_problems, coerce_arguments

    allowed_set = None if allowed is None else set(allowed)
    blocked = set(blocklist)
    plan = RoundPlan([], [])
    for index, call in enumerate(calls):
        problem: str | None = None
        arguments: Mapping[str, Any] = call.arguments
        if call.name in blocked:
            problem = f"tool {call.name!r} is blocked by the prompt's tool policy"
        elif allowed_set is not None and call.name not in allowed_set:
            problem = f"tool {call.name!r} is not available to this prompt"
        elif call.name not in handlers:
            problem = f"tool {call.name!r} is not registered"
        elif call.raw_arguments.strip() and not call.arguments and _unparsable(call.raw_arguments):
            problem = (f"the arguments are not a JSON object: {call.raw_arguments[:200]!r}; "
                       "call the tool again with valid JSON arguments")
        else:
            schema = schemas.get(call.name)
            if schema is not None:
                arguments = coerce_arguments(schema, call.arguments)
                issues = argument_problems(schema, arguments)
                if issues:
                    problem = (f"invalid arguments for {call.name!r}: {'; '.join(issues)}; "
                               "call the tool again with corrected arguments")
        if problem is None and seen is not None:
            key = call.name + json.dumps(arguments, sort_keys=True, default=str)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] >= REPEAT_LIMIT:
                plan.repeats += 1
                problem = (f"repeated call ignored: {call.name!r} was already called "
                           f"{seen[key] - 1} times with these arguments; use the earlier "
                           "results instead of calling it again")
        if problem is not None:
            plan.slots.append(error_result(call, problem))
            continue
        tool = handlers[call.name]
        if hold and tool.client:
            plan.held.append((call, "client", ""))
            plan.slots.append(None)
            continue
        reason = tool.needs_approval(arguments) if hold else None
        if reason is not None:
            plan.held.append((call, "approval", reason))
            plan.slots.append(None)
            continue
        context = ToolContext(conversation_id=conversation_id, call_id=call.id,
                              tool_name=call.name, deadline=deadline)
        plan.runs.append(Invocation(index, call, handlers[call.name], context, arguments))
        plan.slots.append(None)
    return plan


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


def timed_out(run: Invocation) -> ToolResult:
    """The error result of a handler that overran its timeout."""
    return error_result(run.call, f"tool {run.call.name!r} did not finish within "
                                  f"{run.tool.timeout:g} s")


def result_from_exception(call: ToolCall, exc: BaseException) -> ToolResult:
    """A failed handler as an error result the model can read and react to."""
    detail = str(exc) or type(exc).__name__
    return error_result(call, f"tool {call.name!r} failed: {detail}")
