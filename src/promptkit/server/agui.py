"""The AG-UI endpoint: ``POST /agui`` runs a turn from a ``RunAgentInput`` as AG-UI events.

The input's ``messages`` are the history, its last user message the turn. The prompt is the
``prompt`` query parameter, else ``forwardedProps.prompt``, else the pack's first prompt;
template variables come from ``forwardedProps.variables``. Events (``ag-ui-protocol`` types,
its encoder): RUN_STARTED; per model round TEXT_MESSAGE_START / CONTENT / END; per tool call
TOOL_CALL_START / ARGS / END and TOOL_CALL_RESULT (tools run on the server, registered by
``--setup``); RUN_FINISHED, or RUN_ERROR when the turn fails. A guardrail block ends the text
message with the replacement text (a CUSTOM ``promptkit.validation`` event carries the details).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import promptkit
from promptkit import ChunkType, Message, PromptKitError, ToolCall, ToolResult, VariableError
from promptkit._redact import redact
from promptkit.observe.otel import continue_trace
from promptkit.server._extra import require
from promptkit.server.encoding import plain
from promptkit.server.http import ApiError, EventStream, read_json
from promptkit.server.hub import ServerState, new_id
from promptkit.stores import MemoryStore

__all__ = ["routes"]


def _content(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return "".join(getattr(part, "text", "") or "" for part in value)


def _history(messages: list[Any]) -> list[Message]:
    names: dict[str, str] = {}
    history: list[Message] = []
    for item in messages:
        role = item.role
        if role == "user":
            history.append(Message(role="user", text=_content(item.content)))
        elif role == "assistant":
            calls = []
            for call in item.tool_calls or ():
                raw = call.function.arguments or "{}"
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = {}
                calls.append(ToolCall(id=call.id, name=call.function.name,
                                      arguments=parsed if isinstance(parsed, dict) else {},
                                      raw_arguments=raw))
                names[call.id] = call.function.name
            history.append(Message(role="assistant", text=_content(item.content),
                                   tool_calls=tuple(calls)))
        elif role == "tool":
            history.append(Message(role="tool", tool_result=ToolResult(
                call_id=item.tool_call_id, name=names.get(item.tool_call_id, ""),
                content=_content(item.content), is_error=bool(getattr(item, "error", None)))))
    return history


async def run_agent(request: Request) -> Response | EventStream:
    state: ServerState = request.app.state.promptkit
    core = require("ag_ui.core")
    encoder = require("ag_ui.encoder").EventEncoder()
    body = await read_json(request, state.max_body)
    try:
        run = core.RunAgentInput.model_validate(body)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ApiError(400, "invalid_request", f"not a RunAgentInput: {exc}") from None
    props = run.forwarded_props if isinstance(run.forwarded_props, Mapping) else {}
    pack = state.hub.pack
    prompt = request.query_params.get("prompt") or props.get("prompt") or next(iter(pack.prompts))
    if prompt not in pack.prompts:
        raise ApiError(400, "unknown_prompt", f"no prompt named {prompt!r}")
    history = _history(list(run.messages))
    if not history or history[-1].role != "user":
        raise ApiError(400, "invalid_request", "the last message must be a user message")
    user = history.pop()
    store = MemoryStore()
    conversation_id = new_id()
    if history:
        store.append(conversation_id, history, 0)
    variables = props.get("variables") or {}
    if not isinstance(variables, Mapping):
        raise ApiError(400, "invalid_request", "forwardedProps.variables must be an object")
    conversation = promptkit.open_async(pack, prompt, store=store,
                                        conversation_id=conversation_id,
                                        variables=dict(variables), **state.hub.options.kwargs())
    await state.hub.prepare(conversation)
    try:
        with continue_trace(request.headers):  # the caller's trace parents the turn's span
            stream = conversation.stream(user.text)
    except VariableError as exc:
        raise ApiError(400, "invalid_variables", str(exc)) from None

    def encode(event: Any) -> bytes:
        return str(encoder.encode(event)).encode()

    async def events() -> AsyncIterator[bytes]:
        types = core.EventType
        yield encode(core.RunStartedEvent(type=types.RUN_STARTED, thread_id=run.thread_id,
                                          run_id=run.run_id))
        message_id: str | None = None

        def end_text() -> bytes:
            nonlocal message_id
            if message_id is None:
                return b""
            event = encode(core.TextMessageEndEvent(type=types.TEXT_MESSAGE_END,
                                                    message_id=message_id))
            message_id = None
            return event

        async with stream:
            async for chunk in stream:
                kind = chunk.type
                if kind is ChunkType.TEXT and chunk.text:
                    if message_id is None:
                        message_id = "msg_" + os.urandom(8).hex()
                        yield encode(core.TextMessageStartEvent(
                            type=types.TEXT_MESSAGE_START, message_id=message_id,
                            role="assistant"))
                    yield encode(core.TextMessageContentEvent(
                        type=types.TEXT_MESSAGE_CONTENT, message_id=message_id,
                        delta=chunk.text))
                elif kind is ChunkType.TOOL_CALL and chunk.tool_call is not None:
                    parent = message_id
                    yield end_text()
                    call = chunk.tool_call
                    yield encode(core.ToolCallStartEvent(
                        type=types.TOOL_CALL_START, tool_call_id=call.id,
                        tool_call_name=call.name, parent_message_id=parent))
                    yield encode(core.ToolCallArgsEvent(
                        type=types.TOOL_CALL_ARGS, tool_call_id=call.id,
                        delta=call.raw_arguments or json.dumps(call.arguments)))
                    yield encode(core.ToolCallEndEvent(type=types.TOOL_CALL_END,
                                                       tool_call_id=call.id))
                elif kind is ChunkType.TOOL_RESULT and chunk.tool_result is not None:
                    result = chunk.tool_result
                    yield encode(core.ToolCallResultEvent(
                        type=types.TOOL_CALL_RESULT, message_id="msg_" + os.urandom(8).hex(),
                        tool_call_id=result.call_id, content=result.content, role="tool"))
                elif kind.value == "validation":
                    yield encode(core.CustomEvent(type=types.CUSTOM,
                                                  name="promptkit.validation",
                                                  value=plain(getattr(chunk, "validation", None))))
                elif kind is ChunkType.DONE:
                    yield end_text()
                    yield encode(core.RunFinishedEvent(type=types.RUN_FINISHED,
                                                       thread_id=run.thread_id,
                                                       run_id=run.run_id))
                elif kind is ChunkType.ERROR:
                    yield end_text()
                    error: PromptKitError | None = chunk.error
                    yield encode(core.RunErrorEvent(
                        type=types.RUN_ERROR, message=redact(str(error)),
                        code=type(error).__name__ if error is not None else None))

    return EventStream(_skip_empty(events()))


async def _skip_empty(events: Any) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            if event:
                yield event
    finally:
        await events.aclose()


def routes() -> list[Any]:
    from starlette.routing import Route

    return [Route("/agui", run_agent, methods=["POST"])]
