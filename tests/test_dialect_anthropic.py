"""Anthropic Messages dialect: recorded streams, follow-up request bodies and error mapping."""

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
    OverloadedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    StreamProtocolError,
)
from promptkit.engine.chunks import ChunkType, StreamChunk
from promptkit.engine.dialect import Endpoint, ModelRequest, RoundResult, ToolDefinition
from promptkit.engine.messages import Message, ToolCall, ToolResult, Usage
from promptkit.providers.anthropic import AnthropicDecoder, AnthropicDialect

DATA = Path(__file__).parent / "data" / "wire" / "anthropic"
ENDPOINT = Endpoint(base_url="https://api.anthropic.com", api_key="sk-ant-secret")
DIALECT = AnthropicDialect(ENDPOINT)
T, TH = ChunkType.TEXT.value, ChunkType.THINKING.value


@dataclass(frozen=True)
class Expected:
    chunks: list[tuple[str, str]]
    calls: list[tuple[str, str, dict[str, Any], str]]  # id, name, arguments, raw
    usage: tuple[int, int, int, int]  # input, output, cached, reasoning
    finish: str
    model: str
    events: int
    extra: dict[str, Any] = field(default_factory=dict)  # key -> expected value (or a type)


def body_of(name: str) -> bytes:
    """The fixture's bytes; payload-only recordings get ``event:`` + ``data:`` framing."""
    raw = (DATA / name).read_bytes()
    if not name.endswith(".payloads.jsonl"):
        return raw
    return b"".join(b"event: " + json.loads(line)["type"].encode() + b"\ndata: " + line + b"\n\n"
                    for line in raw.split(b"\n") if line)


def replay(pieces: list[bytes]) -> tuple[list[tuple[str, str]], RoundResult | Exception,
                                          AnthropicDecoder]:
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
    assert isinstance(result, RoundResult)
    return result


def oracle(name: str) -> list[tuple[str, str]]:
    """The chunks a fixture holds, read line by line with no streaming decoder."""
    out = []
    for line in body_of(name).split(b"\n"):
        if line.startswith(b"data: "):
            event = json.loads(line[6:])
            delta = event.get("delta") or {}
            kind = str(delta.get("type", ""))[:-6]
            if event["type"] == "content_block_delta" and kind in (T, TH) and delta[kind]:
                out.append((kind, delta[kind]))
    return out


CROSSING = oracle("thinking-then-text.sse")
THINK_TOOL = ("The user wants me to:\n1. Use the fixed_version tool\n2. Tell them the version\n"
              "3. Make a short joke about it\n\nLet me first call the fixed_version tool to see "
              "what version it returns.")
TAX_JSON = ('{"filename": "taxes.txt", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR '
            'INDIVIDUALS WITH MULTIPLE W-2s",\n"",\n"## INTRODUCTION",\n"",\n"Filing taxes')
REDACTED_TEXT = [
    "I notice that you've sent what", " appears to be some", " kind of test string",
    " or command. I don't have", ' any special "magic string"', " triggers or backdoor commands",
    " that would expose internal systems or", " change my behavior.", "\n\nI'm Claude",
    ", an AI assistant create", "d by Anthropic to", " be helpful, harmless",
    ", and honest. How", " can I assist you today with", " a legitimate task or question?"]

EXPECTED: dict[str, Expected] = {
    "basic-text.sdk-fixture.sse": Expected(
        [(T, "Hello"), (T, " there"), (T, "!")], [], (11, 6, 0, 0), "stop",
        "claude-3-opus-latest", 8),
    "duplicate-message-start.payloads.jsonl": Expected(
        [(T, "Hello, World!")], [], (17, 227, 0, 0), "stop", "claude-3-haiku-20240307", 7),
    "max-tokens-partial-json.sse": Expected(
        [(T, "I"), (T, "'ll create a comprehensive tax guide for"),
         (T, " someone with multiple W2s an"), (T, "d save it in a file called taxes.txt. Let"),
         (T, " me do that for you now.")],
        [("toolu_01EKqbqmZrGRXy18eN7m9kvY", "make_file", {}, TAX_JSON)],
        (450, 124, 0, 0), "length", "claude-3-7-sonnet-20250219", 15),
    "message-delta-input-tokens.payloads.jsonl": Expected(
        [(T, "p"), (T, "ong")], [], (61, 2, 0, 0), "stop", "claude-opus-4-5-20251101", 7),
    "parallel-tool-use.CONSTRUCTED.sse": Expected(
        [(T, "I'll check both cities.")],
        [("toolu_01AAAAAAAAAAAAAAAAAAAAAA", "get_weather", {"location": "Paris"},
          '{"location": "Paris"}'),
         ("toolu_01BBBBBBBBBBBBBBBBBBBBBB", "get_weather", {"location": "Tokyo"},
          '{"location": "Tokyo"}')],
        (420, 98, 0, 0), "tool_calls", "claude-sonnet-4-20250514", 17),
    "redacted-thinking.sse": Expected(
        [(T, t) for t in REDACTED_TEXT], [], (92, 189, 0, 0), "stop",
        "claude-sonnet-4-5-20250929", 24, {"anthropic_thinking": list}),
    "refusal-stop-details.sse": Expected(
        [], [], (20, 0, 0, 0), "refusal", "claude-opus-4-7", 5,
        {"finish_message": "This request was refused due to policy."}),
    "text-after-tool-result.sse": Expected(
        [(T, "The version is **"),
         (T, "0.32a0**.\n\nHere's a joke: I guess you could say this version is"),
         (T, ' still in the "alpha" stages of being useful!'), (T, " 😄")],
        [], (617, 41, 0, 0), "stop", "claude-haiku-4-5-20251001", 9),
    "text-haiku-stop-details.sse": Expected(
        [(T, "Hello")], [], (10, 4, 0, 0), "stop", "claude-haiku-4-5-20251001", 6),
    "text.sse": Expected(
        [(T, "-"), (T, " Captain"), (T, "\n- Sc"), (T, "oop")], [], (17, 10, 0, 0), "stop",
        "claude-sonnet-4-5-20250929", 9),
    "thinking-then-tool-use.sse": Expected(
        [(TH, "The user wants me to:\n1"), (TH, THINK_TOOL[len("The user wants me to:\n1"):])],
        [("toolu_01825dXWLSoJwCst1qTsiWdb", "fixed_version", {}, "")],
        (598, 92, 0, 53), "tool_calls", "claude-haiku-4-5-20251001", 12,
        {"anthropic_thinking": list}),
    "thinking-then-text.sse": Expected(
        CROSSING, [], (43, 282, 0, 0), "stop", "claude-sonnet-4-20250514", 117,
        {"anthropic_thinking": list}),
    "tool-use-fragmented.sse": Expected(
        [(T, "I"), (T, "'ll check the current weather in Paris for you.")],
        [("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", {"location": "Paris"},
          '{"location": "Paris"}')],
        (377, 65, 0, 0), "tool_calls", "claude-sonnet-4-20250514", 14),
    "tool-use-no-args.sse": Expected(
        [], [("toolu_01UmKD1vMphVCN9vw8PEMk1q", "fixed_version", {}, "")],
        (563, 37, 0, 0), "tool_calls", "claude-haiku-4-5-20251001", 6),
}
ERRORS: dict[str, tuple[list[tuple[str, str]], type[Exception], str, bool]] = {
    "midstream-overloaded.CONSTRUCTED.sse": ([(T, "-")], OverloadedError, "Overloaded", True),
    "spliced-message-start.payloads.jsonl": (
        [(TH, "I will call the tool.")], StreamProtocolError,
        "a second message started before the first one ended", False),
}
STREAMS = sorted(p.name for p in DATA.iterdir()
                 if p.name.endswith((".sse", ".payloads.jsonl")))


def test_every_stream_fixture_has_expectations() -> None:
    assert set(STREAMS) == set(EXPECTED) | set(ERRORS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream(name: str) -> None:
    want = EXPECTED[name]
    chunks, result, decoder = replay([body_of(name)])
    assert isinstance(result, RoundResult), result
    assert chunks == want.chunks
    text = "".join(t for kind, t in want.chunks if kind == T)
    assert result.message.text == text == decoder.partial_text
    calls = [(c.id, c.name, c.arguments, c.raw_arguments) for c in result.message.tool_calls]
    assert calls == want.calls
    assert result.usage == Usage(input_tokens=want.usage[0], output_tokens=want.usage[1],
                                 cached_tokens=want.usage[2], reasoning_tokens=want.usage[3])
    assert result.message.usage == result.usage
    assert result.finish_reason == result.message.finish_reason == want.finish
    assert result.model == want.model
    assert decoder.events == want.events
    assert set(result.message.extra) == set(want.extra)
    for key, value in want.extra.items():
        assert (isinstance(result.message.extra[key], value) if isinstance(value, type)
                else result.message.extra[key] == value)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_recorded_stream_ending_in_error(name: str) -> None:
    want_chunks, cls, message, retryable = ERRORS[name]
    chunks, error, decoder = replay([body_of(name)])
    assert chunks == want_chunks
    assert type(error) is cls
    assert message in str(error)
    assert getattr(error, "retryable", None) is retryable
    if isinstance(error, APIStatusError):
        assert error.provider == "anthropic"
        assert error.status_code is None
    assert decoder.done


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expectations_agree_with_a_line_by_line_reading(name: str) -> None:
    assert EXPECTED[name].chunks == oracle(name)


def test_thinking_then_text_chunks() -> None:
    kinds = [kind for kind, _ in CROSSING]
    assert kinds == [TH] * 13 + [T] * 95  # the empty thinking_delta gives no chunk
    assert CROSSING[:3] == [(TH, "This"), (TH, " is a straightforward question about"),
                            (TH, " pedest")]
    assert CROSSING[13:15] == [(T, "Here are"), (T, " the")]
    assert CROSSING[-2:] == [(T, " crossing"), (T, " streets.")]
    text = result_of("thinking-then-text.sse").message.text
    assert text.startswith("Here are the basic steps for safely crossing the street:\n\n")
    assert text.endswith("Always prioritize safety over speed when crossing streets.")
    assert len(text) == 1021


def test_thinking_chunks_equal_plain_stream_chunks() -> None:
    chunks = DIALECT.decoder().feed(body_of("thinking-then-tool-use.sse"))
    assert chunks[0] == StreamChunk(type=ChunkType.THINKING, text="The user wants me to:\n1")
    assert chunks[0].tool_call is None and chunks[0].error is None


def test_thinking_blocks_are_kept_with_their_signatures() -> None:
    thinking = result_of("thinking-then-tool-use.sse").message.extra["anthropic_thinking"]
    assert len(thinking) == 1
    assert thinking[0]["type"] == "thinking"
    assert thinking[0]["thinking"] == THINK_TOOL
    assert thinking[0]["signature"].startswith("EoQDCm0IDhgCKkCDzGs2kL2Pgn")
    redacted = result_of("redacted-thinking.sse").message.extra["anthropic_thinking"]
    assert [b["type"] for b in redacted] == ["redacted_thinking"] * 2
    assert redacted[1]["data"].startswith("EtgBCkYIBxgCKkDQfGkwzflEJP5asG3oQfJXcTwJLoRznn8")


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


@pytest.mark.parametrize("name", ["text-after-tool-result.sse", "thinking-then-tool-use.sse"])
def test_one_byte_reads_split_utf8(name: str) -> None:
    body = body_of(name)
    assert replay([body[i:i + 1] for i in range(len(body))])[:2] == replay([body])[:2]


# --- stream edge cases -------------------------------------------------------------------------


def events(*payloads: dict[str, Any]) -> bytes:
    return b"".join(f"event: {p['type']}\ndata: {json.dumps(p)}\n\n".encode() for p in payloads)


START = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x",
                                              "usage": {"input_tokens": 5, "output_tokens": 1}}}
TEXT_BLOCK = {"type": "content_block_start", "index": 0,
              "content_block": {"type": "text", "text": ""}}


def text_delta(text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}


STOP = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 3}}


def test_eof_before_message_delta_is_interrupted() -> None:
    chunks, error, _ = replay([events(START, TEXT_BLOCK, text_delta("Hi"))])
    assert chunks == [(T, "Hi")]
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "Hi"


def test_eof_after_message_delta_without_message_stop_is_clean() -> None:
    _, result, decoder = replay([events(START, TEXT_BLOCK, text_delta("Hi"), STOP)])
    assert isinstance(result, RoundResult)
    assert result.finish_reason == "stop"
    assert not decoder.done


def test_pings_and_unknown_events_are_not_errors() -> None:
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    odd = {"type": "content_block_start", "index": 1,
           "content_block": {"type": "server_tool_use", "id": "x", "name": "web"}}
    decoder = DIALECT.decoder()
    decoder.feed(ping + ping)
    assert decoder.events == 0
    decoder.feed(events(START, {"type": "brand_new_event"}, odd,
                        {"type": "content_block_delta", "index": 7,
                         "delta": {"type": "text_delta", "text": "x"}},
                        {"type": "content_block_delta", "index": 1,
                         "delta": {"type": "citations_delta", "citation": {}}}))
    assert decoder.events == 5
    decoder.feed(events(STOP, {"type": "message_stop"}))
    result = decoder.finish()
    assert result.message.tool_calls == ()
    assert result.message.text == "x"


def test_events_after_message_stop_are_ignored() -> None:
    chunks, result, _ = replay([events(START, TEXT_BLOCK, text_delta("A"), STOP,
                                       {"type": "message_stop"}, text_delta("B"))])
    assert chunks == [(T, "A")]
    assert isinstance(result, RoundResult)


def test_cache_usage_is_normalised() -> None:
    start = {"type": "message_start", "message": {"id": "m", "usage": {
        "input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
        "output_tokens": 1}}}
    _, result, _ = replay([events(start, STOP, {"type": "message_stop"})])
    assert isinstance(result, RoundResult)
    assert result.usage == Usage(input_tokens=130, output_tokens=3, cached_tokens=100)


@pytest.mark.parametrize(("error", "cls", "retryable"), [
    ({"type": "overloaded_error", "message": "Overloaded"}, OverloadedError, True),
    ({"type": "api_error", "message": "boom"}, ServerError, True),
    ({"type": "rate_limit_error", "message": "slow"}, RateLimitError, True),
    ({"type": "invalid_request_error", "message": "prompt is too long: 3 > 2"},
     ContextLengthError, False),
])
def test_error_event_mapping(error: dict[str, Any], cls: type[APIStatusError],
                             retryable: bool) -> None:
    with pytest.raises(cls) as info:
        DIALECT.decoder().feed(events({"type": "error", "error": error}))
    assert info.value.retryable is retryable
    untyped = b"event: error\ndata: " + json.dumps({"error": error}).encode() + b"\n\n"
    with pytest.raises(cls):  # a gateway's envelope without "type"
        DIALECT.decoder().feed(untyped)


def test_error_after_text_in_the_same_read_waits_for_the_text() -> None:
    decoder = DIALECT.decoder()
    body = events(START, TEXT_BLOCK, text_delta("A"),
                  {"type": "error", "error": {"type": "overloaded_error", "message": "O"}})
    assert [c.text for c in decoder.feed(body)] == ["A"]
    assert decoder.done
    with pytest.raises(OverloadedError):
        decoder.feed(b"")
    with pytest.raises(OverloadedError):
        decoder.finish()


@pytest.mark.parametrize("data", [b"not json", b"[1]", b'{"no_type": 1}',
                                  b'{"type":"content_block_delta","index":0,"delta":"x"}',
                                  b'{"type":"content_block_delta","index":0,'
                                  b'"delta":{"type":"text_delta","text":5}}'])
def test_malformed_events_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(StreamProtocolError):
        DIALECT.decoder().feed(b"event: x\ndata: " + data + b"\n\n")


def test_tool_use_with_input_in_the_start_block() -> None:
    block = {"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}}
    _, result, _ = replay([events(START, block, STOP, {"type": "message_stop"})])
    assert isinstance(result, RoundResult)
    assert result.message.tool_calls == (
        ToolCall(id="toolu_1", name="f", arguments={"a": 1}, raw_arguments='{"a":1}'),)


# --- requests ----------------------------------------------------------------------------------


def request(messages: list[Message], **kwargs: Any) -> dict[str, Any]:
    dialect = kwargs.pop("dialect", DIALECT)
    built = dialect.build_request(ModelRequest(messages=messages, **kwargs))
    body: dict[str, Any] = json.loads(built.body)
    return body


def normalise(body: dict[str, Any]) -> dict[str, Any]:
    """Equivalent encodings made equal: string content as one text block, tool-result
    content blocks as their text, absent tool descriptions as ""."""
    body = json.loads(json.dumps(body))
    for message in body["messages"]:
        if isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
        for block in message["content"]:
            if block["type"] == "tool_result" and isinstance(block["content"], list):
                block["content"] = "".join(b["text"] for b in block["content"])
    for tool in body.get("tools") or ():
        tool.setdefault("description", "")
    return body


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def user(text: str) -> Message:
    return Message(role="user", text=text)


def tool(result: ToolResult) -> Message:
    return Message(role="tool", tool_result=result)


FIXED_VERSION = ToolDefinition(name="fixed_version",
                               description="Return a fixed test version string",
                               parameters={"properties": {}, "type": "object"})


def test_text_request_matches_the_recording() -> None:
    body = request([user("Two names for a pet pelican, be brief")], model="claude-sonnet-4-5",
                   system="", parameters={"max_tokens": 8192, "temperature": 1.0})
    assert normalise(body) == normalise(fixture("text.request.json"))


def test_tool_result_followup_from_the_recorded_tool_call() -> None:
    assistant = result_of("tool-use-no-args.sse").message
    messages = [user("Use the fixed_version tool. Then tell me the version and make one short "
                     "joke about it."), assistant,
                tool(ToolResult(call_id=assistant.tool_calls[0].id, name="fixed_version",
                                content="0.32a0"))]
    body = request(messages, model="claude-haiku-4-5-20251001", system="",
                   tools=[FIXED_VERSION], parameters={"max_tokens": 64000, "temperature": 1.0})
    assert normalise(body) == normalise(fixture("tool-result-followup.request.json"))


def test_thinking_followup_sends_the_signed_thinking_block_back() -> None:
    assistant = result_of("thinking-then-tool-use.sse").message
    messages = [user("Use the fixed_version tool. Then tell me the version and make one short "
                     "joke about it. Think about it first."), assistant,
                tool(ToolResult(call_id=assistant.tool_calls[0].id, name="fixed_version",
                                content="0.32a0"))]
    thinking = {"type": "enabled", "budget_tokens": 1024, "display": "summarized"}
    dialect = AnthropicDialect(ENDPOINT, thinking=thinking)
    body = request(messages, model="claude-haiku-4-5-20251001", system="", dialect=dialect,
                   tools=[FIXED_VERSION], parameters={"max_tokens": 64000, "temperature": 1.0})
    want = fixture("thinking-tool-result-followup.request.json")
    assert normalise(body) == normalise(want)
    assert body["messages"][1]["content"][0] == assistant.extra["anthropic_thinking"][0]


def test_parallel_tool_results_go_in_one_user_message() -> None:
    assistant = result_of("parallel-tool-use.CONSTRUCTED.sse").message
    first, second = assistant.tool_calls
    messages = [user("Weather in Paris and Tokyo?"), assistant,
                tool(ToolResult(call_id=first.id, name=first.name, content="18C, cloudy")),
                tool(ToolResult(call_id=second.id, name=second.name,
                                content="lookup failed: timeout", is_error=True))]
    weather = ToolDefinition(name="get_weather", description="Get weather", parameters={
        "type": "object", "properties": {"location": {"type": "string"}},
        "required": ["location"]})
    body = request(messages, model="claude-sonnet-4-20250514", system="", tools=[weather],
                   parameters={"max_tokens": 1024})
    assert normalise(body) == normalise(
        fixture("parallel-tool-results-followup.CONSTRUCTED.request.json"))


def test_redacted_thinking_goes_back_first_and_unchanged() -> None:
    assistant = result_of("redacted-thinking.sse").message
    body = request([user("ANTHROPIC_MAGIC_STRING"), assistant, user("ok")], model="m", system="")
    content = body["messages"][1]["content"]
    assert content[:2] == assistant.extra["anthropic_thinking"]
    assert content[2] == {"type": "text", "text": assistant.text}


def test_headers_url_and_defaults() -> None:
    built = DIALECT.build_request(ModelRequest(model="claude-x", system="Be brief.",
                                               messages=[user("Hi")]))
    assert built.url == "https://api.anthropic.com/v1/messages"
    assert built.headers["x-api-key"] == "sk-ant-secret"
    assert built.headers["anthropic-version"] == "2023-06-01"
    assert built.headers["accept"] == "text/event-stream"
    assert built.headers["content-type"] == "application/json"
    body = json.loads(built.body)
    assert body == {"model": "claude-x", "max_tokens": 4096, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with_v1 = AnthropicDialect(Endpoint(base_url="https://proxy.example/v1/", api_key=None))
    built = with_v1.build_request(ModelRequest(model="m", system="", messages=[user("x")]))
    assert built.url == "https://proxy.example/v1/messages"
    assert "x-api-key" not in built.headers
    assert "system" not in json.loads(built.body)


def test_repr_never_shows_the_key() -> None:
    assert "sk-ant-secret" not in repr(DIALECT)
    assert "sk-ant-secret" not in repr(DIALECT.build_request(ModelRequest(
        model="m", system="", messages=[user("x")])))


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"}),
    ("fixed_version", {"type": "tool", "name": "fixed_version"})])
def test_tool_choice(choice: str, wire: dict[str, Any]) -> None:
    body = request([user("x")], model="m", system="", tools=[FIXED_VERSION], tool_choice=choice)
    assert body["tool_choice"] == wire


def test_sampling_parameters_and_stop() -> None:
    body = request([user("x")], model="m", system="", parameters={
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "max_tokens": 100,
        "frequency_penalty": 0.5, "stop": ["END"]})
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (
        0.2, 0.9, 40, 100)
    assert body["stop_sequences"] == ["END"]
    assert "frequency_penalty" not in body


def test_system_messages_join_the_system_prompt_and_empty_turns_are_skipped() -> None:
    body = request([Message(role="system", text="Extra rule."), user("a"),
                    Message(role="assistant", text=""), user("b")], model="m", system="Base.")
    assert body["system"] == "Base.\n\nExtra rule."
    assert [m["role"] for m in body["messages"]] == ["user", "user"]


def test_images_and_documents() -> None:
    parts = [{"type": "image", "mime_type": "image/png", "data": "iVBOR"},
             {"type": "document", "url": "https://x.test/a.pdf"}]
    body = request([Message(role="user", text="What is this?", extra={"parts": parts})],
                   model="m", system="")
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBOR"}},
        {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
        {"type": "text", "text": "What is this?"}]


def test_extra_body_is_merged_last() -> None:
    dialect = AnthropicDialect(ENDPOINT, extra_body={"metadata": {"user_id": "u"}},
                               default_max_tokens=10)
    body = request([user("x")], model="m", system="", dialect=dialect)
    assert body["metadata"] == {"user_id": "u"}
    assert body["max_tokens"] == 10


# --- error bodies ------------------------------------------------------------------------------

ERROR_BODIES: dict[str, tuple[int, type[APIStatusError], bool, str | None]] = {
    "error-400-invalid-request.json": (400, BadRequestError, False, "req_011Ca7jT9AHpgXgdv8igm4z9"),
    "error-400-prompt-too-long.CONSTRUCTED.json": (400, ContextLengthError, False,
                                                   "req_011CXs6hk18SX5aBxD3jchRc"),
    "error-401-authentication.CONSTRUCTED.json": (401, AuthenticationError, False,
                                                  "req_011CSHoEeqs5C35K2UUqR7Fy"),
    "error-404-not-found.json": (404, NotFoundError, False, "req_011CdufXo8Y2LVfY2veyuQWG"),
    "error-429-rate-limit.CONSTRUCTED.json": (429, RateLimitError, True,
                                              "req_011CSHoEeqs5C35K2UUqR7Fy"),
    "error-500-api-error.json": (500, ServerError, True, "req-from-header"),
    "error-529-overloaded.json": (529, OverloadedError, True, "req_011CZAau32QzxDkriovTaFCB"),
}


def test_every_error_fixture_is_mapped() -> None:
    assert {p.name for p in DATA.glob("error-*.json")} == set(ERROR_BODIES)


@pytest.mark.parametrize("name", sorted(ERROR_BODIES))
def test_error_bodies(name: str) -> None:
    status, cls, retryable, request_id = ERROR_BODIES[name]
    body = (DATA / name).read_bytes()
    error = DIALECT.map_error(status, {"request-id": "req-from-header", "retry-after": "7"}, body)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status_code == status
    assert error.request_id == request_id
    assert error.retry_after == 7.0
    assert error.message == json.loads(body)["error"]["message"]
    assert error.provider == "anthropic"


def test_spend_limit_429_is_not_retryable() -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "limit",
                                       "details": {"error_code": "enforced_spend_limit_reached"}}}
    error = DIALECT.map_error(429, {}, json.dumps(body).encode())
    assert type(error) is RateLimitError
    assert error.retryable is False
    billing = {"type": "error", "error": {"type": "invalid_request_error", "message":
               "Your credit balance is too low to access the Anthropic API."}}
    assert DIALECT.map_error(400, {}, json.dumps(billing).encode()).retryable is False


def test_non_json_error_body() -> None:
    error = DIALECT.map_error(502, {}, b"<html>Bad gateway</html>")
    assert type(error) is ServerError
    assert "HTML" in error.message
    assert DIALECT.map_error(529, {"x-should-retry": "false"}, b"").retryable is False
