"""OpenAI Responses dialect: recorded streams, follow-up request bodies and error mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    NotFoundError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    StreamProtocolError,
)
from promptkit.engine.chunks import ChunkType
from promptkit.engine.dialect import Endpoint, ModelRequest, RoundResult, ToolDefinition
from promptkit.engine.messages import Message, ToolCall, ToolResult, Usage
from promptkit.providers.openai_responses import OpenAIResponsesDecoder, OpenAIResponsesDialect

DATA = Path(__file__).parent / "data" / "wire" / "openai-responses"
ENDPOINT = Endpoint(base_url="https://api.openai.com/v1/", api_key="sk-secret")
DIALECT = OpenAIResponsesDialect(ENDPOINT)
T, TH = ChunkType.TEXT.value, ChunkType.THINKING.value


def framed(lines: list[bytes]) -> bytes:
    """Payload lines with the ``event: <type>`` framing the API always uses."""
    return b"".join(b"event: " + json.loads(line)["type"].encode() + b"\ndata: " + line + b"\n\n"
                    for line in lines if line)


def split_recording() -> list[bytes]:
    """The four streams concatenated in ``reasoning-and-function-calls.payloads.jsonl``."""
    streams: list[list[bytes]] = []
    for line in (DATA / "reasoning-and-function-calls.payloads.jsonl").read_bytes().split(b"\n"):
        if line.startswith(b'{"type":"response.created"'):
            streams.append([])
        if line:
            streams[-1].append(line)
    return [framed(s) for s in streams]


STREAMS: dict[str, bytes] = {
    p.name: p.read_bytes() for p in sorted(DATA.glob("*.sse"))}
STREAMS.update({f"reasoning-and-function-calls.{n}": body
                for n, body in enumerate(split_recording(), 1)})


@dataclass(frozen=True)
class Expected:
    chunks: list[tuple[str, str]]
    calls: list[tuple[str, str, dict[str, Any], str]]
    usage: tuple[int, int, int, int]
    finish: str
    model: str
    events: int
    extra: dict[str, Any] = field(default_factory=dict)


SUMMARY = ["**Calcul", "ating", " step", "-by", "-step", " using", " calculator", "**\n\nI'll",
           " compute", " 12", " plus", " 7", ",", " then", " multiply", " the", " result", " by",
           " 3", ",", " and", " finally", " multiply", " that", " by", " 10", ",", " reporting",
           " the", " final", " product", "."]
CODEX = "gpt-5.1-codex-max"
FC_GPT5 = "fc_0050471a34b36ae60068c97bf19d9c819590eaf42c0edc1042"
FC_CODEX = "fc_01830d662ab3856501693c32151234819091cfca267e98cc5f"
EXPECTED: dict[str, Expected] = {
    "function-call-2025-03.sse": Expected(
        [], [("call_kL0PCQV7M2WMoVX8V8OtYSAL", "get_capital", {"country": "France"},
              '{"country":"France"}')], (255, 16, 0, 0), "tool_calls", "gpt-4o-2024-08-06", 11),
    "function-call-with-reasoning.sse": Expected(
        [], [("call_CWXgs68YprAjp6t0371hiPOI", "final_result", {"result": 6666},
              '{"result":6666}')], (53, 469, 0, 448), "tool_calls", "gpt-5-2025-08-07", 14,
        {"openai_reasoning": list, "openai_item_ids": {
            "call_CWXgs68YprAjp6t0371hiPOI": FC_GPT5}}),
    "parallel-function-calls.CONSTRUCTED.sse": Expected(
        [], [("call_AAAAAAAAAAAAAAAAAAAAAAAA", "get_weather", {"city": "Paris"},
              '{"city":"Paris"}'),
             ("call_BBBBBBBBBBBBBBBBBBBBBBBB", "get_weather", {"city": "Tokyo"},
              '{"city":"Tokyo"}')], (61, 36, 0, 0), "tool_calls", "gpt-4.1-2025-04-14", 19),
    "text-after-tool-result-2025-03.sse": Expected(
        [(T, t) for t in ["The", " capital", " of", " France", " is", " Paris", "."]], [],
        (278, 9, 0, 0), "stop", "gpt-4o-2024-08-06", 15),
    "text-modern.sse": Expected(
        [(T, "stream"), (T, "ed")], [], (21, 3, 0, 0), "stop", "gpt-4.1-2025-04-14", 10),
    "reasoning-and-function-calls.1": Expected(
        [(TH, t) for t in SUMMARY],
        [("call_AB6AaRZ1FYZB2RwS6A5vbdqn", "calculator", {"a": 12, "b": 7, "op": "add"},
          '{"a":12,"b":7,"op":"add"}')], (134, 28, 0, 0), "tool_calls", CODEX, 56,
        {"openai_reasoning": list, "openai_item_ids": {
            "call_AB6AaRZ1FYZB2RwS6A5vbdqn": FC_CODEX}}),
    "reasoning-and-function-calls.2": Expected(
        [], [("call_Q6pW65MUgW9vF59BmItYGos3", "calculator", {"a": 19, "b": 3, "op": "multiply"},
              '{"a":19,"b":3,"op":"multiply"}')], (221, 26, 0, 0), "tool_calls", CODEX, 19),
    "reasoning-and-function-calls.3": Expected(
        [], [("call_Zl5vIMnD7dVAjgU6FkhmiCZh", "calculator", {"a": 57, "b": 10, "op": "multiply"},
              '{"a":57,"b":10,"op":"multiply"}')], (260, 26, 0, 0), "tool_calls", CODEX, 19),
    "reasoning-and-function-calls.4": Expected(
        [(T, t) for t in ["The", " final", " result", " is", " **", "570", "**", "."]], [],
        (299, 12, 0, 0), "stop", CODEX, 16),
}
ERROR_STREAMS = {"error-insufficient-quota.reframed.sse"}


def replay(pieces: list[bytes]) -> tuple[list[tuple[str, str]], RoundResult | Exception,
                                          OpenAIResponsesDecoder]:
    decoder = DIALECT.decoder()
    chunks: list[tuple[str, str]] = []
    outcome: RoundResult | Exception
    try:
        for piece in pieces:
            chunks += [(c.type.value, c.text) for c in decoder.feed(piece)]
        chunks += [(c.type.value, c.text) for c in decoder.flush()]
        outcome = decoder.finish()
    except Exception as exc:
        outcome = exc
    return chunks, outcome, decoder


def result_of(name: str) -> RoundResult:
    _, result, _ = replay([STREAMS[name]])
    assert isinstance(result, RoundResult), result
    return result


def test_every_stream_fixture_has_expectations() -> None:
    assert set(STREAMS) == set(EXPECTED) | ERROR_STREAMS
    assert len(split_recording()) == 4


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream(name: str) -> None:
    want = EXPECTED[name]
    chunks, result, decoder = replay([STREAMS[name]])
    assert isinstance(result, RoundResult), result
    assert chunks == want.chunks
    text = "".join(t for kind, t in want.chunks if kind == T)
    assert result.message.text == text == decoder.partial_text
    calls = [(c.id, c.name, c.arguments, c.raw_arguments) for c in result.message.tool_calls]
    assert calls == want.calls
    assert result.usage == result.message.usage == Usage(
        input_tokens=want.usage[0], output_tokens=want.usage[1], cached_tokens=want.usage[2],
        reasoning_tokens=want.usage[3])
    assert result.finish_reason == result.message.finish_reason == want.finish
    assert result.model == want.model
    assert decoder.events == want.events
    assert decoder.done
    assert set(result.message.extra) == set(want.extra)
    for key, value in want.extra.items():
        assert (isinstance(result.message.extra[key], value) if isinstance(value, type)
                else result.message.extra[key] == value)


def test_reasoning_items_are_kept_unchanged() -> None:
    reasoning = result_of("function-call-with-reasoning.sse").message.extra["openai_reasoning"]
    assert reasoning == [{"id": "rs_0050471a34b36ae60068c97bac4dcc819595fd0f80d6b3c405",
                          "type": "reasoning", "encrypted_content": reasoning[0][
                              "encrypted_content"], "summary": []}]
    assert reasoning[0]["encrypted_content"].startswith("gAAAAABoyXvxI6jwG5j6rvTGC7PD6JN5758K")
    summary = result_of("reasoning-and-function-calls.1").message.extra["openai_reasoning"][0]
    assert summary["summary"][0]["text"] == "".join(SUMMARY)


def test_insufficient_quota_error_stream() -> None:
    chunks, error, decoder = replay([STREAMS["error-insufficient-quota.reframed.sse"]])
    assert chunks == []
    assert type(error) is RateLimitError
    assert error.retryable is False
    assert error.code == "insufficient_quota"
    assert error.message.startswith("You exceeded your current quota")
    assert decoder.events == 3


@pytest.mark.parametrize("name", sorted(STREAMS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_splits_give_identical_chunks_and_result(name: str, data: st.DataObject) -> None:
    body = STREAMS[name]
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=60))))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    whole_chunks, whole, _ = replay([body])
    chunks, outcome, _ = replay(pieces)
    assert chunks == whole_chunks
    assert repr(outcome) == repr(whole)
    if not isinstance(whole, Exception):
        assert outcome == whole


def test_one_byte_reads() -> None:
    body = STREAMS["text-modern.sse"]
    chunks, result, _ = replay([body[i:i + 1] for i in range(len(body))])
    assert chunks == EXPECTED["text-modern.sse"].chunks
    assert result == result_of("text-modern.sse")


# --- stream edge cases -------------------------------------------------------------------------


def events(*payloads: dict[str, Any]) -> bytes:
    return b"".join(f"event: {p.get('type', 'error')}\ndata: {json.dumps(p)}\n\n".encode()
                    for p in payloads)


def completed(**response: Any) -> dict[str, Any]:
    return {"type": "response.completed", "response": {"status": "completed", **response}}


def delta(text: str, item: str = "msg_1") -> dict[str, Any]:
    return {"type": "response.output_text.delta", "item_id": item, "delta": text}


def test_eof_before_a_terminal_event_is_interrupted() -> None:
    chunks, error, _ = replay([events(delta("Hi"))])
    assert chunks == [(T, "Hi")]
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "Hi"


def test_incomplete_response_is_a_length_finish() -> None:
    body = events(delta("Hel"), {"type": "response.incomplete", "response": {
        "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 5, "output_tokens": 1}}})
    _, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    assert result.finish_reason == "length"
    assert result.usage == Usage(input_tokens=5, output_tokens=1)


def test_text_done_without_deltas_and_refusals() -> None:
    body = events({"type": "response.output_text.done", "item_id": "m1", "text": "Whole"},
                  delta("x", "m2"),
                  {"type": "response.output_text.done", "item_id": "m2", "text": "x"},
                  completed())
    chunks, result, _ = replay([body])
    assert chunks == [(T, "Whole"), (T, "x")]
    refusal = events({"type": "response.refusal.delta", "item_id": "m", "delta": "No."},
                     completed())
    chunks, result, _ = replay([refusal])
    assert chunks == [(T, "No.")]
    assert isinstance(result, RoundResult)
    assert result.finish_reason == "refusal"


def test_reasoning_parts_are_separated() -> None:
    body = events(
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs", "summary_index": 0,
         "delta": "A"},
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs", "summary_index": 1,
         "delta": "B"},
        {"type": "response.reasoning_text.delta", "item_id": "rs2", "content_index": 0,
         "delta": "C"}, completed())
    chunks, _, _ = replay([body])
    assert chunks == [(TH, "A"), (TH, "\n\n"), (TH, "B"), (TH, "\n\n"), (TH, "C")]


@pytest.mark.parametrize(("event", "cls", "retryable"), [
    ({"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": None},
     RateLimitError, True),
    ({"type": "error", "error": {"type": "server_error", "code": "server_error",
                                 "message": "oops"}}, ServerError, True),
    ({"type": "response.failed", "response": {"status": "failed", "error": {
        "code": "context_length_exceeded", "message": "too long"}}}, ContextLengthError, False),
    ({"type": "response.failed", "response": {"status": "failed", "error": None}},
     ServerError, True),
    ({"error": {"message": "upstream said no", "code": "invalid_api_key"}},
     AuthenticationError, False),
])
def test_inband_errors(event: dict[str, Any], cls: type[APIStatusError], retryable: bool) -> None:
    with pytest.raises(cls) as info:
        DIALECT.decoder().feed(events(event))
    assert type(info.value) is cls
    assert info.value.retryable is retryable


@pytest.mark.parametrize("data", [b"nope", b"[]", b'{"no_type": 1}',
                                  b'{"type":"response.output_item.added","item":"x"}',
                                  b'{"type":"response.output_text.delta","delta":["x"]}'])
def test_malformed_events_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(StreamProtocolError):
        DIALECT.decoder().feed(b"event: x\ndata: " + data + b"\n\n")


def test_unknown_events_are_ignored() -> None:
    body = events({"type": "response.web_search_call.searching", "item_id": "ws"},
                  {"type": "response.output_text.annotation.added", "annotation": {}},
                  delta("ok"), completed(model="gpt-x"))
    chunks, result, decoder = replay([body])
    assert chunks == [(T, "ok")]
    assert isinstance(result, RoundResult)
    assert result.model == "gpt-x"
    assert decoder.events == 4


# --- requests ----------------------------------------------------------------------------------


def request(messages: list[Message], dialect: OpenAIResponsesDialect = DIALECT,
            **kwargs: Any) -> dict[str, Any]:
    built = dialect.build_request(ModelRequest(messages=messages, **kwargs))
    body: dict[str, Any] = json.loads(built.body)
    return body


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def user(text: str) -> Message:
    return Message(role="user", text=text)


STRICT = OpenAIResponsesDialect(ENDPOINT, strict_tools=True)
WEATHER = ToolDefinition(name="get_weather", description="Get weather", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False})


def test_parallel_followup_from_the_recorded_calls() -> None:
    assistant = result_of("parallel-function-calls.CONSTRUCTED.sse").message
    first, second = assistant.tool_calls
    messages = [user("Weather in Paris and Tokyo?"), assistant,
                Message(role="tool", tool_result=ToolResult(call_id=first.id, name=first.name,
                                                            content="18C, cloudy")),
                Message(role="tool", tool_result=ToolResult(call_id=second.id, name=second.name,
                                                            content="24C, clear"))]
    body = request(messages, STRICT, model="gpt-4.1", system="", tools=[WEATHER])
    assert body.pop("store") is False
    assert body == fixture("parallel-tool-results-followup.CONSTRUCTED.request.json")


def test_followup_matches_the_2025_recording() -> None:
    # that client sent the item id (fc_...) as call_id; an equivalent history does the same
    call = ToolCall(id="fc_67e554a1de488191af0831d35cbe082e0794405d35281ae2", name="get_capital",
                    arguments={"country": "France"}, raw_arguments='{"country":"France"}')
    messages = [user("What is the capital of France?"),
                Message(role="assistant", tool_calls=(call,)),
                Message(role="tool", tool_result=ToolResult(call_id=call.id, name=call.name,
                                                            content="Paris"))]
    capital = ToolDefinition(name="get_capital", parameters={
        "additionalProperties": False, "properties": {"country": {"type": "string"}},
        "required": ["country"], "type": "object"})
    body = request(messages, STRICT, model="gpt-4o", system="", tools=[capital],
                   tool_choice="auto")
    want = fixture("tool-result-followup.request.json")
    assert want.pop("instructions") == ""  # we leave an empty system prompt out
    assert body.pop("store") is False
    assert body == want


def test_first_request_of_the_reasoning_recording() -> None:
    dialect = OpenAIResponsesDialect(ENDPOINT, strict_tools=True,
                                     reasoning={"effort": "low", "summary": None},
                                     extra_body={"service_tier": "flex"})
    final = ToolDefinition(name="final_result",
                           description="The final response which ends this conversation",
                           parameters={"additionalProperties": False, "properties": {
                               "result": {"type": "integer"}}, "required": ["result"],
                               "type": "object"})
    body = request([user("Calculate 100 * 200 / 3")], dialect, model="gpt-5", system="",
                   tools=[final], tool_choice="required")
    assert body.pop("store") is False
    assert without_nulls(body) == without_nulls(
        fixture("function-call-with-reasoning.request.json"))


def test_reasoning_items_and_item_ids_go_back_before_the_call() -> None:
    assistant = result_of("function-call-with-reasoning.sse").message
    call = assistant.tool_calls[0]
    messages = [user("Calculate 100 * 200 / 3"), assistant,
                Message(role="tool", tool_result=ToolResult(call_id=call.id, name=call.name,
                                                            content='{"ok": true}'))]
    body = request(messages, model="gpt-5", system="Be exact.")
    assert body["instructions"] == "Be exact."
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["input"][1] == assistant.extra["openai_reasoning"][0]
    assert body["input"][2:] == [
        {"type": "function_call", "call_id": "call_CWXgs68YprAjp6t0371hiPOI",
         "name": "final_result", "arguments": '{"result":6666}',
         "id": FC_GPT5},
        {"type": "function_call_output", "call_id": "call_CWXgs68YprAjp6t0371hiPOI",
         "output": '{"ok": true}'}]


def test_reasoning_without_encrypted_content_is_only_replayed_when_stored() -> None:
    item = {"id": "rs_1", "type": "reasoning", "summary": []}
    assistant = Message(role="assistant", text="Hi", extra={
        "openai_reasoning": [item], "openai_item_ids": {"message": "msg_1"}})
    body = request([user("x"), assistant, user("y")], model="gpt-4.1", system="")
    assert body["input"][1] == {"role": "assistant",
                                "content": [{"type": "output_text", "text": "Hi"}]}
    assert "include" not in body
    stored = OpenAIResponsesDialect(ENDPOINT, store=True)
    body = request([user("x"), assistant, user("y")], stored, model="o3", system="")
    assert body["input"][1:3] == [item, {"role": "assistant", "id": "msg_1",
                                         "content": [{"type": "output_text", "text": "Hi"}]}]
    assert body["store"] is True
    assert "include" not in body


def test_headers_parameters_and_tool_choice() -> None:
    built = DIALECT.build_request(ModelRequest(
        model="gpt-4.1", system="", messages=[user("x")], tools=[WEATHER],
        tool_choice="get_weather", parameters={"temperature": 0.5, "top_p": 0.9,
                                               "max_tokens": 64, "frequency_penalty": 1}))
    assert built.url == "https://api.openai.com/v1/responses"
    assert built.headers["authorization"] == "Bearer sk-secret"
    assert "sk-secret" not in repr(DIALECT) and "sk-secret" not in repr(built)
    body = json.loads(built.body)
    assert (body["temperature"], body["top_p"], body["max_output_tokens"]) == (0.5, 0.9, 64)
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["tools"][0]["strict"] is False
    assert "frequency_penalty" not in body


def test_images_and_documents() -> None:
    parts = [{"type": "image", "url": "https://x.test/cat.png"},
             {"type": "document", "mime_type": "application/pdf", "data": "JVBER",
              "name": "a.pdf"}]
    body = request([Message(role="user", text="Look", extra={"parts": parts})], model="m",
                   system="")
    assert body["input"] == [{"role": "user", "content": [
        {"type": "input_text", "text": "Look"},
        {"type": "input_image", "image_url": "https://x.test/cat.png"},
        {"type": "input_file", "filename": "a.pdf",
         "file_data": "data:application/pdf;base64,JVBER"}]}]


# --- error bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cls"), [("error-400-invalid-temperature.json", BadRequestError),
                                           ("error-400-model-not-found.json", NotFoundError)])
def test_error_bodies(name: str, cls: type[APIStatusError]) -> None:
    body = (DATA / name).read_bytes()
    error = DIALECT.map_error(400, {"x-request-id": "req_1"}, body)
    assert type(error) is cls
    assert error.retryable is False
    assert error.request_id == "req_1"
    assert error.message == json.loads(body)["error"]["message"]


def test_every_error_fixture_is_mapped() -> None:
    assert {p.name for p in DATA.glob("error-*.json")} == {
        "error-400-invalid-temperature.json", "error-400-model-not-found.json"}


def test_quota_429_is_not_retryable() -> None:
    body = {"error": {"message": "You exceeded your current quota, please check your plan and "
                      "billing details.", "type": "insufficient_quota",
                      "code": "insufficient_quota"}}
    error = DIALECT.map_error(429, {"retry-after": "1"}, json.dumps(body).encode())
    assert type(error) is RateLimitError
    assert error.retryable is False
