"""OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``.

``model`` names a prompt of the pack; the pack supplies the system prompt, tools and
guardrails (system messages in the request are ignored); the request's other messages are the
history and the last user message is the turn. Template variables may be given in an extra
``variables`` object (``extra_body={"variables": {...}}`` with the ``openai`` client).

Tools: the prompt's tools that ``--setup`` gave handlers run on the server, inside the turn.
The others are client-side: a call surfaces the OpenAI way (``tool_calls``, finish reason
``tool_calls``); the held turn is kept in the store under an id the returned tool-call ids
carry (``pkc_<conversation id>_<model's call id>``), and the next request, ending with the
``tool`` messages, continues it (any worker sharing the store can). Streams end with a usage
chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response as HTTPResponse

import promptkit
from promptkit import (
    AsyncConversation,
    ChunkType,
    Message,
    PromptKitError,
    PromptNotFoundError,
    Response,
    StreamChunk,
    ToolCall,
    ToolResult,
    VariableError,
)
from promptkit._json import encode
from promptkit.observe.otel import continue_trace
from promptkit.server.encoding import error_json
from promptkit.server.http import ApiError, EventStream, read_json
from promptkit.server.hub import ServerState, maybe_await, new_id
from promptkit.stores import MemoryStore

__all__ = ["routes"]

_PREFIX = "pkc_"
_ID_LENGTH = 32


def _surfaced_id(conversation_id: str, call_id: str) -> str:
    return f"{_PREFIX}{conversation_id}_{call_id}"


def _parse_surfaced(call_id: str) -> tuple[str, str] | None:
    if not call_id.startswith(_PREFIX) or len(call_id) < len(_PREFIX) + _ID_LENGTH + 2:
        return None
    conversation_id = call_id[len(_PREFIX):len(_PREFIX) + _ID_LENGTH]
    if call_id[len(_PREFIX) + _ID_LENGTH] != "_":
        return None
    return conversation_id, call_id[len(_PREFIX) + _ID_LENGTH + 1:]


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content
                       if isinstance(part, Mapping) and part.get("type") == "text")
    raise ApiError(400, "invalid_request_error", "message content must be a string or parts")


def _history(messages: list[Any]) -> list[Message]:
    """The request's messages as promptkit Messages (system messages left out)."""
    names: dict[str, str] = {}
    history: list[Message] = []
    for item in messages:
        if not isinstance(item, Mapping):
            raise ApiError(400, "invalid_request_error", "each message must be an object")
        role = item.get("role")
        if role in ("system", "developer"):
            continue
        if role == "user":
            history.append(Message(role="user", text=_text_of(item.get("content"))))
        elif role == "assistant":
            calls = []
            for raw in item.get("tool_calls") or ():
                function = raw.get("function") if isinstance(raw, Mapping) else None
                if not isinstance(function, Mapping):
                    raise ApiError(400, "invalid_request_error",
                                   "each tool call needs a function object")
                arguments = str(function.get("arguments") or "{}")
                try:
                    parsed = json.loads(arguments)
                except ValueError:
                    parsed = {}
                calls.append(ToolCall(id=str(raw.get("id")), name=str(function.get("name")),
                                      arguments=parsed if isinstance(parsed, dict) else {},
                                      raw_arguments=arguments))
                names[str(raw.get("id"))] = str(function.get("name"))
            history.append(Message(role="assistant", text=_text_of(item.get("content")),
                                   tool_calls=tuple(calls)))
        elif role == "tool":
            call_id = str(item.get("tool_call_id"))
            history.append(Message(role="tool", tool_result=ToolResult(
                call_id=call_id, name=names.get(call_id, ""),
                content=_text_of(item.get("content")))))
        else:
            raise ApiError(400, "invalid_request_error", f"unsupported message role {role!r}")
    return history


class _Completion:
    """One chat-completions request: which turn to run, and how to answer."""

    def __init__(self, state: ServerState, body: dict[str, Any]) -> None:
        self.state = state
        prompt = body.get("model")
        if not isinstance(prompt, str) or prompt not in state.hub.pack.prompts:
            raise ApiError(404, "model_not_found",
                           f"no prompt named {prompt!r}; GET /v1/models lists them")
        self.prompt: str = prompt
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "invalid_request_error", "messages must be a non-empty list")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ApiError(400, "invalid_request_error", "variables must be an object")
        self.variables = variables
        self.history = _history(messages)
        self.stream = bool(body.get("stream", False))
        options = body.get("stream_options") or {}
        self.include_usage = bool(isinstance(options, Mapping) and options.get("include_usage"))
        self.id = "chatcmpl-" + os.urandom(12).hex()
        self.created = int(time.time())
        self.conversation_id = ""
        self.scratch: MemoryStore | None = None
        # every streamed chunk is the same JSON around its delta: encode the rest once
        self._head = (b'data: {"id":"' + self.id.encode() + b'","object":"chat.completion.chunk'
                      b'","created":' + str(self.created).encode() + b',"model":'
                      + encode(self.prompt) + b',"choices":[{"index":0,"delta":')
        self._usage_null = b',"usage":null' if self.include_usage else b""
        self._tail = b',"logprobs":null,"finish_reason":null}]' + self._usage_null + b'}\n\n'

    async def open(self) -> tuple[AsyncConversation, Any]:
        """The conversation and its started stream (a new turn, or a held one continued)."""
        hub = self.state.hub
        results: list[Message] = []
        while self.history and self.history[-1].role == "tool":
            results.insert(0, self.history.pop())
        if results:
            return await self._continue(results)
        if not self.history or self.history[-1].role != "user":
            raise ApiError(400, "invalid_request_error",
                           "the last message must be a user message or tool results")
        user = self.history.pop()
        self.conversation_id = new_id()
        self.scratch = MemoryStore()
        if self.history:
            self.scratch.append(self.conversation_id, self.history, 0)
        conversation = promptkit.open_async(
            hub.pack, self.prompt, store=self.scratch, conversation_id=self.conversation_id,
            variables=self.variables, **hub.options.kwargs())
        await self._prepare(conversation)
        return conversation, conversation.stream(user.text)

    async def _continue(self, results: list[Message]) -> tuple[AsyncConversation, Any]:
        hub = self.state.hub
        parsed = [_parse_surfaced(m.tool_result.call_id if m.tool_result else "")
                  for m in results]
        ids = {p[0] for p in parsed if p is not None}
        if None in parsed or len(ids) != 1:
            raise ApiError(400, "invalid_request_error",
                           "tool messages must answer tool calls this server returned")
        self.conversation_id = ids.pop()
        if await hub.load(self.conversation_id) is None:
            raise ApiError(400, "invalid_request_error",
                           "the tool calls these results answer are unknown or finished")
        conversation = await promptkit.resume_async(
            self.conversation_id, hub.pack, self.prompt, store=hub.store,
            variables=self.variables or None, **hub.options.kwargs())
        await self._prepare(conversation)
        for message, pair in zip(results, parsed, strict=True):
            assert message.tool_result is not None and pair is not None
            content: Any = message.tool_result.content
            with contextlib.suppress(ValueError):
                content = json.loads(content)
            try:
                await conversation.send_tool_result(pair[1], content)
            except PromptKitError as exc:
                raise ApiError(400, "invalid_request_error", str(exc)) from None
        return conversation, conversation.resume_stream()

    async def _prepare(self, conversation: AsyncConversation) -> None:
        spec = self.state.hub.pack.prompt(str(self.prompt))
        for name in spec.tools:  # client-side unless setup registers a handler
            conversation.client_tool(name)
        await self.state.hub.prepare(conversation)

    async def finish(self, response: Response) -> None:
        """Keep a held turn in the shared store for the follow-up; drop a finished one."""
        hub = self.state.hub
        if response.pending_tools:
            if self.scratch is not None:
                stored = self.scratch.load(self.conversation_id)
                assert stored is not None
                await maybe_await(hub.store.append(self.conversation_id, stored.messages, 0,
                                              metadata=stored.metadata))
        elif self.scratch is None:
            await maybe_await(hub.store.delete(self.conversation_id))

    # --- answers ----------------------------------------------------------------------

    def _tool_call(self, call: ToolCall, index: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": _surfaced_id(self.conversation_id, call.id), "type": "function",
            "function": {"name": call.name,
                         "arguments": call.raw_arguments or json.dumps(call.arguments)}}
        if index is not None:
            data["index"] = index
        return data

    @staticmethod
    def finish_reason(response: Response) -> str:
        if response.pending_tools:
            return "tool_calls"
        if response.finish_reason in ("safety", "content_filter"):
            return "content_filter"
        if response.finish_reason in ("length", "max_tokens"):
            return "length"
        return "stop"

    @staticmethod
    def usage(response: Response) -> dict[str, int]:
        usage = response.usage
        return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens}

    def completion(self, response: Response) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": response.text or None}
        if response.pending_tools:
            message["tool_calls"] = [
                self._tool_call(ToolCall(id=p.call_id, name=p.name, arguments=dict(p.arguments)))
                for p in response.pending_tools]
            message["content"] = response.text or None
        else:
            message["content"] = response.text
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.prompt,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": self.finish_reason(response)}],
                "usage": self.usage(response)}

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        """One ``chat.completion.chunk`` SSE event."""
        if finish is None:
            return self._head + encode(delta) + self._tail
        return (self._head + encode(delta) + b',"logprobs":null,"finish_reason":'
                + encode(finish) + b"}]" + self._usage_null + b"}\n\n")

    def text_chunk(self, text: str) -> bytes:
        """The event for a piece of text (the hot path: one encode of the text alone)."""
        return self._head + b'{"content":' + encode(text) + b"}" + self._tail

    async def events(self, stream: Any) -> AsyncIterator[bytes]:
        yield self.chunk({"role": "assistant", "content": ""})
        tool_index = 0
        async with stream:
            async for chunk in stream:
                event = await self._event(chunk, tool_index)
                if chunk.type is ChunkType.CLIENT_TOOL:
                    tool_index += 1
                if event:
                    yield event

    async def _event(self, chunk: StreamChunk, tool_index: int) -> bytes:
        kind = chunk.type
        if kind is ChunkType.TEXT:
            return self.text_chunk(chunk.text)
        if kind is ChunkType.CLIENT_TOOL and chunk.tool_call is not None:
            return self.chunk({"tool_calls": [self._tool_call(chunk.tool_call, tool_index)]})
        if kind.value == "validation":  # a guardrail replaced the reply: say so as text
            message = getattr(getattr(chunk, "validation", None), "message", "") or ""
            return self.chunk({"content": f"\n[blocked: {message}]"}) if message else b""
        if kind is ChunkType.DONE and chunk.response is not None:
            response = chunk.response
            await self.finish(response)
            out = self.chunk({}, self.finish_reason(response))
            if self.include_usage:
                usage: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk",
                         "created": self.created, "model": self.prompt, "choices": [],
                         "usage": self.usage(response)}
                out += b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n"
            return out + b"data: [DONE]\n\n"
        if kind is ChunkType.ERROR and chunk.error is not None:
            error = error_json(chunk.error)
            body = {"error": {"message": error["message"], "type": error["type"],
                              "code": error.get("status_code")}}
            return b"data: " + json.dumps(body).encode() + b"\n\n"
        return b""


async def chat_completions(request: Request) -> HTTPResponse | EventStream:
    state: ServerState = request.app.state.promptkit
    completion = _Completion(state, await read_json(request, state.max_body))
    try:
        with continue_trace(request.headers):  # the caller's trace parents the turn's span
            _, stream = await completion.open()
    except PromptNotFoundError as exc:
        raise ApiError(404, "model_not_found", str(exc)) from None
    except VariableError as exc:
        raise ApiError(400, "invalid_request_error", str(exc)) from None
    if completion.stream:
        return EventStream(completion.events(stream))
    try:
        response = await stream.until_done()
    except PromptKitError as exc:
        error = error_json(exc)
        return JSONResponse({"error": {"message": error["message"], "type": error["type"],
                                       "code": error.get("status_code")}}, status_code=502)
    finally:
        await stream.aclose()
    await completion.finish(response)
    return JSONResponse(completion.completion(response))


async def list_models(request: Request) -> HTTPResponse:
    state: ServerState = request.app.state.promptkit
    pack = state.hub.pack
    return JSONResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": pack.id}
        for name in pack.prompts]})


def routes() -> list[Any]:
    from starlette.routing import Route

    return [Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"])]
