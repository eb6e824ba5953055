"""Anthropic Messages dialect (``POST {base}/v1/messages``, streamed as SSE with named events).

Pure: builds the request, decodes the stream, maps errors.

Request decisions:

- ``max_tokens`` is required by the API: the pack's value, else ``default_max_tokens``.
- The system prompt (and any ``system`` messages) go in the top-level ``system``.
- One round's tool results (consecutive tool messages) become ONE user message of
  ``tool_result`` blocks (``is_error`` on failures). Assistant tool calls are ``tool_use``
  blocks whose ``input`` is the parsed arguments. Thinking and redacted-thinking blocks kept
  in ``Message.extra["anthropic_thinking"]`` go first in the assistant content, unchanged.
- An assistant message with no content is skipped (the API merges the adjacent user turns).

Decoding decisions:

- The event kind is read from the data's ``type`` (always equal to the ``event:`` name).
  ``ping`` is ignored and does not count in ``events``; unknown events and block types are
  ignored. ``message_stop`` ends the round; EOF after a ``message_delta`` with a stop reason
  is a clean end too, EOF before it raises :class:`~promptkit.StreamInterruptedError`.
- ``text_delta`` → TEXT chunks; ``thinking_delta`` → THINKING chunks; signatures and
  ``redacted_thinking`` blocks are kept for ``extra["anthropic_thinking"]``.
- ``input_json_delta`` fragments are joined per block index and parsed once at the end:
  ``""`` means ``{}``; a call cut by ``max_tokens`` keeps its raw text (``arguments={}``).
- A repeated ``message_start`` with the same id is ignored; one with another id while the
  first message is open raises :class:`~promptkit.StreamProtocolError` (a spliced stream).
- Usage: input side from ``message_start`` (``input_tokens`` + cache reads and writes, cache
  reads as ``cached_tokens``), overridden by any input counts in ``message_delta``; output
  from ``message_delta`` (cumulative), thinking tokens as ``reasoning_tokens``.
- ``stop_reason``: end_turn/stop_sequence → ``stop``, max_tokens → ``length``, tool_use →
  ``tool_calls``, refusal → ``refusal`` (``stop_details.explanation`` goes in
  ``extra["finish_message"]``); others pass through.
- An ``error`` event raises the mapped error (``overloaded_error`` → ``OverloadedError``).
- A reply whose content type is not ``text/event-stream`` goes through ``NonStreamDecoder``
  (``providers._non_stream``): a complete non-streamed ``message`` is delivered as if streamed,
  an error body raises its typed error, anything else is a
  :class:`~promptkit.StreamProtocolError` quoting the body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptkit._errors import APIStatusError, ProviderError, StreamInterruptedError
from promptkit._json import encode, loads
from promptkit.engine.chunks import StreamChunk, text_chunk
from promptkit.engine.dialect import (
    Endpoint,
    HTTPRequest,
    ModelRequest,
    RoundDecoder,
    RoundResult,
)
from promptkit.engine.messages import Message, ToolResult, Usage
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
    fallback_message,
    parse_error_body,
)
from promptkit.providers._non_stream import NonStreamDecoder, media_type, sse_start
from promptkit.providers._parts import anthropic_block, media_parts
from promptkit.providers._response_format import schema_instruction
from promptkit.transport.sse import SSEDecoder

__all__ = ["AnthropicDecoder", "AnthropicDialect"]

THINKING_KEY = "anthropic_thinking"
_VERSION = "2023-06-01"
_PARAMETERS = (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"))
_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "tool_use": "tool_calls", "refusal": "refusal",
           "model_context_window_exceeded": "length"}


class AnthropicDialect:
    """The Anthropic Messages wire dialect for one endpoint.

    ``default_max_tokens`` is sent when the pack sets no ``max_tokens``. ``thinking`` (e.g.
    ``{"type": "enabled", "budget_tokens": 1024}``) turns extended thinking on;
    ``extra_body`` is merged into every request body last.
    """

    def __init__(self, endpoint: Endpoint, *, name: str = "anthropic",
                 version: str = _VERSION, default_max_tokens: int = 4096,
                 thinking: Mapping[str, Any] | None = None,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.version = version
        self.default_max_tokens = default_max_tokens
        self.thinking = thinking
        self.extra_body = extra_body
        base = endpoint.base_url.rstrip("/")
        self._url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def __repr__(self) -> str:
        return f"AnthropicDialect(name={self.name!r}, endpoint={self.endpoint!r})"

    def build_request(self, request: ModelRequest) -> HTTPRequest:
        """The streaming POST for ``request``; the body is compact UTF-8 JSON."""
        headers = {"content-type": "application/json", "accept": "text/event-stream",
                   "anthropic-version": self.version}
        if self.endpoint.api_key:
            headers["x-api-key"] = self.endpoint.api_key
        headers.update(self.endpoint.headers)
        headers.update(request.extra_headers)
        system, messages = _messages(request.system, request.messages)
        if request.response_format is not None:  # no native schema mode in this API version
            system = "\n\n".join(p for p in (system, schema_instruction(
                request.response_format)) if p)
        params = request.parameters
        body: dict[str, Any] = {"model": request.model,
                                "max_tokens": params.get("max_tokens") or self.default_max_tokens}
        if system:
            body["system"] = system
        body["messages"] = messages
        body["stream"] = True
        for ours, theirs in _PARAMETERS:
            if params.get(ours) is not None:
                body[theirs] = params[ours]
        stop = stop_sequences(params)
        if stop:
            body["stop_sequences"] = stop
        if request.tools:
            body["tools"] = [_tool(t.name, t.description, t.parameters) for t in request.tools]
            choice = request.tool_choice
            if choice is not None:
                body["tool_choice"] = _CHOICES.get(choice) or {"type": "tool", "name": choice}
        if self.thinking:
            body["thinking"] = dict(self.thinking)
        if self.extra_body:
            body.update(self.extra_body)
        if request.extra_body:
            body.update(request.extra_body)
        return HTTPRequest(method="POST", url=self._url, headers=headers,
                           body=encode(body))

    def decoder(self, content_type: str | None = None) -> RoundDecoder:
        """A fresh decoder for one reply; ``content_type`` is the reply's (``None``: assume
        a stream). A reply that is not ``text/event-stream`` is read by a
        :class:`~promptkit.providers._non_stream.NonStreamDecoder` (a ``message`` object is
        delivered as if streamed)."""
        stream = AnthropicDecoder(provider=self.name)
        if content_type is None or media_type(content_type) == "text/event-stream":
            return stream
        return NonStreamDecoder(stream, content_type=content_type, expected="an SSE stream",
                                passthrough=sse_start, reply=message_events)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
        """The error for a non-2xx reply (``{"type":"error","error":{type,message}}``)."""
        parsed = parse_error_body(body)
        return _error(parsed, status=status, provider=self.name, headers=headers,
                      fallback=fallback_message(status, body), raw=body)


def _error(parsed: Any, *, status: int | None, provider: str, fallback: str,
           headers: Mapping[str, str] | None = None, raw: bytes = b"") -> APIStatusError:
    message, code, error_type, _ = extract_error_fields(parsed)
    request_id = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("request_id"), str):
            request_id = parsed["request_id"]
        error = parsed.get("error")
        details = error.get("details") if isinstance(error, dict) else None
        if isinstance(details, dict) and isinstance(details.get("error_code"), str):
            code = details["error_code"]  # e.g. enforced_spend_limit_reached
    body = parsed if parsed is not None else raw[:4000].decode("utf-8", "replace")
    return build_status_error(status=status, message=message or fallback, provider=provider,
                              body=body, headers=headers, code=code, error_type=error_type,
                              request_id=request_id)


def _tool(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name}
    if description:
        tool["description"] = description
    tool["input_schema"] = dict(parameters)
    return tool


def _messages(system: str, messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    systems = [system] if system else []
    out: list[dict[str, Any]] = []
    for turn in turns(messages):
        if isinstance(turn, list):
            out.append({"role": "user", "content": [_result(r) for r in turn]})
        elif turn.role == "assistant":
            content = _assistant(turn)
            if content:
                out.append({"role": "assistant", "content": content})
        elif turn.role == "system":
            if turn.text:
                systems.append(turn.text)
        else:
            parts = media_parts(turn)
            if parts:
                blocks = [anthropic_block(p) for p in parts]
                if turn.text:
                    blocks.append({"type": "text", "text": turn.text})
                out.append({"role": "user", "content": blocks})
            else:
                out.append({"role": "user", "content": turn.text})
    return "\n\n".join(systems), out


def _assistant(message: Message) -> list[dict[str, Any]]:
    thinking = message.extra.get(THINKING_KEY) if message.extra else None
    content = [b for b in thinking if isinstance(b, dict)] if isinstance(thinking, list) else []
    if message.text:
        content.append({"type": "text", "text": message.text})
    content.extend({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                   for c in message.tool_calls)
    return content


def _result(result: ToolResult) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.call_id,
                             "content": result.content}
    if result.is_error:
        block["is_error"] = True
    return block


class _Block:
    """One content block being streamed: its kind, and what it accumulates."""

    __slots__ = ("id", "kind", "name", "parts", "raw", "signature")

    def __init__(self, kind: str, start: dict[str, Any]) -> None:
        self.kind = kind
        self.id = str(start.get("id") or "")
        self.name = str(start.get("name") or "")
        self.parts: list[str] = []
        self.signature = ""
        self.raw = start


class AnthropicDecoder(DecoderBase):
    """Decodes one streamed Messages reply (implements ``RoundDecoder``)."""

    __slots__ = ("_blocks", "_by_index", "_details", "_message_id", "_model", "_sse",
                 "_stop_reason", "_usage_in", "_usage_out")

    def __init__(self, *, provider: str = "anthropic") -> None:
        super().__init__(provider)
        self._sse = SSEDecoder()
        self._blocks: list[_Block] = []
        self._by_index: dict[int, _Block] = {}
        self._message_id: str | None = None
        self._model: str | None = None
        self._stop_reason: str | None = None
        self._details: Any = None
        self._usage_in: dict[str, Any] = {}
        self._usage_out: dict[str, Any] = {}

    def _frame(self, data: bytes) -> list[Any]:
        return self._sse.decode_data(data)

    def _frame_end(self) -> list[Any]:
        return self._sse.flush_data()

    def finish(self) -> RoundResult:
        """End of stream: the round's result, or the error that ended it early."""
        self.flush()
        self._check()
        if not self.done and self._stop_reason is None:
            raise StreamInterruptedError("stream ended before message_stop",
                                         partial_text=self.partial_text)
        calls = tuple(tool_call(b.id or f"call_{n}", b.name, _arguments(b))
                      for n, b in enumerate(b for b in self._blocks if b.kind == "tool_use"))
        thinking = [_thinking_block(b) for b in self._blocks
                    if b.kind in ("thinking", "redacted_thinking")]
        extra: dict[str, Any] = {THINKING_KEY: thinking} if thinking else {}
        details = self._details
        if isinstance(details, dict) and isinstance(details.get("explanation"), str):
            extra["finish_message"] = details["explanation"]
        reason = self._stop_reason
        finish_reason = _FINISH.get(reason, reason) if reason else None
        usage = self._usage()
        message = Message(role="assistant", text=self.partial_text, tool_calls=calls,
                          usage=usage, finish_reason=finish_reason, extra=extra)
        return RoundResult(message=message, usage=usage or Usage(),
                           finish_reason=finish_reason, model=self._model,
                           response_id=self._message_id or None)

    # --- the hot path ------------------------------------------------------------------------

    def _consume(self, payloads: list[str]) -> list[StreamChunk]:
        chunks: list[StreamChunk] = []
        text = self._text
        payload = ""
        try:
            for payload in payloads:
                try:
                    obj = loads(payload)
                except ValueError:
                    raise protocol_error("expected a JSON object in the event", payload
                                         ) from None
                kind = obj.get("type") or _untyped(obj)
                if kind == "ping":
                    continue
                self.events += 1
                if kind == "content_block_delta":
                    delta = obj["delta"]
                    if delta["type"] == "text_delta":
                        piece = text_of(delta["text"])
                        if piece:
                            text.append(piece)
                            chunks.append(text_chunk(piece))
                    else:
                        self._delta(obj["index"], delta, chunks)
                elif kind == "message_stop":
                    self.done = True
                    break
                else:
                    self._event(kind, obj, chunks)
        except (AttributeError, TypeError, KeyError):  # a value of the wrong JSON type
            return self._settle(chunks, protocol_error("unexpected Anthropic event", payload))
        except ProviderError as exc:
            return self._settle(chunks, exc)
        return chunks

    def _delta(self, index: int, delta: dict[str, Any], chunks: list[StreamChunk]) -> None:
        block = self._by_index.get(index)
        if block is None:
            return
        kind = delta["type"]
        if kind == "input_json_delta":
            block.parts.append(text_of(delta["partial_json"]))
        elif kind == "thinking_delta":
            piece = text_of(delta["thinking"])
            if piece:
                block.parts.append(piece)
                chunks.append(thinking_chunk(piece))
        elif kind == "signature_delta":
            block.signature += text_of(delta["signature"])

    def _event(self, kind: str, obj: dict[str, Any], chunks: list[StreamChunk]) -> None:
        if kind == "content_block_start":
            start = obj["content_block"]
            block = _Block(start["type"], start)
            self._by_index[obj["index"]] = block
            self._blocks.append(block)
            if block.kind == "text" and start.get("text"):  # never seen, but allowed
                self._text.append(start["text"])
                chunks.append(text_chunk(start["text"]))
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            if delta.get("stop_reason"):
                self._stop_reason = delta["stop_reason"]
                self._details = delta.get("stop_details")
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self._usage_out = usage
        elif kind == "message_start":
            self._start(obj["message"])
        elif kind == "error":
            raise _error(obj, status=None, provider=self._provider,
                         fallback="the provider reported an error mid-stream")

    def _start(self, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if self._message_id is not None:
            if message_id == self._message_id:
                return  # a duplicate of the open message
            raise protocol_error("a second message started before the first one ended",
                                 str(message_id))
        self._message_id = str(message_id or "")
        model = message.get("model")
        if isinstance(model, str) and model:
            self._model = model
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._usage_in = usage

    def _usage(self) -> Usage | None:
        start, end = self._usage_in, self._usage_out
        if not start and not end:
            return None

        def pick(key: str) -> int:
            return int_of(end[key]) if key in end else int_of(start.get(key))

        cached = pick("cache_read_input_tokens")
        details = end.get("output_tokens_details")
        return Usage(
            input_tokens=pick("input_tokens") + cached + pick("cache_creation_input_tokens"),
            output_tokens=pick("output_tokens"), cached_tokens=cached,
            reasoning_tokens=int_of(details.get("thinking_tokens"))
            if isinstance(details, dict) else 0)


def message_events(obj: Any) -> list[str] | None:
    """A non-streamed ``message`` object as the events of its stream: ``message_start``, a
    start, delta and stop per content block, ``message_delta`` (stop reason, usage) and
    ``message_stop`` (``None`` if ``obj`` is not a message)."""
    if type(obj) is not dict or obj.get("type") != "message":
        return None
    content = obj.get("content")
    if type(content) is not list:
        return None
    start = {key: value for key, value in obj.items() if key != "content"}
    events: list[dict[str, Any]] = [{"type": "message_start",
                                     "message": {**start, "content": []}}]
    for index, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            events += [_block_start(index, {"type": "text", "text": ""}),
                       _block_delta(index, {"type": "text_delta", "text": block["text"]})]
        elif kind == "thinking":
            events += [_block_start(index, {"type": "thinking", "thinking": ""}),
                       _block_delta(index, {"type": "thinking_delta",
                                            "thinking": block["thinking"]}),
                       _block_delta(index, {"type": "signature_delta",
                                            "signature": block.get("signature") or ""})]
        else:  # tool_use (its whole input in the start), redacted_thinking, others
            events.append(_block_start(index, block))
        events.append({"type": "content_block_stop", "index": index})
    delta = {key: obj.get(key) for key in ("stop_reason", "stop_sequence", "stop_details")
             if key in obj}
    events += [{"type": "message_delta", "delta": delta, "usage": obj.get("usage") or {}},
               {"type": "message_stop"}]
    return [dumps(event) for event in events]


def _block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _untyped(obj: dict[str, Any]) -> str:
    """An event without ``type``: an error envelope (some gateways) or not Anthropic's."""
    if "error" in obj:
        return "error"
    raise KeyError("type")


def _arguments(block: _Block) -> str:
    if block.parts:
        return "".join(block.parts)
    start_input = block.raw.get("input")
    return dumps(start_input) if start_input else ""


def _thinking_block(block: _Block) -> dict[str, Any]:
    if block.kind == "redacted_thinking":
        return dict(block.raw)
    return {"type": "thinking", "thinking": "".join(block.parts),
            "signature": block.signature or str(block.raw.get("signature") or "")}
