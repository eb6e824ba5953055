"""The observer of a conversation's turns: the engine reports each step once, here, and it is
fanned out to the event handlers, the log lines and the OpenTelemetry spans and metrics.

:class:`ConversationWatch` belongs to one conversation (its handlers and telemetry options);
:meth:`ConversationWatch.turn` makes the :class:`TurnWatch` a :class:`TurnPlan` carries, or
``None`` when nobody listens, no telemetry is configured and the ``promptkit.providers`` logger
is quiet: an unobserved turn then costs an ``is None`` test per step and nothing per chunk.
Every handler call and every telemetry call is guarded: nothing here breaks a turn.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from promptkit._errors import APIStatusError, PromptKitError
from promptkit._redact import redact
from promptkit.engine.pricing import cost_of
from promptkit.observe import logs
from promptkit.observe import semconv as sc
from promptkit.observe.events import EventHandler, EventHub
from promptkit.observe.setup import ObserveOptions

if TYPE_CHECKING:
    from promptkit.engine.chunks import Response
    from promptkit.engine.dialect import ModelRequest
    from promptkit.engine.messages import Message, ToolCall, ToolResult
    from promptkit.engine.observer import CallOutcome
    from promptkit.observe.otel import Telemetry

__all__ = ["ConversationWatch", "TurnWatch"]

_CANCELLED = "cancelled"
_NO_OPTIONS = ObserveOptions()  # frozen: every conversation without options shares it


class ConversationWatch:
    """What observes one conversation: its event handlers and its telemetry."""

    __slots__ = ("_hub", "_options", "_telemetry", "_traced", "conversation_id", "host",
                 "pack_id",
                 "pack_version", "port", "prompt_name")

    def __init__(self, *, conversation_id: str, pack_id: str, pack_version: str,
                 prompt_name: str, base_url: str = "",
                 options: ObserveOptions | None = None, hub: EventHub | None = None) -> None:
        logs.install_from_env_once()
        self.conversation_id = conversation_id
        self.pack_id = pack_id
        self.pack_version = pack_version
        self.prompt_name = prompt_name
        self.host, self.port = logs.host_of(base_url) if base_url else (None, None)
        self._options = options or _NO_OPTIONS
        self._traced = self._options.enabled()  # instrument() covers conversations opened later
        self._hub = hub
        self._telemetry: Telemetry | None = None

    def on(self, name: str, handler: EventHandler) -> None:
        if self._hub is None:
            hub = EventHub()
            hub.on(name, handler)  # validates first: a refused handler leaves no hub behind
            self._hub = hub
        else:
            self._hub.on(name, handler)

    def fork(self, conversation_id: str) -> ConversationWatch:
        return ConversationWatch(
            conversation_id=conversation_id, pack_id=self.pack_id,
            pack_version=self.pack_version, prompt_name=self.prompt_name,
            options=self._options, hub=None if self._hub is None else self._hub.copy()
        )._with_endpoint(self.host, self.port)

    def _with_endpoint(self, host: str | None, port: int | None) -> ConversationWatch:
        self.host, self.port = host, port
        return self

    @property
    def options(self) -> ObserveOptions:
        return self._options

    def telemetry(self) -> Telemetry | None:
        """The spans and metrics of this conversation, or ``None`` when not configured."""
        if self._telemetry is None and self._traced:
            from promptkit.observe.otel import telemetry_for

            self._telemetry = telemetry_for(self._options)
        return self._telemetry

    def turn(self, *, provider: str, model: str, system: str, user_message: Message | None,
             parameters: Mapping[str, Any]) -> TurnWatch | None:
        """The observer for the turn being planned, or ``None`` when nothing observes it."""
        telemetry = self.telemetry()
        hub = self._hub if self._hub else None
        if telemetry is None and hub is None and not logs.observing():
            return None
        return TurnWatch(self, hub, telemetry, provider=provider, model=model, system=system,
                         user_message=user_message, parameters=parameters)

    def emit(self, name: str, turn_index: int | None, data: Callable[[], dict[str, Any]]
             ) -> None:
        """Emit ``name`` if anyone listens (``data`` is built only then)."""
        hub = self._hub
        if hub is not None and hub.wants(name):
            hub.emit(name, self.conversation_id, turn_index, data())

    def closed(self) -> None:
        """``conversation.closed``."""
        self.emit("conversation.closed", None, dict)

    async def drain(self) -> None:
        if self._hub is not None:
            await self._hub.drain()

    # --- for guardrails and evals (``promptkit.checks``) ----------------------------------

    def validation_failed(self, result: Any, turn_index: int | None = None) -> None:
        """A guardrail failed: ``validation.failed`` (data: the frozen ``ValidationResult``
        and its fields), and a WARNING when it is monitored rather than enforced."""
        logs.violation(str(getattr(result, "type", "?")), str(getattr(result, "message", "")),
                       direction=str(getattr(result, "direction", "output")),
                       enforced=bool(getattr(result, "enforced", True)))
        self.emit("validation.failed", turn_index, lambda: _fields(result, (
            "type", "passed", "message", "direction", "enforced", "blocked")))

    def eval_completed(self, result: Any) -> None:
        """An eval ran: ``eval.completed`` (data: the frozen ``EvalResult`` and its fields),
        and its metric when telemetry is on."""
        turn_index = getattr(result, "turn_index", None)
        self.emit("eval.completed", turn_index, lambda: _fields(result, (
            "id", "type", "trigger", "passed", "score", "message", "metric")))
        telemetry = self.telemetry()
        if telemetry is not None:
            telemetry.record_eval(result, self.prompt_name)


def _fields(result: Any, names: tuple[str, ...]) -> dict[str, Any]:
    data = {name: getattr(result, name, None) for name in names}
    data["result"] = result
    return data


class TurnWatch:
    """The observer of one turn (``engine.observer.TurnObserver``)."""

    __slots__ = ("_call", "_call_started", "_parent", "_span", "_tool_spans", "_tools",
                 "hub", "model", "parameters", "provider", "started", "system", "telemetry",
                 "turn_index", "user_message", "watch")

    def __init__(self, watch: ConversationWatch, hub: EventHub | None,
                 telemetry: Telemetry | None, *, provider: str, model: str, system: str,
                 user_message: Message | None, parameters: Mapping[str, Any]) -> None:
        self.watch = watch
        self.hub = hub
        self.telemetry = telemetry
        self.provider = provider
        self.model = model
        self.system = system
        self.user_message = user_message
        self.parameters = parameters
        self.turn_index: int | None = None
        self.started = time.monotonic()
        self._call_started = self.started
        self._tools: dict[str, float] = {}
        self._call: tuple[Any, str] | None = None  # the open chat span, its request's model
        self._span: Any = None
        self._tool_spans: dict[str, Any] = {}
        # the span open around send()/stream() (if any) parents the turn's span
        self._parent = None if telemetry is None else telemetry.current_context()

    def _emit(self, name: str, data: Callable[[], dict[str, Any]]) -> None:
        hub = self.hub
        if hub is not None and hub.wants(name):
            hub.emit(name, self.watch.conversation_id, self.turn_index, data())

    # --- the turn -------------------------------------------------------------------------

    def turn_started(self, history_turns: int) -> None:
        resumed = self.user_message is None
        self.turn_index = max(0, history_turns - 1) if resumed else history_turns
        self._emit("turn.started", lambda: {
            "prompt": self.watch.prompt_name, "provider": self.provider, "model": self.model,
            "resumed": resumed})
        telemetry = self.telemetry
        if telemetry is not None:
            watch = self.watch
            attributes: dict[str, Any] = {
                sc.GEN_AI_OPERATION_NAME: sc.INVOKE_AGENT,
                sc.GEN_AI_AGENT_NAME: watch.prompt_name,
                sc.GEN_AI_CONVERSATION_ID: watch.conversation_id,
                sc.GEN_AI_PROVIDER_NAME: self.provider,
                sc.GEN_AI_REQUEST_MODEL: self.model,
                sc.PROMPTKIT_PACK_ID: watch.pack_id,
                sc.PROMPTKIT_PACK_VERSION: watch.pack_version,
                sc.PROMPTKIT_PROMPT_NAME: watch.prompt_name,
            }
            if telemetry.capture_content:
                attributes[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = _json([
                    {"type": "text", "content": redact(self.system)}])
            self._span = telemetry.start_span(f"{sc.INVOKE_AGENT} {watch.prompt_name}",
                                              self._parent, attributes, start=self.started)
            if self._span is None:  # the SDK refused: observe on without telemetry
                self.telemetry = None

    def turn_ended(self, response: Response | None, error: BaseException | None) -> None:
        if self.turn_index is None:  # it failed before the history loaded
            self.turn_started(0)
        duration = time.monotonic() - self.started
        for call_id in list(self._tool_spans):  # a turn cut short inside its tools
            self._end_tool_span(call_id, _CANCELLED, None)
        if self._call is not None:  # ... or inside a model call
            self._end_call_span({}, _CANCELLED)
        if response is not None:
            self._emit("turn.completed", lambda: {
                # a deep copy: its messages' dicts are the ones the store holds
                "response": copy.deepcopy(response), "usage": response.usage, "cost": response.cost,
                "duration": response.duration, "time_to_first_token":
                response.time_to_first_token, "finish_reason": response.finish_reason,
                "tool_calls": len(response.tool_calls)})
            error_type = None
        else:
            error_type = _error_type(error)
            self._emit("turn.failed", lambda: {
                "error_type": error_type, "error": _message(error), "duration": duration,
                "cancelled": error_type == _CANCELLED})
        telemetry = self.telemetry
        if telemetry is not None and self._span is not None:
            attributes: dict[str, Any] = {}
            if response is not None:
                attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = response.usage.input_tokens
                attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = response.usage.output_tokens
                attributes[sc.GEN_AI_RESPONSE_MODEL] = response.model
                if response.finish_reason:
                    attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (response.finish_reason,)
                if response.time_to_first_token is not None:
                    attributes[sc.PROMPTKIT_TIME_TO_FIRST_TOKEN] = response.time_to_first_token
                if telemetry.capture_content:
                    attributes[sc.GEN_AI_OUTPUT_MESSAGES] = _messages_json(
                        (response.message,))
            telemetry.end_span(self._span, attributes, error_type, _message(error))
            self._span = None

    # --- model calls ----------------------------------------------------------------------

    def call_started(self, request: ModelRequest, attempt: int) -> None:
        self._call_started = time.monotonic()
        self._emit("provider.call.started", lambda: {
            "provider": self.provider, "model": request.model, "attempt": attempt})
        telemetry = self.telemetry
        if telemetry is not None:
            watch = self.watch
            attributes: dict[str, Any] = {
                sc.GEN_AI_OPERATION_NAME: sc.CHAT,
                sc.GEN_AI_PROVIDER_NAME: self.provider,
                sc.GEN_AI_REQUEST_MODEL: request.model,
            }
            for name, attribute in _REQUEST_PARAMETERS:
                value = request.parameters.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    attributes[attribute] = value
            if watch.host:
                attributes[sc.SERVER_ADDRESS] = watch.host
            if watch.port:
                attributes[sc.SERVER_PORT] = watch.port
            if telemetry.capture_content:
                attributes[sc.GEN_AI_INPUT_MESSAGES] = _messages_json(request.messages)
            span = telemetry.start_span(f"{sc.CHAT} {request.model}", self._span, attributes,
                                        start=self._call_started, child_of_span=True,
                                        client=True)
            self._call = (span, request.model)

    def call_ended(self, request: ModelRequest, attempt: int, outcome: CallOutcome) -> None:
        now = time.monotonic()
        began = self._call_started
        duration = now - began
        error = outcome.error
        result = outcome.result
        status = outcome.status
        request_id = logs.request_id(outcome.headers)
        if isinstance(error, APIStatusError):
            status = error.status_code if status is None else status
            request_id = request_id or error.request_id
        ttfb = None if outcome.headers_at is None else outcome.headers_at - began
        ttft = None if outcome.first_content_at is None else outcome.first_content_at - began
        logs.log_request(provider=self.provider, host=self.watch.host, model=request.model,
                         attempt=attempt, status=status, request=request_id, ttfb=ttfb,
                         duration=duration, error=error)
        if result is not None:
            model = result.model or request.model
            self._emit("provider.call.completed", lambda: {
                "provider": self.provider, "model": model, "attempt": attempt,
                "usage": result.usage, "cost": cost_of(model, result.usage),
                "duration": duration, "time_to_first_token": ttft,
                "finish_reason": result.finish_reason, "status": status,
                "request_id": request_id, "response_id": result.response_id})
        else:
            self._emit("provider.call.failed", lambda: {
                "provider": self.provider, "model": request.model, "attempt": attempt,
                "duration": duration, "status": status, "error_type": _error_type(error),
                "error": _message(error), "request_id": request_id})
        if self.telemetry is not None:
            attributes: dict[str, Any] = {}
            if result is not None:
                attributes[sc.GEN_AI_RESPONSE_MODEL] = result.model or request.model
                if result.response_id is not None:  # when the dialect has one
                    attributes[sc.GEN_AI_RESPONSE_ID] = result.response_id
                if result.finish_reason:
                    attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (result.finish_reason,)
                attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = result.usage.input_tokens
                attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = result.usage.output_tokens
                if ttft is not None:
                    attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft
                if self.telemetry.capture_content:
                    attributes[sc.GEN_AI_OUTPUT_MESSAGES] = _messages_json((result.message,))
            self._end_call_span(attributes, None if error is None else _error_type(error),
                                error, duration=duration,
                                usage=None if result is None else result.usage)

    def _end_call_span(self, attributes: dict[str, Any], error_type: str | None,
                       error: BaseException | None = None, *, duration: float | None = None,
                       usage: Any = None) -> None:
        telemetry, call = self.telemetry, self._call
        self._call = None
        if telemetry is None or call is None:
            return
        span, model = call
        if duration is None:
            duration = time.monotonic() - self._call_started
        telemetry.end_span(span, attributes, error_type, _message(error))
        watch = self.watch
        telemetry.record_call((self.provider, model, watch.host, watch.port,
                               attributes.get(sc.GEN_AI_RESPONSE_MODEL), error_type),
                              duration=duration,
                              input_tokens=None if usage is None else usage.input_tokens,
                              output_tokens=None if usage is None else usage.output_tokens)

    def call_retried(self, attempt: int, error: PromptKitError, delay: float) -> None:
        logs.log_retry(provider=self.provider, attempt=attempt, error=error, delay=delay)
        self._emit("provider.call.retried", lambda: {
            "provider": self.provider, "model": self.model, "attempt": attempt,
            "delay": delay, "error_type": _error_type(error), "error": _message(error),
            "status": getattr(error, "status_code", None)})

    # --- tools ----------------------------------------------------------------------------

    def tool_started(self, call: ToolCall) -> None:
        self._tools[call.id] = time.monotonic()
        self._emit("tool.call.started", lambda: {
            "name": call.name, "call_id": call.id, "arguments": copy.deepcopy(call.arguments)})
        if self.telemetry is not None:
            self._start_tool_span(call.id, call.name, call.arguments)

    def _start_tool_span(self, call_id: str, name: str, arguments: Any) -> None:
        telemetry = self.telemetry
        assert telemetry is not None
        attributes: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.EXECUTE_TOOL,
                                      sc.GEN_AI_TOOL_NAME: name, sc.GEN_AI_TOOL_CALL_ID: call_id}
        if telemetry.capture_content and arguments is not None:
            attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = redact(_json(arguments))
        self._tool_spans[call_id] = telemetry.start_span(
            f"{sc.EXECUTE_TOOL} {name}", self._span, attributes,
            start=self._tools.get(call_id), child_of_span=True)

    def tool_ended(self, result: ToolResult) -> None:
        began = self._tools.pop(result.call_id, None)
        duration = 0.0 if began is None else time.monotonic() - began
        name = "tool.call.failed" if result.is_error else "tool.call.completed"
        key = "error" if result.is_error else "result"
        self._emit(name, lambda: {"name": result.name, "call_id": result.call_id,
                                  "duration": duration, key: result.content})
        if self.telemetry is not None:
            if result.call_id not in self._tool_spans:  # refused before it ran
                self._start_tool_span(result.call_id, result.name, None)
            self._end_tool_span(result.call_id, "tool_error" if result.is_error else None,
                                result)

    def _end_tool_span(self, call_id: str, error_type: str | None,
                       result: ToolResult | None) -> None:
        telemetry = self.telemetry
        span = self._tool_spans.pop(call_id, None)
        if telemetry is None or span is None:
            return
        attributes: dict[str, Any] = {}
        if result is not None and telemetry.capture_content:
            attributes[sc.GEN_AI_TOOL_CALL_RESULT] = redact(result.content)
        telemetry.end_span(span, attributes, error_type,
                           result.content if result is not None and result.is_error else None)

    def approval_required(self, call: ToolCall, reason: str) -> None:
        self._emit("tool.approval.required", lambda: {
            "name": call.name, "call_id": call.id, "arguments": copy.deepcopy(call.arguments),
            "reason": reason})

    # --- guardrails (``promptkit.checks``) ------------------------------------------------

    def validation_failed(self, result: Any) -> None:
        """A guardrail failed during this turn (see ConversationWatch.validation_failed)."""
        self.watch.validation_failed(result, self.turn_index)


_REQUEST_PARAMETERS = (("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
                       ("max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
                       ("top_p", sc.GEN_AI_REQUEST_TOP_P))


def _error_type(error: BaseException | None) -> str:
    """``error.type``: the exception class name; a closed or cancelled turn is "cancelled"."""
    if error is None or isinstance(error, GeneratorExit) or type(error).__name__ == \
            "CancelledError":
        return _CANCELLED
    return type(error).__name__


def _message(error: BaseException | None) -> str | None:
    if error is None or isinstance(error, GeneratorExit):
        return None
    return redact(str(error)) if isinstance(error, PromptKitError | Exception) else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _messages_json(messages: Any) -> str:
    """Messages in the GenAI conventions' JSON shape (role + parts), redacted."""
    out = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if message.text:
            parts.append({"type": "text", "content": message.text})
        for call in message.tool_calls:
            parts.append({"type": "tool_call", "id": call.id, "name": call.name,
                          "arguments": call.arguments})
        if message.tool_result is not None:
            parts.append({"type": "tool_call_response", "id": message.tool_result.call_id,
                          "response": message.tool_result.content})
        out.append({"role": message.role, "parts": parts})
    return redact(_json(out))
