"""OpenAI Chat Completions dialect (``POST {base_url}/chat/completions``, streamed as SSE).

Works for api.openai.com and every OpenAI-compatible server (Azure, vLLM, llama.cpp,
LM Studio, OpenRouter ...). Pure: builds the request, decodes the stream, maps errors.

Request decisions:

- An assistant message that called tools carries ``content`` as a string (``""`` when the
  model wrote no text), never ``null``: OpenAI and vLLM accept both, llama-cpp-python's server
  refuses ``null`` and a missing ``content`` alike.
- ``tool_choice``: a mode is sent as is, a tool name as ``{"type": "function", "function":
  {"name": ...}}``.

Decoding decisions:

- ``data: [DONE]`` is matched before JSON parsing and ends the round. A server that never
  sends it ends cleanly if a ``finish_reason`` was seen; EOF with neither raises
  :class:`~promptkit.StreamInterruptedError`.
- Text comes from ``choices[0].delta.content``. ``delta.refusal`` text (structured-output
  refusals) is streamed as text too, and the round's ``finish_reason`` becomes ``"refusal"``.
  Gateway reasoning fields (``reasoning``, ``reasoning_content``) are ignored.
- Tool calls are accumulated per ``(choice index, tool index)``; the first non-empty id and
  name win; a fragment without ``index`` continues the call with its id, or the last call; a
  new id on a used index starts a new call. Arguments are parsed once, at the end: empty means
  ``{}``; invalid JSON (e.g. cut by ``max_tokens``) gives ``arguments={}`` with the text kept
  in ``raw_arguments`` for the engine to report. Calls without an id get ``call_<n>``.
- A data event with a truthy top-level ``error`` (even beside ``choices``, as gateways send)
  raises the mapped :class:`~promptkit.APIStatusError` subclass; an integer ``error.code``
  in the HTTP range is used as the status. A data event that is not a JSON object raises
  :class:`~promptkit.StreamProtocolError`. Either error is raised once the TEXT chunks that
  preceded it have been delivered: when the same read completed chunks before it, ``feed``
  returns them, ``done`` becomes true and the error is raised by ``finish`` (or the next
  ``feed``). So the chunks a stream yields never depend on how the bytes were split.
- Usage comes from any chunk with a non-null ``usage`` (normally the trailing ``choices: []``
  chunk; Azure's first prompt-filter chunk has neither choices nor usage and is skipped). When
  none arrived, ``RoundResult.usage`` is ``Usage()`` and ``Message.usage`` is ``None``.
- ``events`` counts JSON data events; SSE comments (keep-alives) and ``[DONE]`` do not count.
- A reply whose content type is not ``text/event-stream`` goes through ``NonStreamDecoder``
  (``providers._non_stream``): a complete non-streamed ``chat.completion`` is delivered as if
  streamed, an error body raises its typed error, anything else is a
  :class:`~promptkit.StreamProtocolError` quoting the body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from promptkit._errors import (
    APIStatusError,
    BadRequestError,
    ProviderError,
    StreamInterruptedError,
    StreamProtocolError,
)
from promptkit._json import encode, loads
from promptkit.engine.chunks import StreamChunk, text_chunk
from promptkit.engine.dialect import (
    Endpoint,
    HTTPRequest,
    ModelRequest,
    RoundDecoder,
    RoundResult,
    ToolDefinition,
    WireMemo,
)
from promptkit.engine.messages import Message, ToolCall, Usage
from promptkit.providers._common import stop_sequences
from promptkit.providers._errors_map import (
    build_status_error,
    extract_error_fields,
    status_error_from_body,
)
from promptkit.providers._non_stream import NonStreamDecoder, media_type, sse_start
from promptkit.providers._parts import media_parts
from promptkit.providers._response_format import json_schema_of, schema_name
from promptkit.transport.sse import SSEDecoder

__all__ = ["OpenAIChatDecoder", "OpenAIChatDialect"]

_PARAMETERS = ("temperature", "top_p", "frequency_penalty", "presence_penalty", "seed")
_TOOL_CHOICE_MODES = frozenset(("auto", "required", "none"))
_SNIPPET = 200


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")


def _token_limit_field(model: str) -> str:
    """``max_completion_tokens`` for OpenAI reasoning models, ``max_tokens`` for the rest."""
    name = model.lower().rsplit("/", 1)[-1]
    reasoning = any(name == p or name.startswith((p + "-", p + ".")) for p in _REASONING_MODELS)
    return "max_completion_tokens" if reasoning else "max_tokens"


class OpenAIChatDialect:
    """The Chat Completions wire dialect for one endpoint.

    ``include_usage`` asks for the trailing usage chunk (``stream_options``).
    ``max_tokens_field`` names the token limit parameter: ``"max_tokens"``, which every
    compatible server understands, except that OpenAI's reasoning models (``o1``, ``o3``,
    ``o4``, ``gpt-5`` families), which refuse it, get ``"max_completion_tokens"``; pass a
    field name to force one.
    """

    def __init__(self, endpoint: Endpoint, *, name: str = "openai", include_usage: bool = True,
                 max_tokens_field: str | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.include_usage = include_usage
        self.max_tokens_field = max_tokens_field
        self._url = endpoint.base_url.rstrip("/") + "/chat/completions"

    def __repr__(self) -> str:
        return f"OpenAIChatDialect(name={self.name!r}, endpoint={self.endpoint!r})"

    # --- request -----------------------------------------------------------------------------

    def build_request(self, request: ModelRequest) -> HTTPRequest:
        """The streaming POST for ``request``; the body is compact UTF-8 JSON."""
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if self.endpoint.api_key:
            headers["authorization"] = f"Bearer {self.endpoint.api_key}"
        headers.update(self.endpoint.headers)
        headers.update(request.extra_headers)
        body: dict[str, Any] = {
            "model": request.model,
            "messages": _messages(request.system, request.messages, request.memo),
            "stream": True,
        }
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        params = request.parameters
        for key in _PARAMETERS:
            value = params.get(key)
            if value is not None:
                body[key] = value
        max_tokens = params.get("max_tokens")
        if max_tokens is not None:
            body[self.max_tokens_field or _token_limit_field(request.model)] = max_tokens
        stop = stop_sequences(params)
        if stop:
            body["stop"] = stop
        if request.response_format is not None:
            schema = json_schema_of(request.response_format)
            body["response_format"] = {"type": "json_object"} if schema is None else {
                "type": "json_schema",
                "json_schema": {"name": schema_name(schema), "schema": schema}}
        if request.tools:
            body["tools"] = [_tool(t) for t in request.tools]
            choice = request.tool_choice
            if choice is not None:
                body["tool_choice"] = (choice if choice in _TOOL_CHOICE_MODES else
                                       {"type": "function", "function": {"name": choice}})
        if request.extra_body:
            body.update(request.extra_body)
        return HTTPRequest(method="POST", url=self._url, headers=headers,
                           body=encode(body))

    # --- response ----------------------------------------------------------------------------

    def decoder(self, content_type: str | None = None) -> RoundDecoder:
        """A fresh decoder for one reply; ``content_type`` is the reply's (``None``: assume
        a stream). A reply that is not ``text/event-stream`` is read by a
        :class:`~promptkit.providers._non_stream.NonStreamDecoder` (a ``chat.completion``
        object is delivered as if streamed)."""
        stream = OpenAIChatDecoder(provider=self.name)
        if content_type is None or media_type(content_type) == "text/event-stream":
            return stream
        return NonStreamDecoder(stream, content_type=content_type, expected="an SSE stream",
                                passthrough=sse_start, reply=completion_events)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
        """The error for a non-2xx reply (OpenAI envelope, or any text / HTML body)."""
        return status_error_from_body(status, headers, body, self.name)


def _messages(system: str, messages: Sequence[Message],
              memo: WireMemo | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    out += (memo.convert(messages, _message) if memo is not None
            else [_message(message) for message in messages])
    return out


def _message(message: Message) -> dict[str, Any]:
    """One history message as a Chat Completions message (never modified afterwards: a
    WireMemo may hand the same dict to every later request)."""
    role = message.role
    if role == "assistant":
        # content is always a string, "" beside tool calls: OpenAI and vLLM take "" or
        # null, llama-cpp-python's server takes only a string (null or absent is a 500)
        item: dict[str, Any] = {"role": "assistant", "content": message.text}
        if message.tool_calls:
            item["tool_calls"] = [
                {"id": call.id, "type": "function",
                 "function": {"name": call.name,
                              "arguments": call.raw_arguments or _dumps(call.arguments)}}
                for call in message.tool_calls
            ]
        return item
    if role == "tool":
        result = message.tool_result
        if result is None:
            raise ValueError("a tool message needs a tool_result")
        return {"role": "tool", "tool_call_id": result.call_id, "content": result.content}
    if role == "user" and media_parts(message):
        content: list[dict[str, Any]] = [{"type": "text", "text": message.text}] \
            if message.text else []
        content += [_content_part(part) for part in media_parts(message)]
        return {"role": "user", "content": content}
    return {"role": role, "content": message.text}  # user, system


def _content_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """An image or document as a Chat Completions content part."""
    if part["type"] == "image":
        url = part.get("url") or f"data:{part['mime_type']};base64,{part['data']}"
        return {"type": "image_url", "image_url": {"url": url}}
    if "data" not in part:
        raise BadRequestError("Chat Completions takes documents as data, not URLs",
                              status_code=None)
    return {"type": "file", "file": {
        "filename": str(part.get("name") or "document.pdf"),
        "file_data": f"data:{part['mime_type']};base64,{part['data']}"}}


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": tool.name, "description": tool.description,
        "parameters": dict(tool.parameters)}}


class _ToolAcc:
    """A tool call being assembled from fragments."""

    __slots__ = ("args", "id", "name")

    def __init__(self, call_id: str) -> None:
        self.id = call_id
        self.name = ""
        self.args: list[str] = []


# The shared empty accumulators of a decoder that has seen no tool call (never written to:
# _tool_fragments gives the decoder its own first).
_NO_CALLS: list[Any] = []
_NO_KEYS: dict[tuple[int, int], Any] = {}
_NO_IDS: dict[str, Any] = {}


class OpenAIChatDecoder:
    """Decodes one streamed Chat Completions reply (implements ``RoundDecoder``).

    Besides the protocol, :meth:`flush` returns the chunks of a last event that lacked its
    trailing blank line; drivers may call it at EOF before :meth:`finish` (which flushes too).
    """

    __slots__ = (
        "_by_id",
        "_by_key",
        "_calls",
        "_error",
        "_finish_reason",
        "_flushed",
        "_model",
        "_provider",
        "_refusal",
        "_response_id",
        "_sse",
        "_text",
        "_usage",
        "done",
        "events",
    )

    def __init__(self, *, provider: str = "openai") -> None:
        self.done = False
        self.events = 0
        self._provider = provider
        self._sse = SSEDecoder()
        self._text: list[str] = []
        # tool-call accumulators, made at the first tool-call fragment (most replies have none)
        self._calls: list[_ToolAcc] = _NO_CALLS
        self._by_key: dict[tuple[int, int], _ToolAcc] = _NO_KEYS
        self._by_id: dict[str, _ToolAcc] = _NO_IDS
        self._finish_reason: str | None = None
        self._refusal = False
        self._usage: Usage | None = None
        self._model: str | None = None
        self._response_id: str | None = None
        self._flushed = False
        self._error: ProviderError | None = None

    @property
    def comments(self) -> int:
        """SSE comment lines (keep-alives) seen so far; they are not events."""
        return self._sse.comments

    @property
    def partial_text(self) -> str:
        """The text streamed so far."""
        return "".join(self._text)

    def feed(self, data: bytes) -> list[StreamChunk]:
        """Decode one network read; return its TEXT chunks."""
        return self._consume(self._sse.decode_data(data))

    def flush(self) -> list[StreamChunk]:
        """At EOF: the chunks of a final event that had no trailing blank line."""
        if self._flushed:
            return []
        self._flushed = True
        return self._consume(self._sse.flush_data())

    def finish(self) -> RoundResult:
        """End of stream: the round's result, or the error that ended it early."""
        self.flush()
        if self._error is not None:
            raise self._error
        if not self.done and self._finish_reason is None:
            raise StreamInterruptedError("stream ended before completion",
                                         partial_text=self.partial_text)
        text = self.partial_text
        calls = tuple(_tool_call(acc, n) for n, acc in enumerate(self._calls))
        finish_reason = "refusal" if self._refusal else self._finish_reason
        message = Message(role="assistant", text=text, tool_calls=calls, usage=self._usage,
                          finish_reason=finish_reason)
        return RoundResult(message=message, usage=self._usage or Usage(),
                           finish_reason=finish_reason, model=self._model,
                           response_id=self._response_id)

    # --- the hot path ------------------------------------------------------------------------

    def _consume(self, payloads: list[str]) -> list[StreamChunk]:
        """Apply data events; return their TEXT chunks (errors wait behind earlier chunks)."""
        if self._error is not None:
            raise self._error
        chunks: list[StreamChunk] = []
        if self.done or not payloads:
            return chunks
        text = self._text
        payload = ""
        error: ProviderError
        try:
            for payload in payloads:
                if payload.startswith("[DONE]"):
                    self.done = True
                    break
                self.events += 1
                try:
                    obj = loads(payload)
                except ValueError:
                    raise _protocol_error(payload) from None
                if type(obj) is not dict:
                    raise _protocol_error(payload)
                if obj.get("error"):
                    raise self._inband_error(obj)
                choices = obj.get("choices")
                if choices:
                    for choice in choices:
                        delta = choice.get("delta")
                        if delta:
                            content = delta.get("content")
                            if (len(delta) == 1 and content and type(content) is str
                                    and not choice.get("index")):  # the common case
                                text.append(content)
                                chunks.append(text_chunk(content))
                            else:
                                self._delta(choice, delta, chunks)
                        reason = choice.get("finish_reason")
                        if reason:
                            self._finish_reason = reason
                usage = obj.get("usage")
                if usage:
                    self._usage = _usage(usage)
                if self._model is None:  # both come with every chunk: take the first's
                    model = obj.get("model")
                    if model and type(model) is str:
                        self._model = model
                    response_id = obj.get("id")
                    if response_id and type(response_id) is str:
                        self._response_id = response_id
        except (AttributeError, TypeError):  # a value of the wrong JSON type
            error = _protocol_error(payload)
        except (APIStatusError, StreamProtocolError) as exc:
            error = exc
        else:
            return chunks
        if not chunks:
            raise error
        self._error = error  # deliver the chunks before it first
        self.done = True
        return chunks

    def _delta(self, choice: dict[str, Any], delta: dict[str, Any],
               chunks: list[StreamChunk]) -> None:
        """A delta other than plain text: refusal, tool-call fragments, other choices."""
        index = choice.get("index") or 0
        if not index:  # text of choice 0 only
            for key in ("content", "refusal"):
                value = delta.get(key)
                if value and type(value) is str:
                    if key == "refusal":
                        self._refusal = True
                    self._text.append(value)
                    chunks.append(text_chunk(value))
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            self._tool_fragments(index, tool_calls)

    def _tool_fragments(self, choice_index: int, fragments: list[Any]) -> None:
        if self._calls is _NO_CALLS:
            self._calls, self._by_key, self._by_id = [], {}, {}
        for fragment in fragments:
            if type(fragment) is not dict:
                continue
            call_id = fragment.get("id") or ""
            index = fragment.get("index")
            acc: _ToolAcc | None
            if type(index) is int:
                key = (choice_index, index)
                acc = self._by_key.get(key)
                if acc is None or (call_id and acc.id and acc.id != call_id):
                    acc = self._new_call(call_id)
                    self._by_key[key] = acc
            elif call_id:
                acc = self._by_id.get(call_id) or self._new_call(call_id)
            else:
                acc = self._calls[-1] if self._calls else self._new_call("")
            if call_id and not acc.id:
                acc.id = call_id
                self._by_id[call_id] = acc
            function = fragment.get("function")
            if type(function) is dict:
                name = function.get("name")
                if name and not acc.name:
                    acc.name = name
                arguments = function.get("arguments")
                if arguments:
                    acc.args.append(arguments if type(arguments) is str else _dumps(arguments))

    def _new_call(self, call_id: str) -> _ToolAcc:
        acc = _ToolAcc(call_id)
        self._calls.append(acc)
        if call_id:
            self._by_id[call_id] = acc
        return acc

    def _inband_error(self, obj: dict[str, Any]) -> APIStatusError:
        message, code, error_type, numeric = extract_error_fields(obj)
        status = numeric if numeric is not None and 400 <= numeric <= 599 else None
        return build_status_error(
            status=status, message=message or "the provider reported an error mid-stream",
            provider=self._provider, body=obj, code=code, error_type=error_type)


def completion_events(obj: Any) -> list[str] | None:
    """A non-streamed ``chat.completion`` object as the data events of its stream: one chunk
    whose deltas carry each choice's whole message, then ``[DONE]`` (``None`` if ``obj`` is
    not a completion)."""
    choices = obj.get("choices") if type(obj) is dict else None
    if type(choices) is not list or obj.get("object") not in (None, "chat.completion"):
        return None
    deltas: list[dict[str, Any]] = []
    for position, choice in enumerate(choices):
        message = choice.get("message")
        if type(message) is not dict:
            return None
        delta = {key: message[key] for key in ("role", "content", "refusal")
                 if message.get(key) is not None}
        calls = message.get("tool_calls")
        if type(calls) is list and calls:
            delta["tool_calls"] = [{**call, "index": index} for index, call in enumerate(calls)
                                   if type(call) is dict]
        deltas.append({"index": choice.get("index", position), "delta": delta,
                       "finish_reason": choice.get("finish_reason")})
    chunk: dict[str, Any] = {"object": "chat.completion.chunk", "choices": deltas}
    chunk.update({key: obj[key] for key in ("id", "model", "created", "usage") if key in obj})
    return [_dumps(chunk), "[DONE]"]


def _tool_call(acc: _ToolAcc, position: int) -> ToolCall:
    raw = "".join(acc.args)
    arguments: dict[str, Any] = {}
    if raw.strip():
        try:
            parsed = loads(raw)
        except ValueError:
            parsed = None
        if type(parsed) is dict:
            arguments = parsed
    return ToolCall(id=acc.id or f"call_{position}", name=acc.name, arguments=arguments,
                    raw_arguments=raw)


def _usage(usage: Any) -> Usage | None:
    if type(usage) is not dict:
        return None
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=_int(prompt.get("cached_tokens")) if type(prompt) is dict else 0,
        reasoning_tokens=(_int(completion.get("reasoning_tokens"))
                          if type(completion) is dict else 0),
    )


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _protocol_error(payload: str) -> StreamProtocolError:
    snippet = payload if len(payload) <= _SNIPPET else payload[:_SNIPPET] + "…"
    return StreamProtocolError(f"expected a JSON object in the data event, got: {snippet!r}")
