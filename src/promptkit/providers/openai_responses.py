"""OpenAI Responses API dialect (``POST {base}/responses``, streamed as SSE with named events).

Pure: builds the request, decodes the stream, maps errors (same envelope as Chat
Completions).

Request decisions:

- Stateless by default (``store: false``): the whole history is sent as ``input`` items.
  The system prompt is ``instructions``. Assistant turns become their reasoning items
  (``Message.extra["openai_reasoning"]``, unchanged; with ``store`` off only those carrying
  ``encrypted_content`` can be replayed), then the text as an ``output_text`` message, then
  one ``function_call`` item per call (``call_id`` = the ToolCall id). When reasoning items
  are replayed, the message and call items carry their original item ids
  (``extra["openai_item_ids"]``) so the API can link them. Results are
  ``function_call_output`` items.
- ``include: ["reasoning.encrypted_content"]`` is requested for reasoning models (o-series,
  gpt-5) when ``store`` is off, so their reasoning can be carried to the next round.
- Sampling: ``temperature``, ``top_p`` and ``max_output_tokens`` (from ``max_tokens``); the
  API has no ``stop`` or ``seed``, so those are not sent.
- Function tools are sent with ``strict: false`` (pack schemas are rarely strict-mode
  compatible) unless ``strict_tools`` is set.

Decoding decisions:

- The event kind is read from the data's ``type`` (gateways may rename the ``event:``).
  Unknown events are ignored. The round ends at ``response.completed`` /
  ``response.incomplete``; EOF before a terminal event raises
  :class:`~promptkit.StreamInterruptedError`.
- ``response.output_text.delta`` → TEXT (``output_text.done`` text when no deltas came for
  that item); refusal deltas are text too and make the finish reason ``refusal``;
  reasoning summary and reasoning text deltas → THINKING (a blank line between parts).
- Function calls are keyed by item id from ``output_item.added``; argument deltas are joined,
  and the ``.done`` / ``output_item.done`` arguments are authoritative. Finish reason:
  ``tool_calls`` when calls were made, else ``stop``; ``incomplete`` with
  ``max_output_tokens`` → ``length`` (other reasons pass through).
- ``error`` events (error nested or at top level) and ``response.failed`` raise the mapped
  error (``insufficient_quota`` is a non-retryable ``RateLimitError``).
- Usage from the terminal response: ``input_tokens`` (cached from
  ``input_tokens_details``), ``output_tokens`` (reasoning from ``output_tokens_details``).
- A reply whose content type is not ``text/event-stream`` goes through ``NonStreamDecoder``
  (``providers._non_stream``): a complete non-streamed ``response`` is delivered as if
  streamed, an error body raises its typed error, anything else is a
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
from promptkit.engine.messages import Message, Usage
from promptkit.providers._common import (
    DecoderBase,
    dumps,
    int_of,
    protocol_error,
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
from promptkit.providers._non_stream import NonStreamDecoder, media_type, sse_start
from promptkit.providers._parts import media_parts, responses_part
from promptkit.providers._response_format import json_schema_of, schema_name
from promptkit.transport.sse import SSEDecoder

__all__ = ["OpenAIResponsesDecoder", "OpenAIResponsesDialect"]

REASONING_KEY = "openai_reasoning"
IDS_KEY = "openai_item_ids"
_CHOICES = frozenset(("auto", "required", "none"))
_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")
_THINKING_DELTAS = frozenset(("response.reasoning_summary_text.delta",
                              "response.reasoning_text.delta"))
_INCOMPLETE = {"max_output_tokens": "length"}


def _is_reasoning_model(model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return any(name == p or name.startswith((p + "-", p + ".")) for p in _REASONING_MODELS)


class OpenAIResponsesDialect:
    """The Responses API wire dialect for one endpoint.

    ``store`` keeps responses on OpenAI's side (off by default: every request is
    self-contained). ``reasoning`` is sent as is (e.g. ``{"effort": "low", "summary":
    "auto"}``; a summary setting streams THINKING chunks). ``include_reasoning`` forces
    asking for encrypted reasoning on or off (default: reasoning models, when not storing).
    ``extra_body`` is merged into every body last.
    """

    def __init__(self, endpoint: Endpoint, *, name: str = "openai", store: bool = False,
                 reasoning: Mapping[str, Any] | None = None,
                 include_reasoning: bool | None = None, strict_tools: bool = False,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.store = store
        self.reasoning = reasoning
        self.include_reasoning = include_reasoning
        self.strict_tools = strict_tools
        self.extra_body = extra_body
        self._url = endpoint.base_url.rstrip("/") + "/responses"

    def __repr__(self) -> str:
        return f"OpenAIResponsesDialect(name={self.name!r}, endpoint={self.endpoint!r})"

    def build_request(self, request: ModelRequest) -> HTTPRequest:
        """The streaming POST for ``request``; the body is compact UTF-8 JSON."""
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if self.endpoint.api_key:
            headers["authorization"] = f"Bearer {self.endpoint.api_key}"
        headers.update(self.endpoint.headers)
        headers.update(request.extra_headers)
        instructions, items = self._input(request.system, request.messages)
        body: dict[str, Any] = {"model": request.model}
        if instructions:
            body["instructions"] = instructions
        body["input"] = items
        if request.response_format is not None:
            schema = json_schema_of(request.response_format)
            body["text"] = {"format": {"type": "json_object"} if schema is None else {
                "type": "json_schema", "name": schema_name(schema), "schema": schema}}
        body["stream"] = True
        body["store"] = self.store
        params = request.parameters
        for key in ("temperature", "top_p"):
            if params.get(key) is not None:
                body[key] = params[key]
        if params.get("max_tokens") is not None:
            body["max_output_tokens"] = params["max_tokens"]
        if request.tools:
            body["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                              "parameters": dict(t.parameters), "strict": self.strict_tools}
                             for t in request.tools]
            choice = request.tool_choice
            if choice is not None:
                body["tool_choice"] = (choice if choice in _CHOICES
                                       else {"type": "function", "name": choice})
        if self.reasoning:
            body["reasoning"] = dict(self.reasoning)
        include = self.include_reasoning
        if include is None:
            include = not self.store and _is_reasoning_model(request.model)
        if include:
            body["include"] = ["reasoning.encrypted_content"]
        if self.extra_body:
            body.update(self.extra_body)
        if request.extra_body:
            body.update(request.extra_body)
        return HTTPRequest(method="POST", url=self._url, headers=headers,
                           body=encode(body))

    def _input(self, system: str, messages: Sequence[Message],
               ) -> tuple[str, list[dict[str, Any]]]:
        systems = [system] if system else []
        items: list[dict[str, Any]] = []
        for turn in turns(messages):
            if isinstance(turn, list):
                items.extend({"type": "function_call_output", "call_id": r.call_id,
                              "output": r.content} for r in turn)
            elif turn.role == "assistant":
                items.extend(self._assistant(turn))
            elif turn.role == "system":
                if turn.text:
                    systems.append(turn.text)
            else:
                parts = media_parts(turn)
                if parts:
                    content = [{"type": "input_text", "text": turn.text}] if turn.text else []
                    content.extend(responses_part(p) for p in parts)
                    items.append({"role": "user", "content": content})
                else:
                    items.append({"role": "user", "content": turn.text})
        return "\n\n".join(systems), items

    def _assistant(self, message: Message) -> list[dict[str, Any]]:
        extra = message.extra or {}
        stored = extra.get(REASONING_KEY)
        reasoning = [r for r in stored if isinstance(r, dict) and (
            self.store or r.get("encrypted_content"))] if isinstance(stored, list) else []
        ids = extra.get(IDS_KEY) if reasoning else None
        ids = ids if isinstance(ids, dict) else {}
        items: list[dict[str, Any]] = list(reasoning)
        if message.text:
            item: dict[str, Any] = {"role": "assistant",
                                    "content": [{"type": "output_text", "text": message.text}]}
            if ids.get("message"):
                item["id"] = ids["message"]
            items.append(item)
        for call in message.tool_calls:
            item = {"type": "function_call", "call_id": call.id, "name": call.name,
                    "arguments": call.raw_arguments or dumps(call.arguments)}
            if ids.get(call.id):
                item["id"] = ids[call.id]
            items.append(item)
        return items

    def decoder(self, content_type: str | None = None) -> RoundDecoder:
        """A fresh decoder for one reply; ``content_type`` is the reply's (``None``: assume
        a stream). A reply that is not ``text/event-stream`` is read by a
        :class:`~promptkit.providers._non_stream.NonStreamDecoder` (a ``response`` object is
        delivered as if streamed)."""
        stream = OpenAIResponsesDecoder(provider=self.name)
        if content_type is None or media_type(content_type) == "text/event-stream":
            return stream
        return NonStreamDecoder(stream, content_type=content_type, expected="an SSE stream",
                                passthrough=sse_start, reply=response_events)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
        """The error for a non-2xx reply (OpenAI envelope, or any text / HTML body)."""
        return status_error_from_body(status, headers, body, self.name)


_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete",
             "failed": "response.failed"}


def response_events(obj: Any) -> list[str] | None:
    """A non-streamed ``response`` object as the events of its stream: per output item its
    text, refusal and reasoning-summary deltas and ``output_item.added`` / ``.done``, then the
    terminal event its ``status`` names (``None`` if ``obj`` is not a finished response)."""
    if type(obj) is not dict or obj.get("object") not in (None, "response"):
        return None
    output = obj.get("output")
    terminal = _TERMINAL.get(obj.get("status") or "completed")
    if type(output) is not list or terminal is None:
        return None
    events: list[dict[str, Any]] = []
    for item in output:
        item_id = item.get("id")
        kind = item.get("type")
        if kind == "function_call":
            events.append({"type": "response.output_item.added", "item": item})
        elif kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    events.append({"type": "response.output_text.delta", "item_id": item_id,
                                   "delta": part["text"]})
                elif part.get("type") == "refusal":
                    events.append({"type": "response.refusal.delta", "item_id": item_id,
                                   "delta": part["refusal"]})
        elif kind == "reasoning":
            for index, part in enumerate(item.get("summary") or ()):
                events.append({"type": "response.reasoning_summary_text.delta",
                               "item_id": item_id, "summary_index": index,
                               "delta": part["text"]})
        events.append({"type": "response.output_item.done", "item": item})
    events.append({"type": terminal, "response": obj})
    return [dumps(event) for event in events]


def _untyped(obj: dict[str, Any]) -> str:
    """An event without ``type``: an error envelope (some gateways) or not the API's."""
    if "error" in obj:
        return "error"
    raise KeyError("type")


class _Call:
    """A function call item being streamed."""

    __slots__ = ("args", "call_id", "final", "item_id", "name")

    def __init__(self, item: dict[str, Any]) -> None:
        self.item_id = str(item.get("id") or "")
        self.call_id = str(item.get("call_id") or "")
        self.name = str(item.get("name") or "")
        self.args: list[str] = []
        self.final: str | None = None


class OpenAIResponsesDecoder(DecoderBase):
    """Decodes one streamed Responses reply (implements ``RoundDecoder``)."""

    __slots__ = ("_by_item", "_calls", "_ids", "_model", "_reason", "_reasoning", "_refusal",
                 "_response_id", "_sse", "_streamed", "_thought_key", "_usage")

    def __init__(self, *, provider: str = "openai") -> None:
        super().__init__(provider)
        self._sse = SSEDecoder()
        self._calls: list[_Call] = []
        self._by_item: dict[str, _Call] = {}
        self._reasoning: list[dict[str, Any]] = []
        self._ids: dict[str, str] = {}
        self._streamed: set[Any] = set()  # message item ids that streamed text deltas
        self._thought_key: tuple[Any, Any] | None = None
        self._refusal = False
        self._reason: str | None = None
        self._usage: Usage | None = None
        self._model: str | None = None
        self._response_id: str | None = None

    def _frame(self, data: bytes) -> list[Any]:
        return self._sse.decode_data(data)

    def _frame_end(self) -> list[Any]:
        return self._sse.flush_data()

    def finish(self) -> RoundResult:
        """End of stream: the round's result, or the error that ended it early."""
        self.flush()
        self._check()
        if not self.done:
            raise StreamInterruptedError("stream ended before response.completed",
                                         partial_text=self.partial_text)
        calls = tuple(tool_call(c.call_id or c.item_id or f"call_{n}", c.name,
                                c.final if c.final is not None else "".join(c.args))
                      for n, c in enumerate(self._calls))
        reason = self._reason
        if reason == "stop":
            reason = "refusal" if self._refusal else "tool_calls" if calls else "stop"
        extra: dict[str, Any] = {}
        if self._reasoning:
            extra[REASONING_KEY] = self._reasoning
            if self._ids:
                extra[IDS_KEY] = self._ids
        message = Message(role="assistant", text=self.partial_text, tool_calls=calls,
                          usage=self._usage, finish_reason=reason, extra=extra)
        return RoundResult(message=message, usage=self._usage or Usage(), finish_reason=reason,
                           model=self._model, response_id=self._response_id)

    # --- the hot path ------------------------------------------------------------------------

    def _consume(self, payloads: list[str]) -> list[StreamChunk]:
        chunks: list[StreamChunk] = []
        text = self._text
        payload = ""
        try:
            for payload in payloads:
                self.events += 1
                try:
                    obj = loads(payload)
                except ValueError:
                    raise protocol_error("expected a JSON object in the event", payload
                                         ) from None
                kind = obj.get("type") or _untyped(obj)
                if kind == "response.output_text.delta":
                    piece = text_of(obj["delta"])
                    if piece:
                        text.append(piece)
                        chunks.append(text_chunk(piece))
                        self._streamed.add(obj.get("item_id"))
                elif kind == "response.function_call_arguments.delta":
                    call = self._by_item.get(obj["item_id"])
                    if call is not None:
                        call.args.append(text_of(obj["delta"]))
                elif kind in _THINKING_DELTAS:
                    self._thinking(obj, chunks)
                elif self._event(kind, obj, chunks):
                    self.done = True
                    break
        except (AttributeError, TypeError, KeyError):  # a value of the wrong JSON type
            return self._settle(chunks, protocol_error("unexpected Responses event", payload))
        except ProviderError as exc:
            return self._settle(chunks, exc)
        return chunks

    def _thinking(self, obj: dict[str, Any], chunks: list[StreamChunk]) -> None:
        piece = text_of(obj["delta"])
        if not piece:
            return
        key = (obj.get("item_id"), obj.get("summary_index", obj.get("content_index")))
        if key != self._thought_key:
            if self._thought_key is not None:
                chunks.append(thinking_chunk("\n\n"))
            self._thought_key = key
        chunks.append(thinking_chunk(piece))

    def _event(self, kind: str, obj: dict[str, Any], chunks: list[StreamChunk]) -> bool:
        """Apply a less frequent event; return whether it ends the round."""
        if kind == "response.output_item.added":
            item = obj["item"]
            if item.get("type") == "function_call":
                call = _Call(item)
                self._calls.append(call)
                self._by_item[call.item_id] = call
        elif kind == "response.function_call_arguments.done":
            done = self._by_item.get(obj["item_id"])
            if done is not None and isinstance(obj.get("arguments"), str):
                done.final = obj["arguments"]
        elif kind == "response.output_item.done":
            self._item_done(obj["item"])
        elif kind == "response.refusal.delta":
            self._refusal = True
            self._append(obj["delta"], obj, chunks)
        elif kind == "response.output_text.done":
            if obj.get("item_id") not in self._streamed:  # text that came with no deltas
                self._append(obj.get("text"), obj, chunks)
        elif kind in ("response.completed", "response.incomplete"):
            response = obj["response"]
            self._terminal(response)
            details = response.get("incomplete_details") or {}
            why = str(details.get("reason") or "incomplete")
            self._reason = "stop" if kind == "response.completed" else _INCOMPLETE.get(why, why)
            return True
        elif kind == "response.created":
            self._terminal(obj["response"])
        elif kind in ("error", "response.failed"):
            raise self._inband_error(kind, obj)
        return False

    def _append(self, piece: Any, obj: dict[str, Any], chunks: list[StreamChunk]) -> None:
        if piece and type(piece) is str:
            self._text.append(piece)
            chunks.append(text_chunk(piece))
            self._streamed.add(obj.get("item_id"))

    def _item_done(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "function_call":
            call = self._by_item.get(str(item.get("id") or ""))
            if call is None:
                call = _Call(item)
                self._calls.append(call)
                self._by_item[call.item_id] = call
            if isinstance(item.get("arguments"), str):
                call.final = item["arguments"]
            call.call_id = call.call_id or str(item.get("call_id") or "")
            call.name = call.name or str(item.get("name") or "")
            if call.item_id:
                self._ids[call.call_id or call.item_id] = call.item_id
        elif kind == "reasoning":
            self._reasoning.append(item)
        elif kind == "message" and item.get("id"):
            self._ids["message"] = str(item["id"])

    def _terminal(self, response: dict[str, Any]) -> None:
        model = response.get("model")
        if isinstance(model, str) and model:
            self._model = model
        response_id = response.get("id")
        if isinstance(response_id, str) and response_id:
            self._response_id = response_id
        usage = response.get("usage")
        if isinstance(usage, dict):
            cached = usage.get("input_tokens_details") or {}
            reasoning = usage.get("output_tokens_details") or {}
            self._usage = Usage(input_tokens=int_of(usage.get("input_tokens")),
                                output_tokens=int_of(usage.get("output_tokens")),
                                cached_tokens=int_of(cached.get("cached_tokens")),
                                reasoning_tokens=int_of(reasoning.get("reasoning_tokens")))

    def _inband_error(self, kind: str, obj: dict[str, Any]) -> APIStatusError:
        source: Any = obj
        if kind == "response.failed":
            response = obj.get("response") or {}
            source = {"error": response.get("error") or {}}
        message, code, error_type, _ = extract_error_fields(source)
        if error_type == "error":  # the event's own type, not the error's
            error_type = None
        return build_status_error(status=None, message=message or f"the response failed ({kind})",
                                  provider=self._provider, body=obj, code=code,
                                  error_type=error_type)
