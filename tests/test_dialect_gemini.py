"""Gemini dialect: recorded streams, follow-up request bodies and error mapping."""

from __future__ import annotations

import base64
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
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    StreamProtocolError,
)
from promptkit.engine.chunks import ChunkType
from promptkit.engine.dialect import Endpoint, ModelRequest, RoundResult, ToolDefinition
from promptkit.engine.messages import Message, ToolCall, ToolResult, Usage
from promptkit.providers._gemini_wire import gemini_schema
from promptkit.providers.gemini import GeminiDecoder, GeminiDialect

DATA = Path(__file__).parent / "data" / "wire" / "gemini"
ENDPOINT = Endpoint(base_url="https://generativelanguage.googleapis.com/v1beta/",
                    api_key="AIza-secret")
DIALECT = GeminiDialect(ENDPOINT)
T, TH = ChunkType.TEXT.value, ChunkType.THINKING.value


@dataclass(frozen=True)
class Expected:
    chunks: list[tuple[str, str]]
    calls: list[tuple[str, str, dict[str, Any]]]  # id, name, arguments
    usage: tuple[int, int, int, int] | None  # input, output, cached, reasoning
    finish: str
    model: str | None
    events: int
    extra: dict[str, Any] = field(default_factory=dict)  # key -> value, or a type


def body_of(name: str) -> bytes:
    """The fixture's bytes; payload-only recordings get ``data:`` framing."""
    raw = (DATA / name).read_bytes()
    if not name.endswith(".payloads.jsonl"):
        return raw
    return b"".join(b"data: " + line + b"\r\n\r\n" for line in raw.split(b"\n") if line)


def replay(pieces: list[bytes]) -> tuple[list[tuple[str, str]], RoundResult | Exception,
                                          GeminiDecoder]:
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
    _, result, _ = replay([body_of(name)])
    assert isinstance(result, RoundResult), result
    return result


def text_parts(name: str) -> list[str]:
    """The text of every part of a fixture, read event by event with no streaming decoder."""
    out = []
    for line in body_of(name).split(b"\n"):
        if line.startswith(b"data: "):
            for candidate in json.loads(line[6:]).get("candidates", ()):
                out += [p["text"] for p in candidate.get("content", {}).get("parts", ())
                        if p.get("text")]
    return out


THOUGHT = ("**Processing User Requests**\n\nI've started by understanding the user's "
           "instructions. Currently, I'm focusing on the initial steps: reading the specified "
           "theme using the appropriate tool. Next, I plan to tackle reading the screens, "
           "beginning with screen \"A,\" then proceeding with \"B\" and \"C\" in parallel as "
           "instructed.\n\n\n")
CATS = text_parts("unknown-finish-enum.sse")
CJK = text_parts("utf8-cjk.sse")

EXPECTED: dict[str, Expected] = {
    "empty-text-part.sse": Expected([(T, "1")], [], (8, 1, 0, 0), "stop", None, 2),
    "finish-reason-safety.sse": Expected(
        [(T, "<redacted>")], [], (10, 66, 0, 0), "safety", "gemini-1.5-flash", 1,
        {"finish_message": "Gemini stopped the response (SAFETY): HARM_CATEGORY_HARASSMENT"}),
    "function-call-gemini3.payloads.jsonl": Expected(
        [], [("call_0", "weather", {"location": "San Francisco"})], (29, 60, 0, 45),
        "tool_calls", "gemini-3-pro-preview", 2, {"gemini_parts": list}),
    "function-call-second-turn.sse": Expected(
        [], [("call_0", "get_temperature", {"city": "Paris"})], (64, 5, 0, 0), "tool_calls",
        "gemini-2.0-flash", 1),
    "function-call-thought-signature.sse": Expected(
        [], [("call_0", "get_country", {})], (29, 212, 0, 202), "tool_calls",
        "gemini-3-pro-preview", 2, {"gemini_parts": list}),
    "function-call-vertex.sse": Expected(
        [], [("call_0", "getTemperature", {"city": "San Jose"})], None, "tool_calls", None, 1),
    "function-call.sse": Expected(
        [], [("call_0", "get_capital", {"country": "France"})], (52, 5, 0, 0), "tool_calls",
        "gemini-2.0-flash", 1),
    "parallel-function-calls-vertex.sse": Expected(
        [], [("call_0", "get_weather", {"city": "Paris"}),
             ("call_1", "get_weather", {"city": "Tokyo"})],
        (27, 10, 0, 0), "tool_calls", "gemini-2.5-flash", 1),
    "prompt-blocked-safety.sse": Expected(
        [], [], None, "safety", None, 1,
        {"finish_message": "Gemini blocked the prompt (SAFETY): HARM_CATEGORY_HATE_SPEECH"}),
    "recitation-no-content.sse": Expected(
        [(T, "Copyrighted text goes here"), (T, "More copyrighted text")], [], None,
        "recitation", None, 3, {"finish_message": "Gemini stopped the response (RECITATION)"}),
    "streamed-args-parallel-no-args.payloads.jsonl": Expected(
        [(TH, THOUGHT)],
        [("call_0", "read_theme", {}), ("call_1", "read_screen", {"id": "A"}),
         ("call_2", "read_screen", {"id": "B"}), ("call_3", "read_screen", {"id": "C"})],
        (249, 241, 0, 183), "tool_calls", "gemini-3-flash-preview", 15,
        {"gemini_parts": list}),
    "streamed-function-call-args-vertex.payloads.jsonl": Expected(
        [], [("call_0", "getWeather", {"location": "Boston"}),
             ("call_1", "getWeather", {"location": "San Francisco"})],
        (26, 155, 0, 132), "tool_calls", "gemini-3.1-pro-preview", 8, {"gemini_parts": list}),
    "text-after-tool-result.sse": Expected(
        [(T, "The temperature in Paris"), (T, " is 30°C.\n")], [], (79, 12, 0, 0), "stop",
        "gemini-2.0-flash", 2),
    "text-googleai.sse": Expected(
        [(T, "The"), (T, " capital of Wyoming"), (T, " is **Cheyenne**.\n")], [],
        (7, 10, 0, 0), "stop", "gemini-2.0-flash", 3),
    "text.sse": Expected(
        [(T, "The"), (T, " capital of France"), (T, " is Paris.\n")], [], (13, 8, 0, 0),
        "stop", "gemini-2.0-flash-exp", 3),
    "unknown-finish-enum.sse": Expected(
        [(T, t) for t in CATS], [], None, "fake_enum", None, 6,
        {"finish_message": "Gemini stopped the response (FAKE_ENUM)"}),
    "unknown-safety-enum.sse": Expected(
        [(T, t) for t in text_parts("unknown-safety-enum.sse")], [], None, "stop", None, 6),
    "utf8-cjk.sse": Expected([(T, t) for t in CJK], [], None, "stop", None, 4),
}
ERRORS: dict[str, tuple[list[tuple[str, str]], type[Exception], str, int | None, bool]] = {
    "error-mid-stream.sse": ([(T, "First "), (T, "Second ")], ServerError,
                             "The operation was cancelled.", 499, True),
    "invalid-shape.sse": ([], StreamProtocolError, "expected a Gemini response object", None,
                          False),
}
STREAMS = sorted(p.name for p in DATA.iterdir() if p.name.endswith((".sse", ".payloads.jsonl")))


def test_every_stream_fixture_has_expectations() -> None:
    assert set(STREAMS) == set(EXPECTED) | set(ERRORS)


def test_long_text_fixtures() -> None:
    assert len(CATS) == 6
    assert CATS[0] == "**Cats:**\n\n- **Physical Characteristics:**\n  - Size: Cats come"
    assert CJK[0] == "秋风瑟瑟，叶落纷纷，\n西风残照，寒"
    assert len(CJK) == 4


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream(name: str) -> None:
    want = EXPECTED[name]
    chunks, result, decoder = replay([body_of(name)])
    assert isinstance(result, RoundResult), result
    assert chunks == want.chunks
    text = "".join(t for kind, t in want.chunks if kind == T)
    assert result.message.text == text == decoder.partial_text
    calls = [(c.id, c.name, c.arguments) for c in result.message.tool_calls]
    assert calls == want.calls
    for call in result.message.tool_calls:
        assert json.loads(call.raw_arguments) == call.arguments
    if want.usage is None:
        assert result.usage == Usage()
        assert result.message.usage is None
    else:
        assert result.usage == result.message.usage == Usage(
            input_tokens=want.usage[0], output_tokens=want.usage[1],
            cached_tokens=want.usage[2], reasoning_tokens=want.usage[3])
    assert result.finish_reason == result.message.finish_reason == want.finish
    assert result.model == want.model
    assert decoder.events == want.events
    assert not decoder.done  # Gemini has no terminator
    assert set(result.message.extra) == set(want.extra)
    for key, value in want.extra.items():
        assert (isinstance(result.message.extra[key], value) if isinstance(value, type)
                else result.message.extra[key] == value)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_recorded_stream_ending_in_error(name: str) -> None:
    want_chunks, cls, message, status, retryable = ERRORS[name]
    chunks, error, decoder = replay([body_of(name)])
    assert chunks == want_chunks
    assert type(error) is cls
    assert message in str(error)
    assert getattr(error, "status_code", None) == status
    assert getattr(error, "retryable", None) is retryable
    assert decoder.done


def test_replay_parts_keep_signatures_and_streamed_calls() -> None:
    parts = result_of("streamed-function-call-args-vertex.payloads.jsonl").message.extra[
        "gemini_parts"]
    assert [p["functionCall"] for p in parts] == [
        {"name": "getWeather", "args": {"location": "Boston"}},
        {"name": "getWeather", "args": {"location": "San Francisco"}}]
    assert parts[0]["thoughtSignature"].startswith("CiMBjz1rX25KieIB4d4AwFn8")
    assert "thoughtSignature" not in parts[1]
    parts = result_of("streamed-args-parallel-no-args.payloads.jsonl").message.extra[
        "gemini_parts"]
    assert parts[0] == {"text": THOUGHT, "thought": True}
    assert parts[1]["functionCall"] == {"name": "read_theme"}
    assert parts[1]["thoughtSignature"].startswith("AY89a18a8/Loc2wl5oft")
    assert [p["functionCall"].get("args") for p in parts[2:]] == [
        {"id": "A"}, {"id": "B"}, {"id": "C"}]


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_splits_give_identical_chunks_and_result(name: str, data: st.DataObject) -> None:
    body = body_of(name)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=60))))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    whole_chunks, whole, _ = replay([body])
    chunks, outcome, _ = replay(pieces)
    assert chunks == whole_chunks
    if isinstance(whole, Exception):
        assert type(outcome) is type(whole)
        assert str(outcome) == str(whole)
    else:
        assert outcome == whole


@pytest.mark.parametrize("name", ["utf8-cjk.sse", "text-after-tool-result.sse",
                                  "error-mid-stream.sse"])
def test_one_byte_reads(name: str) -> None:
    body = body_of(name)
    chunks, outcome, _ = replay([body[i:i + 1] for i in range(len(body))])
    whole_chunks, whole, _ = replay([body])
    assert chunks == whole_chunks
    assert repr(outcome) == repr(whole)


# --- stream edge cases -------------------------------------------------------------------------


def event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"


def chunk(*parts: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], **extra}


def test_eof_without_finish_reason_is_interrupted() -> None:
    chunks, error, _ = replay([event(chunk({"text": "Hel"}))])
    assert chunks == [(T, "Hel")]
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "Hel"


def test_usage_comes_from_the_last_chunk_that_has_counts() -> None:
    first = {"promptTokenCount": 15, "totalTokenCount": 15}
    last = {"promptTokenCount": 13, "candidatesTokenCount": 8, "thoughtsTokenCount": 4,
            "cachedContentTokenCount": 10, "toolUsePromptTokenCount": 2}
    body = (event(chunk({"text": "a"}, usageMetadata=first))
            + event(chunk({"text": "b"}, finish="MAX_TOKENS", usageMetadata=last))
            + event(chunk(usageMetadata={"trafficType": "ON_DEMAND"})))
    _, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    assert result.usage == Usage(input_tokens=15, output_tokens=12, cached_tokens=10,
                                 reasoning_tokens=4)
    assert result.finish_reason == "length"


def test_thought_parts_are_thinking_and_signed_empty_parts_are_kept() -> None:
    body = (event(chunk({"text": "hmm", "thought": True}, {"text": " ok", "thought": True}))
            + event(chunk({"text": "Hi"}, {"text": " there"}))
            + event(chunk({"text": "", "thoughtSignature": "c2ln"}, finish="STOP")))
    chunks, result, _ = replay([body])
    assert chunks == [(TH, "hmm"), (TH, " ok"), (T, "Hi"), (T, " there")]
    assert isinstance(result, RoundResult)
    assert result.message.text == "Hi there"
    assert result.message.extra["gemini_parts"] == [
        {"text": "hmm ok", "thought": True}, {"text": "Hi there"},
        {"text": "", "thoughtSignature": "c2ln"}]


def test_native_call_ids_are_kept() -> None:
    body = event(chunk({"functionCall": {"id": "fc-1", "name": "f", "args": {"x": 1}}},
                       finish="STOP"))
    _, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    assert result.message.tool_calls == (
        ToolCall(id="fc-1", name="f", arguments={"x": 1}, raw_arguments='{"x":1}'),)


def test_raw_json_array_body_without_alt_sse() -> None:
    body = (DATA / "no-alt-sse-json-array.json").read_bytes()
    chunks, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    assert chunks[0] == (T, "How")
    assert result.finish_reason in ("stop", "tool_calls")
    assert result.model == "gemini-2.5-flash"


def test_raw_unary_response_body() -> None:
    _, result, decoder = replay([(DATA / "parallel-function-calls-unary.json").read_bytes()])
    assert isinstance(result, RoundResult)
    assert [(c.id, c.arguments) for c in result.message.tool_calls] == [
        ("call_0", {"y": 1, "x": 2}), ("call_1", {"y": 3, "x": 4}), ("call_2", {"y": 5, "x": 6})]
    assert decoder.events == 1


def test_array_wrapped_error_mid_stream() -> None:
    body = event(chunk({"text": "x"})) + (DATA / "error-429-array-wrapped.json").read_bytes()
    chunks, error, _ = replay([body])
    assert chunks == [(T, "x")]
    assert type(error) is RateLimitError
    assert error.status_code == 429


def test_error_event_framed_as_data() -> None:
    body = event({"error": {"code": 503, "message": "The model is overloaded.",
                            "status": "UNAVAILABLE"}})
    with pytest.raises(OverloadedError) as info:
        DIALECT.decoder().feed(body)
    assert info.value.retryable is True


@pytest.mark.parametrize("data", [b"data: nope\r\n\r\n", b"data: [1]\r\n\r\n",
                                  b'data: {"candidates": [{"content": {"parts": ["x"]}}]}\n\n',
                                  b"{ unbalanced\n"])
def test_malformed_streams_are_protocol_errors(data: bytes) -> None:
    _, error, _ = replay([data])
    assert isinstance(error, StreamProtocolError)


def test_comments_and_other_fields_are_ignored() -> None:
    body = b": keep-alive\r\nevent: x\r\nid: 1\r\n" + event(chunk({"text": "a"}, finish="STOP"))
    chunks, result, _ = replay([body])
    assert chunks == [(T, "a")]
    assert isinstance(result, RoundResult)


# --- requests ----------------------------------------------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def request(messages: list[Message], dialect: GeminiDialect = DIALECT,
            **kwargs: Any) -> dict[str, Any]:
    built = dialect.build_request(ModelRequest(messages=messages, **kwargs))
    body: dict[str, Any] = json.loads(built.body)
    return body


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.title() for word in rest)


def normalise(value: Any) -> Any:
    """Equivalent encodings made equal: snake_case field names, upper-case schema types,
    the system instruction's (ignored) role, client-generated call ids (the recordings'
    clients invented them; the API gave none), and signatures as bytes (standard or
    URL-safe base64)."""
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for raw_key, raw in value.items():
        key = _camel(raw_key) if raw_key in ("function_call", "function_response") else raw_key
        out[key] = normalise(_equivalent(key, raw))
    if not out.get("generationConfig", True):
        del out["generationConfig"]
    return out


def _equivalent(key: str, item: Any) -> Any:
    if key in ("functionCall", "functionResponse"):
        return {k: v for k, v in item.items() if k != "id"}
    if key == "thoughtSignature":
        return base64.b64decode(item.replace("-", "+").replace("_", "/"))
    if key == "type" and isinstance(item, str):
        return item.upper()
    if key == "systemInstruction":
        return {k: v for k, v in item.items() if k != "role"}
    return item


def user(text: str) -> Message:
    return Message(role="user", text=text)


def result_message(call: ToolCall, content: Any) -> Message:
    return Message(role="tool", tool_result=ToolResult(
        call_id=call.id, name=call.name, content=json.dumps(content)))


CAPITAL = ToolDefinition(name="get_capital", description="Get the capital of a country.",
                         parameters={"type": "object", "required": ["country"], "properties": {
                             "country": {"type": "string", "description": "The country name."}}})
TEMPERATURE = ToolDefinition(name="get_temperature", description="Get the temperature in a city.",
                             parameters={"type": "object", "required": ["city"], "properties": {
                                 "city": {"type": "string", "description": "The city name."}}})
QUESTION = "What is the temperature of the capital of France?"


def test_tool_result_followup_from_the_recorded_call() -> None:
    assistant = result_of("function-call.sse").message
    messages = [user(QUESTION), assistant,
                result_message(assistant.tool_calls[0], {"return_value": "Paris"})]
    body = request(messages, model="gemini-2.0-flash", system="You are a helpful chatbot.",
                   tools=[CAPITAL, TEMPERATURE])
    assert normalise(body) == normalise(fixture("tool-result-followup.request.json"))
    assert "id" not in body["contents"][1]["parts"][0]["functionCall"]  # Gemini gave none


def test_two_tool_rounds_from_the_recorded_calls() -> None:
    first = result_of("function-call.sse").message
    second = result_of("function-call-second-turn.sse").message
    messages = [user(QUESTION), first, result_message(first.tool_calls[0],
                                                      {"return_value": "Paris"}),
                second, result_message(second.tool_calls[0], {"return_value": "30°C"})]
    body = request(messages, model="gemini-2.0-flash", system="You are a helpful chatbot.",
                   tools=[CAPITAL, TEMPERATURE])
    assert normalise(body) == normalise(fixture("tool-results-two-rounds.request.json"))


def test_thought_signature_followup_sends_the_signature_back() -> None:
    assistant = result_of("function-call-thought-signature.sse").message
    messages = [user("What is the capital of the user country? Call the tool"), assistant,
                result_message(assistant.tool_calls[0], {"return_value": "Mexico"})]
    dialect = GeminiDialect(ENDPOINT, extra_body={
        "generationConfig": {"responseModalities": ["TEXT"]}})
    country = ToolDefinition(name="get_country", parameters={
        "type": "object", "properties": {}, "additionalProperties": False})
    body = request(messages, dialect, model="gemini-3-pro-preview", system="", tools=[country])
    want = fixture("thought-signature-followup.request.json")
    # the recording declares the tool with the newer parameters_json_schema field
    assert want["tools"][0]["functionDeclarations"][0]["name"] == "get_country"
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_country"}]}]
    del body["tools"], want["tools"]
    assert normalise(body) == normalise(want)
    sent = body["contents"][1]["parts"][0]["thoughtSignature"]
    assert sent == assistant.extra["gemini_parts"][0]["thoughtSignature"]  # byte for byte


def test_snake_case_followup_with_a_signed_call() -> None:
    signature = fixture("tool-result-followup-snake-case.request.json")["contents"][1][
        "parts"][0]["thoughtSignature"]
    call = ToolCall(id="call_0", name="pelican_name_generator", arguments={})
    assistant = Message(role="assistant", tool_calls=(call,), extra={"gemini_parts": [
        {"functionCall": {"name": "pelican_name_generator", "args": {}},
         "thoughtSignature": signature}]})
    want = fixture("tool-result-followup-snake-case.request.json")
    dialect = GeminiDialect(ENDPOINT, thinking={"includeThoughts": True},
                            extra_body={"safetySettings": want["safetySettings"]})
    pelican = ToolDefinition(name="pelican_name_generator")
    body = request([user("Two names for a pet pelican"), assistant,
                    result_message(call, {"output": "Charles"})], dialect,
                   model="gemini-2.5-flash", system="", tools=[pelican])
    # the recording sends an empty schema and a null description; we send neither
    assert want["tools"] == [{"functionDeclarations": [{
        "name": "pelican_name_generator", "description": None,
        "parameters": {"properties": {}, "type": "object"}}]}]
    assert body["tools"] == [{"functionDeclarations": [{"name": "pelican_name_generator"}]}]
    del body["tools"], want["tools"]
    assert normalise(body) == normalise(want)


def test_parallel_results_go_in_one_user_content() -> None:
    assistant = result_of("parallel-function-calls-vertex.sse").message
    first, second = assistant.tool_calls
    weather = ToolDefinition(name="get_weather", description="Get weather", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    messages = [user("Weather in Paris and Tokyo?"), assistant,
                Message(role="tool", tool_result=ToolResult(call_id=first.id, name=first.name,
                                                            content="18C, cloudy")),
                Message(role="tool", tool_result=ToolResult(call_id=second.id, name=second.name,
                                                            content="24C, clear"))]
    body = request(messages, model="gemini-2.5-flash", system="", tools=[weather])
    assert normalise(body) == normalise(
        fixture("parallel-tool-results-followup.CONSTRUCTED.request.json"))


def test_native_ids_and_errors_in_function_responses() -> None:
    call = ToolCall(id="fc-9", name="f", arguments={})
    assistant = Message(role="assistant", tool_calls=(call,), extra={"gemini_parts": [
        {"functionCall": {"id": "fc-9", "name": "f", "args": {}}, "thoughtSignature": "c2ln"}]})
    failed = Message(role="tool", tool_result=ToolResult(call_id="fc-9", name="f",
                                                         content="Error: boom", is_error=True))
    body = request([user("x"), assistant, failed], model="m", system="")
    assert body["contents"][2]["parts"] == [{"functionResponse": {
        "name": "f", "response": {"error": "Error: boom"}, "id": "fc-9"}}]


def test_headers_url_generation_config_and_tool_config() -> None:
    built = DIALECT.build_request(ModelRequest(
        model="models/gemini-2.5-flash", system="", messages=[user("Hi")], tools=[CAPITAL],
        tool_choice="get_capital", parameters={
            "temperature": 0.3, "top_p": 0.8, "top_k": 20, "max_tokens": 99,
            "presence_penalty": 0.1, "frequency_penalty": 0.2, "stop": "END"}))
    assert built.url == ("https://generativelanguage.googleapis.com/v1beta/models/"
                         "gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert built.headers["x-goog-api-key"] == "AIza-secret"
    assert "AIza" not in built.url and "AIza" not in repr(DIALECT) and "AIza" not in repr(built)
    body = json.loads(built.body)
    assert body["generationConfig"] == {
        "temperature": 0.3, "topP": 0.8, "topK": 20, "maxOutputTokens": 99,
        "presencePenalty": 0.1, "frequencyPenalty": 0.2, "stopSequences": ["END"]}
    assert body["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["get_capital"]}}
    assert "systemInstruction" not in body


@pytest.mark.parametrize(("choice", "mode"), [("auto", "AUTO"), ("required", "ANY"),
                                              ("none", "NONE")])
def test_tool_choice_modes(choice: str, mode: str) -> None:
    body = request([user("x")], model="m", system="", tools=[CAPITAL], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_schema_conversion() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "additionalProperties": False, "$defs": {"Unit": {"enum": ["c", "f"]}},
        "properties": {
            "city": {"type": "string", "format": "uri", "minLength": 1},
            "when": {"type": "string", "format": "date-time"},
            "unit": {"$ref": "#/$defs/Unit", "description": "unit"},
            "days": {"type": ["integer", "null"], "minimum": 1, "exclusiveMaximum": 9},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"const": "fast"},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
            "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}},
                               {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
        },
        "required": ["city", "ghost"],
    }
    assert gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "minLength": 1},
            "when": {"type": "STRING", "format": "date-time"},
            "unit": {"type": "STRING", "enum": ["c", "f"], "description": "unit"},
            "days": {"type": "INTEGER", "nullable": True, "minimum": 1},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "mode": {"type": "STRING", "enum": ["fast"]},
            "either": {"nullable": True, "anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
            "both": {"type": "OBJECT", "properties": {"a": {"type": "STRING"},
                                                      "b": {"type": "INTEGER"}},
                     "required": ["b"]},
        },
        "required": ["city"],
    }


def test_recursive_refs_terminate() -> None:
    schema = {"type": "object", "$defs": {"Node": {"type": "object", "properties": {
        "next": {"$ref": "#/$defs/Node"}}}}, "properties": {"root": {"$ref": "#/$defs/Node"}}}
    assert gemini_schema(schema)["properties"]["root"]["type"] == "OBJECT"


def test_images_and_system_messages() -> None:
    parts = [{"type": "image", "mime_type": "image/png", "data": "iVBOR"},
             {"type": "document", "url": "https://x.test/a.pdf"}]
    body = request([Message(role="system", text="Rule."),
                    Message(role="user", text="Describe", extra={"parts": parts})],
                   model="m", system="Base.")
    assert body["systemInstruction"] == {"parts": [{"text": "Base.\n\nRule."}]}
    assert body["contents"] == [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x.test/a.pdf"}},
        {"text": "Describe"}]}]


# --- error bodies ------------------------------------------------------------------------------

ERROR_BODIES: dict[str, tuple[int, type[APIStatusError], bool, float | None]] = {
    "error-400-api-key-invalid.json": (400, AuthenticationError, False, None),
    "error-400-failed-precondition.json": (400, BadRequestError, False, None),
    "error-400-missing-thought-signature.array-wrapped.json": (400, BadRequestError, False,
                                                               None),
    "error-400-token-count-exceeded.json": (400, ContextLengthError, False, None),
    "error-403-api-not-enabled.json": (403, PermissionDeniedError, False, None),
    "error-404-model-not-found.json": (404, NotFoundError, False, None),
    "error-404-vertex-model-not-found.json": (404, NotFoundError, False, None),
    "error-429-array-wrapped.json": (429, RateLimitError, True, None),
    "error-429-quota-exceeded.json": (429, RateLimitError, False, None),
    "error-429-retry-info.json": (429, RateLimitError, True, 34.4),
    "error-503-overloaded.json": (503, OverloadedError, True, None),
}


def test_every_error_fixture_is_mapped() -> None:
    assert {p.name for p in DATA.glob("error-*.json")} == set(ERROR_BODIES)


@pytest.mark.parametrize("name", sorted(ERROR_BODIES))
def test_error_bodies(name: str) -> None:
    status, cls, retryable, retry_after = ERROR_BODIES[name]
    body = (DATA / name).read_bytes()
    error = DIALECT.map_error(status, {}, body)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.retry_after == retry_after
    assert error.status_code == status
    parsed = json.loads(body)
    envelope = parsed[0] if isinstance(parsed, list) else parsed
    assert error.message == envelope["error"]["message"]
    assert error.provider == "gemini"


def test_retry_after_header_wins_over_the_body() -> None:
    body = (DATA / "error-429-retry-info.json").read_bytes()
    assert DIALECT.map_error(429, {"Retry-After": "2"}, body).retry_after == 2.0


def test_non_json_error_body() -> None:
    error = DIALECT.map_error(500, {}, b"upstream failure")
    assert type(error) is ServerError
    assert error.message == "HTTP 500 Internal Server Error: upstream failure"
