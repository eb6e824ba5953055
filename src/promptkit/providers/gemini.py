"""Google Gemini dialect (``POST {base}/models/{model}:streamGenerateContent?alt=sse``).

Pure: builds the request, decodes the stream, maps errors. The key goes in the
``x-goog-api-key`` header, never in the URL.

Request decisions:

- ``contents`` alternate ``user`` / ``model``; the system prompt is ``systemInstruction``.
  One round's tool results become ONE user content of ``functionResponse`` parts
  (``response`` is the result's JSON object, other values wrapped as ``{"result": ...}``,
  failures as ``{"error": ...}``).
- A model turn is replayed from ``Message.extra["gemini_parts"]`` when present: the parts
  exactly as received, with their ``thoughtSignature`` s (Gemini 3 rejects function calls
  without them). The decoder stores them only when a part carries a signature or is of a kind
  that text and tool calls cannot rebuild. Call ids are sent only when Gemini gave them.
- Tool schemas are converted to Gemini's OpenAPI subset (:func:`gemini_schema`); a tool
  without properties has no ``parameters``. ``tool_choice``: auto/required/none →
  ``AUTO``/``ANY``/``NONE``; a tool name → ``ANY`` with ``allowedFunctionNames``.

Decoding decisions:

- Framing by :class:`~promptkit.providers._gemini_wire.GeminiFrames` (CRLF or LF, raw JSON
  error bodies mid-stream, a whole JSON array when ``alt=sse`` was not honoured).
- Text parts → TEXT; ``thought: true`` parts → THINKING; ``functionCall`` parts arrive whole
  (ids ``call_<n>`` when Gemini gives none); Vertex's streamed ``partialArgs`` are assembled.
  Only the first candidate is read.
- The stream has no terminator: EOF after a chunk with a ``finishReason`` (or a prompt
  ``blockReason``) is a clean end, EOF before one raises
  :class:`~promptkit.StreamInterruptedError`. The last ``finishReason`` wins: STOP → ``stop``
  (``tool_calls`` when the round called tools, as every dialect reports), MAX_TOKENS →
  ``length``, anything else lower-cased (``safety``, ``recitation``, ...), with a readable
  explanation in ``extra["finish_message"]``. A blocked prompt gives its ``blockReason``.
- Usage comes from the last ``usageMetadata`` carrying counts (they are repeated and not
  monotonic): input = prompt (+ tool-use prompt), output = candidates + thoughts, cached =
  ``cachedContentTokenCount``, reasoning = ``thoughtsTokenCount``.
- An ``error`` object, framed or raw, raises the mapped error after the chunks before it; a
  JSON object that is not a response raises :class:`~promptkit.StreamProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any
from urllib.parse import quote

from promptkit._errors import APIStatusError, ProviderError, StreamInterruptedError
from promptkit._json import encode, loads
from promptkit.engine.chunks import StreamChunk, text_chunk
from promptkit.engine.dialect import (
    Endpoint,
    HTTPRequest,
    ModelRequest,
    RoundDecoder,
    RoundResult,
    ToolDefinition,
)
from promptkit.engine.messages import Message, ToolResult, Usage
from promptkit.providers._common import (
    DecoderBase,
    dumps,
    int_of,
    protocol_error,
    stop_sequences,
    thinking_chunk,
    tool_call,
    tool_result_value,
    turns,
)
from promptkit.providers._errors_map import (
    build_status_error,
    extract_error_fields,
    fallback_message,
    google_error_details,
    parse_error_body,
)
from promptkit.providers._gemini_wire import GeminiFrames, PartialArgs, gemini_schema
from promptkit.providers._non_stream import NonStreamDecoder, media_type, sse_or_json_start
from promptkit.providers._parts import gemini_part, media_parts
from promptkit.providers._response_format import json_schema_of

__all__ = ["GeminiDecoder", "GeminiDialect"]

PARTS_KEY = "gemini_parts"
_PARAMETERS = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
               ("max_tokens", "maxOutputTokens"), ("presence_penalty", "presencePenalty"),
               ("frequency_penalty", "frequencyPenalty"), ("seed", "seed"))
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_RESPONSE_KEYS = frozenset(("candidates", "promptFeedback", "usageMetadata", "modelVersion",
                            "responseId"))
_REBUILDABLE = frozenset(("text", "thought", "functionCall"))
_THOUGHT = {"text": None, "thought": None}.keys()


class GeminiDialect:
    """The Gemini ``generateContent`` streaming dialect for one endpoint.

    ``thinking`` becomes ``generationConfig.thinkingConfig`` (e.g. ``{"includeThoughts":
    True}`` to stream thought summaries); ``extra_body`` is merged into every body last.
    """

    def __init__(self, endpoint: Endpoint, *, name: str = "gemini",
                 thinking: Mapping[str, Any] | None = None,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.thinking = thinking
        self.extra_body = extra_body
        self._base = endpoint.base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"GeminiDialect(name={self.name!r}, endpoint={self.endpoint!r})"

    def build_request(self, request: ModelRequest) -> HTTPRequest:
        """The streaming POST for ``request``; the body is compact UTF-8 JSON."""
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if self.endpoint.api_key:
            headers["x-goog-api-key"] = self.endpoint.api_key
        headers.update(self.endpoint.headers)
        headers.update(request.extra_headers)
        system, contents = _contents(request.system, request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
            choice = request.tool_choice
            if choice is not None:
                config: dict[str, Any] = {"mode": _MODES.get(choice, "ANY")}
                if choice not in _MODES:
                    config["allowedFunctionNames"] = [choice]
                body["toolConfig"] = {"functionCallingConfig": config}
        generation = _generation_config(request.parameters)
        if request.response_format is not None:
            generation["responseMimeType"] = "application/json"
            schema = json_schema_of(request.response_format)
            if schema is not None:
                generation["responseJsonSchema"] = schema
        if self.thinking:
            generation["thinkingConfig"] = dict(self.thinking)
        if generation:
            body["generationConfig"] = generation
        if self.extra_body:
            body.update(self.extra_body)
        if request.extra_body:
            body.update(request.extra_body)
        model = request.model.removeprefix("models/")
        url = f"{self._base}/models/{quote(model, safe='-._~')}:streamGenerateContent?alt=sse"
        return HTTPRequest(method="POST", url=url, headers=headers, body=encode(body))

    def decoder(self, content_type: str | None = None) -> RoundDecoder:
        """A fresh decoder for one reply; ``content_type`` is the reply's (``None``: assume
        a stream). SSE and JSON (a whole array or object) are both Gemini's stream; any
        other body is refused by a
        :class:`~promptkit.providers._non_stream.NonStreamDecoder`, quoting its start."""
        stream = GeminiDecoder(provider=self.name)
        if content_type is None or media_type(content_type) == "text/event-stream":
            return stream
        return NonStreamDecoder(stream, content_type=content_type,
                                expected="an SSE stream or JSON", passthrough=sse_or_json_start,
                                reply=None)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
        """The error for a non-2xx reply (``{"error": {code, message, status, details}}``,
        possibly wrapped in a one-element array)."""
        parsed = parse_error_body(body)
        return _error(parsed, status, self.name, fallback_message(status, body),
                      headers=headers, raw=body)


def _error(parsed: Any, status: int | None, provider: str, fallback: str, *,
           headers: Mapping[str, str] | None = None, raw: bytes = b"") -> APIStatusError:
    message, _, status_name, numeric = extract_error_fields(parsed)
    envelope = parsed[0] if isinstance(parsed, list) and parsed else parsed
    error = envelope.get("error") if isinstance(envelope, dict) else None
    reason, delay, exhausted = google_error_details(error)
    if status is None and numeric is not None and 400 <= numeric <= 599:
        status = numeric
    body = parsed if parsed is not None else raw[:4000].decode("utf-8", "replace")
    return build_status_error(status=status, message=message or fallback, provider=provider,
                              body=body, headers=headers, code=reason, error_type=status_name,
                              retryable=False if exhausted else None, retry_after=delay)


def _generation_config(params: Mapping[str, Any]) -> dict[str, Any]:
    config = {theirs: params[ours] for ours, theirs in _PARAMETERS
              if params.get(ours) is not None}
    stop = stop_sequences(params)
    if stop:
        config["stopSequences"] = stop
    return config


def _declaration(tool: ToolDefinition) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if tool.parameters.get("properties"):
        declaration["parameters"] = gemini_schema(tool.parameters)
    return declaration


def _contents(system: str, messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    systems = [system] if system else []
    contents: list[dict[str, Any]] = []
    native_ids: set[str] = set()  # call ids Gemini itself gave (the only ones sent back)
    for turn in turns(messages):
        if isinstance(turn, list):
            contents.append({"role": "user",
                             "parts": [_response(r, native_ids) for r in turn]})
        elif turn.role == "assistant":
            parts = _model_parts(turn)
            for part in parts:
                call = part.get("functionCall")
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    native_ids.add(call["id"])
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif turn.role == "system":
            if turn.text:
                systems.append(turn.text)
        else:
            parts = [gemini_part(p) for p in media_parts(turn)]
            if turn.text or not parts:
                parts.append({"text": turn.text})
            contents.append({"role": "user", "parts": parts})
    return "\n\n".join(systems), contents


def _model_parts(message: Message) -> list[dict[str, Any]]:
    stored = message.extra.get(PARTS_KEY) if message.extra else None
    if isinstance(stored, list) and stored:
        return [p for p in stored if isinstance(p, dict)]
    parts: list[dict[str, Any]] = [{"text": message.text}] if message.text else []
    parts.extend({"functionCall": {"name": c.name, "args": c.arguments}}
                 for c in message.tool_calls)
    return parts


def _response(result: ToolResult, native_ids: set[str]) -> dict[str, Any]:
    value = tool_result_value(result)
    if result.is_error:
        value = {"error": value}
    elif not isinstance(value, dict):
        value = {"result": value}
    response: dict[str, Any] = {"name": result.name, "response": value}
    if result.call_id in native_ids:
        response["id"] = result.call_id
    return {"functionResponse": response}


class GeminiDecoder(DecoderBase):
    """Decodes one streamed Gemini reply (implements ``RoundDecoder``)."""

    __slots__ = ("_block", "_calls", "_candidate", "_finish", "_frames", "_model", "_open",
                 "_parts", "_response_id", "_usage")

    def __init__(self, *, provider: str = "gemini") -> None:
        super().__init__(provider)
        self._frames = GeminiFrames()
        self._parts: list[str | dict[str, Any]] = []  # plain text parts as str
        self._calls: list[dict[str, Any]] = []  # the functionCall objects, in order
        self._open: tuple[dict[str, Any], PartialArgs] | None = None  # a streamed call
        self._finish: str | None = None
        self._candidate: dict[str, Any] = {}
        self._block: dict[str, Any] | None = None
        self._usage: dict[str, Any] | None = None
        self._model: str | None = None
        self._response_id: str | None = None

    def _frame(self, data: bytes) -> list[Any]:
        return self._frames.decode(data)

    def _frame_end(self) -> list[Any]:
        return self._frames.flush()

    def finish(self) -> RoundResult:
        """End of stream: the round's result, or the error that ended it early."""
        self.flush()
        self._check()
        self._close_call()
        if self._finish is None and self._block is None:
            raise StreamInterruptedError("stream ended before a finishReason",
                                         partial_text=self.partial_text)
        calls = tuple(tool_call(str(c.get("id") or f"call_{n}"), str(c.get("name") or ""),
                                dumps(c.get("args") or {}))
                      for n, c in enumerate(self._calls))
        extra: dict[str, Any] = {}
        parts = self._replay_parts()
        if any("thoughtSignature" in p or not _REBUILDABLE.intersection(p) for p in parts):
            extra[PARTS_KEY] = parts
        finish_reason, note = self._finish_reason(bool(calls))
        if note:
            extra["finish_message"] = note
        usage = _usage(self._usage)
        message = Message(role="assistant", text=self.partial_text, tool_calls=calls,
                          usage=usage, finish_reason=finish_reason, extra=extra)
        return RoundResult(message=message, usage=usage or Usage(),
                           finish_reason=finish_reason, model=self._model,
                           response_id=self._response_id)

    # --- the hot path ------------------------------------------------------------------------

    def _consume(self, payloads: list[str]) -> list[StreamChunk]:
        chunks: list[StreamChunk] = []
        payload = ""
        try:
            for payload in payloads:
                self.events += 1
                try:
                    obj = loads(payload)
                except ValueError:
                    raise protocol_error("expected JSON in the Gemini stream", payload) from None
                for item in obj if type(obj) is list else (obj,):
                    self._chunk(item, payload, chunks)
        except (AttributeError, TypeError, KeyError):  # a value of the wrong JSON type
            return self._settle(chunks, protocol_error("unexpected Gemini chunk", payload))
        except ProviderError as exc:
            return self._settle(chunks, exc)
        return chunks

    def _chunk(self, obj: dict[str, Any], payload: str, chunks: list[StreamChunk]) -> None:
        candidates = obj.get("candidates")
        if candidates:
            candidate = candidates[0]
            content = candidate.get("content")
            if content:
                text = self._text
                for part in content.get("parts") or ():
                    piece = part.get("text")
                    if type(piece) is str and len(part) == 1:  # the common case
                        if piece:
                            text.append(piece)
                            self._parts.append(piece)
                            chunks.append(text_chunk(piece))
                    else:
                        self._part(part, chunks)
            if candidate.get("finishReason"):
                self._finish = candidate["finishReason"]
                self._candidate = candidate
        elif "error" in obj:
            raise _error(obj, None, self._provider, "the provider reported an error mid-stream")
        elif not _RESPONSE_KEYS.intersection(obj):
            raise protocol_error("expected a Gemini response object", payload)
        feedback = obj.get("promptFeedback")
        if feedback and feedback.get("blockReason"):
            self._block = feedback
        usage = obj.get("usageMetadata")
        if usage and ("promptTokenCount" in usage or "totalTokenCount" in usage):
            self._usage = usage
        model = obj.get("modelVersion")
        if model and type(model) is str:
            self._model = model
        response_id = obj.get("responseId")
        if response_id and type(response_id) is str:
            self._response_id = response_id

    def _part(self, part: dict[str, Any], chunks: list[StreamChunk]) -> None:
        call = part.get("functionCall")
        if call is not None:
            self._call(part, call)
            return
        piece = part.get("text")
        if type(piece) is str and piece:
            if part.get("thought"):
                chunks.append(thinking_chunk(piece))
            else:
                self._text.append(piece)
                chunks.append(text_chunk(piece))
        if piece or len(part) > 1:  # keep signed empty parts, drop bare empty ones
            self._parts.append(part)

    def _call(self, part: dict[str, Any], call: dict[str, Any]) -> None:
        if "partialArgs" in call:
            partial = self._open[1] if self._open else self._open_call(part, {})
            partial.apply(call["partialArgs"])
        elif call.get("willContinue") and call.get("name"):
            self._close_call()
            self._open_call(part, call)
        elif not call.get("name"):  # an empty functionCall closes a streamed call
            self._close_call()
        else:
            self._close_call()
            self._calls.append(call)
            self._parts.append(part)

    def _open_call(self, part: dict[str, Any], call: dict[str, Any]) -> PartialArgs:
        built = {k: v for k, v in call.items() if k != "willContinue"}
        replay = {k: v for k, v in part.items() if k != "functionCall"}
        replay["functionCall"] = built
        self._calls.append(built)
        self._parts.append(replay)
        self._open = (built, PartialArgs())
        return self._open[1]

    def _close_call(self) -> None:
        if self._open is not None:
            built, partial = self._open
            built["args"] = partial.args
            self._open = None

    def _replay_parts(self) -> list[dict[str, Any]]:
        """The model turn as it must be sent back: consecutive unsigned text (and thought)
        parts merged."""
        out: list[dict[str, Any]] = []
        for kind, group in groupby(self._parts, key=_mergeable):
            if kind is None:
                out.extend(p for p in group if isinstance(p, dict))
                continue
            text = "".join(p if isinstance(p, str) else p["text"] for p in group)
            out.append({"text": text} if kind == "text" else {"text": text, "thought": True})
        return out

    def _finish_reason(self, called: bool) -> tuple[str, str | None]:
        if self._finish is None:
            feedback = self._block or {}
            reason = str(feedback.get("blockReason"))
            note = feedback.get("blockReasonMessage") or _note(
                f"Gemini blocked the prompt ({reason})", feedback)
            return reason.lower(), str(note)
        reason = self._finish
        mapped = _FINISH.get(reason) or reason.lower()
        if mapped == "stop":
            return ("tool_calls" if called else "stop"), None
        if mapped == "length":
            return mapped, None
        note = self._candidate.get("finishMessage") or _note(
            f"Gemini stopped the response ({reason})", self._candidate)
        return mapped, str(note)


def _mergeable(part: str | dict[str, Any]) -> str | None:
    """``"text"`` for plain text, ``"thought"`` for unsigned thoughts, else ``None``."""
    if isinstance(part, str):
        return "text"
    return "thought" if part.keys() == _THOUGHT else None


def _note(what: str, holder: Mapping[str, Any]) -> str:
    ratings = holder.get("safetyRatings")
    flagged = [r.get("category") for r in ratings if isinstance(r, dict) and (
        r.get("blocked") or r.get("probability") in ("HIGH", "MEDIUM"))
    ] if isinstance(ratings, list) else []
    return f"{what}: {', '.join(map(str, flagged))}" if flagged else what


def _usage(usage: Mapping[str, Any] | None) -> Usage | None:
    if usage is None:
        return None
    thoughts = int_of(usage.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=int_of(usage.get("promptTokenCount"))
        + int_of(usage.get("toolUsePromptTokenCount")),
        output_tokens=int_of(usage.get("candidatesTokenCount")) + thoughts,
        cached_tokens=int_of(usage.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts)
