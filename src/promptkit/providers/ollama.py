"""Ollama native chat dialect (``POST {base}/api/chat``, streamed as NDJSON).

Pure: builds the request, decodes the stream, maps errors.

Request decisions:

- The base URL may come from ``OLLAMA_HOST``, which may lack a scheme or port
  (:func:`ollama_base_url`); a trailing ``/v1`` or ``/api`` is dropped.
- Tool results go back as ``{"role": "tool", "content", "tool_name", "tool_call_id"}``, one
  message per call in call order; assistant tool calls as ``{"id", "function": {"name",
  "arguments": <object>}}``. Sampling parameters go in ``options`` (``max_tokens`` is
  ``num_predict``). Ollama has no ``tool_choice``: ``"none"`` sends no tools; ``"required"`` and
  a tool name cannot be enforced, so the tools are sent as for ``"auto"`` and the model may
  answer without calling one (the turn then simply ends with its text).

Decoding decisions:

- Each line is one JSON object: ``message.content`` → TEXT (``response`` too, the
  ``/api/generate`` form), ``message.thinking`` → THINKING, ``message.tool_calls`` arrive
  whole and are collected from every line (ids ``call_<n>`` when absent).
- ``done: true`` ends the round: ``done_reason`` is the finish reason (``stop`` becomes
  ``tool_calls`` when the round called tools, as every dialect reports) and
  ``prompt_eval_count`` / ``eval_count`` the usage. EOF before it raises
  :class:`~promptkit.StreamInterruptedError`.
- An ``{"error": "..."}`` line raises the mapped error after the chunks before it
  (``server busy`` → ``OverloadedError``, ``not found`` → ``NotFoundError``, other →
  ``ServerError``). A line that is not JSON raises :class:`~promptkit.StreamProtocolError`
  (lines of the same read before it are lost with it: the shared NDJSON decoder raises
  for the whole read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptkit._errors import (
    APIStatusError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    ProviderError,
    ServerError,
    StreamInterruptedError,
)
from promptkit._json import encode
from promptkit.engine.chunks import StreamChunk, text_chunk
from promptkit.engine.dialect import (
    Endpoint,
    HTTPRequest,
    ModelRequest,
    RoundDecoder,
    RoundResult,
)
from promptkit.engine.messages import Message, ToolCall, Usage
from promptkit.providers._common import (
    DecoderBase,
    dumps,
    int_of,
    protocol_error,
    stop_sequences,
    text_of,
    thinking_chunk,
    tool_call,
    turns,
)
from promptkit.providers._errors_map import (
    build_status_error,
    extract_error_fields,
    status_error_from_body,
)
from promptkit.providers._non_stream import NonStreamDecoder, json_start, media_type
from promptkit.providers._parts import media_parts, ollama_image
from promptkit.providers._response_format import json_schema_of
from promptkit.transport.ndjson import NDJSONDecoder

__all__ = ["OllamaDecoder", "OllamaDialect", "ollama_base_url"]

DEFAULT_HOST = "http://localhost:11434"
_OPTIONS = (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
            ("max_tokens", "num_predict"), ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"), ("seed", "seed"))
# in-band error messages → class (there is no status code mid-stream)
_INBAND = (("server busy", OverloadedError), ("not found", NotFoundError),
           ("does not support", BadRequestError))


def ollama_base_url(host: str | None) -> str:
    """The base URL for an ``OLLAMA_HOST`` value: ``"myhost"`` → ``http://myhost:11434``,
    ``":8080"`` → ``http://localhost:8080``; URLs with a scheme are kept (empty → default)."""
    value = (host or "").strip().rstrip("/")
    if not value:
        return DEFAULT_HOST
    if "://" in value:
        return value
    hostport, slash, path = value.partition("/")
    if hostport.startswith(":"):
        hostport = "localhost" + hostport
    elif ":" not in hostport.rsplit("]", 1)[-1]:
        hostport += ":11434"
    return f"http://{hostport}{slash}{path}"


class OllamaDialect:
    """The Ollama ``/api/chat`` dialect for one endpoint.

    ``think`` sets Ollama's ``think`` flag (``True``/``False`` or a level such as
    ``"high"``); ``keep_alive`` how long the model stays loaded; ``extra_body`` is merged into
    every body last.
    """

    def __init__(self, endpoint: Endpoint, *, name: str = "ollama",
                 think: bool | str | None = None, keep_alive: str | int | None = None,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.think = think
        self.keep_alive = keep_alive
        self.extra_body = extra_body
        base = ollama_base_url(endpoint.base_url)
        for suffix in ("/v1", "/api"):
            base = base.removesuffix(suffix)
        self._url = base + "/api/chat"

    def __repr__(self) -> str:
        return f"OllamaDialect(name={self.name!r}, endpoint={self.endpoint!r})"

    def build_request(self, request: ModelRequest) -> HTTPRequest:
        """The streaming POST for ``request``; the body is compact UTF-8 JSON."""
        headers = {"content-type": "application/json", "accept": "application/x-ndjson"}
        if self.endpoint.api_key:
            headers["authorization"] = f"Bearer {self.endpoint.api_key}"
        headers.update(self.endpoint.headers)
        headers.update(request.extra_headers)
        body: dict[str, Any] = {"model": request.model,
                                "messages": self._messages(request.system, request.messages),
                                "stream": True}
        if request.tools and request.tool_choice != "none":
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": dict(t.parameters)}}
                for t in request.tools]
        params = request.parameters
        options = {theirs: params[ours] for ours, theirs in _OPTIONS
                   if params.get(ours) is not None}
        stop = stop_sequences(params)
        if stop:
            options["stop"] = stop
        if options:
            body["options"] = options
        if self.think is not None:
            body["think"] = self.think
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if request.response_format is not None:
            body["format"] = json_schema_of(request.response_format) or "json"
        if self.extra_body:
            body.update(self.extra_body)
        if request.extra_body:
            body.update(request.extra_body)
        return HTTPRequest(method="POST", url=self._url, headers=headers,
                           body=encode(body))

    def _messages(self, system: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for turn in turns(messages):
            if isinstance(turn, list):
                out.extend({"role": "tool", "content": r.content, "tool_name": r.name,
                            "tool_call_id": r.call_id} for r in turn)
                continue
            item: dict[str, Any] = {"role": turn.role, "content": turn.text}
            if turn.tool_calls:
                item["tool_calls"] = [{"id": c.id, "function": {
                    "name": c.name, "arguments": c.arguments}} for c in turn.tool_calls]
            if turn.role == "user":
                images = [ollama_image(p, self.name) for p in media_parts(turn)]
                if images:
                    item["images"] = images
            out.append(item)
        return out

    def decoder(self, content_type: str | None = None) -> RoundDecoder:
        """A fresh decoder for one reply; ``content_type`` is the reply's (``None``: assume
        a stream). JSON lines are Ollama's stream (a non-streamed reply is one such line);
        any other body is refused by a
        :class:`~promptkit.providers._non_stream.NonStreamDecoder`, quoting its start."""
        stream = OllamaDecoder(provider=self.name)
        if content_type is None or media_type(content_type) == "application/x-ndjson":
            return stream
        return NonStreamDecoder(stream, content_type=content_type, expected="JSON lines",
                                passthrough=json_start, reply=None)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
        """The error for a non-2xx reply (``{"error": "<text>"}``, or any text body)."""
        return status_error_from_body(status, headers, body, self.name)


class OllamaDecoder(DecoderBase):
    """Decodes one streamed ``/api/chat`` reply (implements ``RoundDecoder``)."""

    __slots__ = ("_calls", "_finish", "_lines", "_model", "_usage")

    def __init__(self, *, provider: str = "ollama") -> None:
        super().__init__(provider)
        self._lines = NDJSONDecoder()
        self._calls: list[ToolCall] = []
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._model: str | None = None

    def _frame(self, data: bytes) -> list[Any]:
        return self._lines.decode(data)

    def _frame_end(self) -> list[Any]:
        return self._lines.flush()

    def finish(self) -> RoundResult:
        """End of stream: the round's result, or the error that ended it early."""
        self.flush()
        self._check()
        if not self.done:
            raise StreamInterruptedError("stream ended before the done line",
                                         partial_text=self.partial_text)
        calls = tuple(self._calls)
        reason = self._finish
        if calls and reason in (None, "stop"):
            reason = "tool_calls"
        message = Message(role="assistant", text=self.partial_text, tool_calls=calls,
                          usage=self._usage, finish_reason=reason)
        return RoundResult(message=message, usage=self._usage or Usage(), finish_reason=reason,
                           model=self._model)

    def _consume(self, values: list[Any]) -> list[StreamChunk]:
        chunks: list[StreamChunk] = []
        text = self._text
        value: Any = None
        try:
            for value in values:
                self.events += 1
                if type(value) is not dict:
                    raise protocol_error("expected a JSON object per line", dumps(value))
                if value.get("error"):
                    raise self._inband_error(value)
                message = value.get("message")
                if message:
                    if "thinking" in message or "tool_calls" in message:
                        self._message(message, chunks)
                    content = message.get("content")
                    if content:
                        text.append(text_of(content))
                        chunks.append(text_chunk(content))
                else:
                    content = value.get("response")  # the /api/generate form
                    if content and type(content) is str:
                        text.append(content)
                        chunks.append(text_chunk(content))
                if value.get("done"):
                    self._done(value)
                    break
        except (AttributeError, TypeError):  # a value of the wrong JSON type
            return self._settle(chunks, protocol_error("unexpected Ollama line", dumps(value)))
        except ProviderError as exc:
            return self._settle(chunks, exc)
        return chunks

    def _message(self, message: dict[str, Any], chunks: list[StreamChunk]) -> None:
        thinking = message.get("thinking")
        if thinking:
            chunks.append(thinking_chunk(text_of(thinking)))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = function.get("arguments")
            raw = arguments if isinstance(arguments, str) else dumps(arguments or {})
            call_id = call.get("id") or f"call_{len(self._calls)}"
            self._calls.append(tool_call(str(call_id), str(function.get("name") or ""), raw))

    def _done(self, value: dict[str, Any]) -> None:
        self.done = True
        reason = value.get("done_reason")
        self._finish = reason if isinstance(reason, str) and reason else None
        if "prompt_eval_count" in value or "eval_count" in value:
            self._usage = Usage(input_tokens=int_of(value.get("prompt_eval_count")),
                                output_tokens=int_of(value.get("eval_count")))
        model = value.get("model")
        if isinstance(model, str) and model:
            self._model = model

    def _inband_error(self, value: dict[str, Any]) -> APIStatusError:
        message, code, error_type, _ = extract_error_fields(value)
        lowered = message.lower()
        cls = next((c for phrase, c in _INBAND if phrase in lowered), ServerError)
        return build_status_error(status=None, message=message or "error mid-stream",
                                  provider=self._provider, body=value, code=code,
                                  error_type=error_type, default=cls)
