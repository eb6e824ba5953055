"""OpenAI Chat Completions dialect: recorded streams, request bodies and error mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import format_datetime
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit._chunks import ChunkType
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
from promptkit._messages import Message, ToolCall, ToolResult, Usage
from promptkit.providers._base import Endpoint, ModelRequest, RoundResult, ToolDefinition
from promptkit.providers._errors_map import parse_retry_after
from promptkit.providers.openai_chat import OpenAIChatDecoder, OpenAIChatDialect

DATA = Path(__file__).parent / "data" / "wire" / "openai-chat"
DIALECT = OpenAIChatDialect(Endpoint(base_url="https://api.openai.com/v1/", api_key="sk-test"))


@dataclass(frozen=True)
class Expected:
    chunks: list[str]
    tool_calls: list[tuple[str, str, dict[str, Any], str]]  # id, name, arguments, raw
    usage: tuple[int, int, int, int] | None  # input, output, cached, reasoning
    finish_reason: str | None
    model: str
    events: int


GPT4O = "gpt-4o-2024-08-06"
MINI = "gpt-4o-mini-2024-07-18"
WEATHER_CHUNKS = [
    "I'm", " unable", " to", " provide", " real", "-time", " weather", " updates", ".", " To",
    " get", " the", " current", " weather", " in", " San", " Francisco", ",", " I", " recommend",
    " checking", " a", " reliable", " weather", " website", " or", " a", " weather", " app", ".",
]
EDINBURGH = '{"city": "Edinburgh", "country": "GB", "units": "c"}'
AAPL = '{"ticker": "AAPL", "exchange": "NASDAQ"}'

EXPECTED: dict[str, Expected] = {
    "content-logprobs.sse": Expected(["Foo", "!"], [], (9, 2, 0, 0), "stop", GPT4O, 5),
    "finish-length.sse": Expected(['{"'], [], (79, 1, 0, 0), "length", GPT4O, 4),
    "parallel-tool-calls.sse": Expected([], [
        ("call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs",
         {"city": "Edinburgh", "country": "GB", "units": "c"}, EDINBURGH),
        ("call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price",
         {"ticker": "AAPL", "exchange": "NASDAQ"}, AAPL),
    ], (149, 60, 0, 0), "tool_calls", GPT4O, 25),
    "refusal.sse": Expected(
        ["I'm", " sorry", ",", " I", " can't", " assist", " with", " that", " request", "."],
        [], (79, 11, 0, 0), "refusal", GPT4O, 13),
    "single-tool-call-2024.sse": Expected([], [
        ("call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", {"city": "New York City"},
         '{"city":"New York City"}'),
    ], (44, 16, 0, 0), "tool_calls", GPT4O, 10),
    "text-after-tool-result.sse": Expected(
        ["The", " capital", " of", " the", " UK", " is", " London", "."],
        [], (78, 9, 0, 0), "stop", MINI, 11),
    "text-with-usage.sse": Expected(WEATHER_CHUNKS, [], (14, 30, 0, 0), "stop", GPT4O, 33),
    "tool-call-then-usage.sse": Expected([], [
        ("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital", {"country": "UK"}, '{"country":"UK"}'),
    ], (53, 15, 0, 0), "tool_calls", MINI, 8),
}
MIDSTREAM = "The server had an error processing your request. Sorry about that!"
ERRORS: dict[str, tuple[list[str], type[APIStatusError], str, int | None, bool]] = {
    "midstream-error.CONSTRUCTED.sse": (["Hello"], ServerError, MIDSTREAM, None, True),
    "openrouter-comments-and-inband-error.sse":
        ([], BadRequestError, "Token limit reached", 400, False),
}


def replay(pieces: list[bytes]) -> tuple[list[str], RoundResult | Exception, OpenAIChatDecoder]:
    """Feed the pieces; return the text chunks and the result (or the error that ended it)."""
    decoder = DIALECT.decoder()
    texts: list[str] = []
    outcome: RoundResult | Exception
    try:
        for piece in pieces:
            for chunk in decoder.feed(piece):
                assert chunk.type is ChunkType.TEXT
                texts.append(chunk.text)
        outcome = decoder.finish()
    except Exception as exc:
        outcome = exc
    return texts, outcome, decoder


def payloads_body(name: str, done: bool) -> bytes:
    lines = (DATA / name).read_bytes().split(b"\n")
    body = b"".join(b"data: " + line + b"\n\n" for line in lines if line)
    return body + (b"data: [DONE]\n\n" if done else b"")


def test_every_sse_fixture_has_expectations() -> None:
    assert {p.name for p in DATA.glob("*.sse")} == set(EXPECTED) | set(ERRORS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream(name: str) -> None:
    want = EXPECTED[name]
    texts, result, decoder = replay([(DATA / name).read_bytes()])
    assert isinstance(result, RoundResult)
    assert texts == want.chunks
    assert result.message.text == "".join(want.chunks) == decoder.partial_text
    assert result.message.role == "assistant"
    calls = [(c.id, c.name, c.arguments, c.raw_arguments) for c in result.message.tool_calls]
    assert calls == want.tool_calls
    assert want.usage is not None
    assert result.usage == Usage(input_tokens=want.usage[0], output_tokens=want.usage[1],
                                 cached_tokens=want.usage[2], reasoning_tokens=want.usage[3])
    assert result.message.usage == result.usage
    assert result.finish_reason == result.message.finish_reason == want.finish_reason
    assert result.model == want.model
    assert decoder.events == want.events
    assert decoder.done
    assert decoder.comments == 0


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_recorded_stream_with_inband_error(name: str) -> None:
    chunks, cls, message, status, retryable = ERRORS[name]
    texts, error, decoder = replay([(DATA / name).read_bytes()])
    assert texts == chunks
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert error.message.startswith(message)
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.provider == "openai"
    assert decoder.partial_text == "".join(chunks)


def test_openrouter_comments_are_not_events() -> None:
    _, error, decoder = replay([(DATA / "openrouter-comments-and-inband-error.sse").read_bytes()])
    assert isinstance(error, BadRequestError)
    assert decoder.comments == 17
    assert decoder.events == 4


def test_midstream_error_raised_by_feed_when_no_chunks_precede_it() -> None:
    decoder = DIALECT.decoder()
    body = (DATA / "midstream-error.CONSTRUCTED.sse").read_bytes()
    head = b"\n\n".join(body.split(b"\n\n")[:2]) + b"\n\n"
    rest = body[len(head):]
    assert [c.text for c in decoder.feed(head)] == ["Hello"]
    with pytest.raises(ServerError, match="server had an error"):
        decoder.feed(rest)


def test_deferred_error_is_raised_by_finish() -> None:
    decoder = DIALECT.decoder()
    assert [c.text for c in decoder.feed((DATA / "midstream-error.CONSTRUCTED.sse").read_bytes())
            ] == ["Hello"]
    assert decoder.done
    with pytest.raises(ServerError):
        decoder.finish()


@pytest.mark.parametrize("name", sorted(EXPECTED) + sorted(ERRORS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_splits_give_identical_chunks_and_result(name: str, data: st.DataObject) -> None:
    body = (DATA / name).read_bytes()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=80))))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    whole_texts, whole, _ = replay([body])
    texts, outcome, _ = replay(pieces)
    assert texts == whole_texts
    if isinstance(whole, Exception):
        assert type(outcome) is type(whole)
        assert str(outcome) == str(whole)
    else:
        assert outcome == whole


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_byte_reads(name: str) -> None:
    body = (DATA / name).read_bytes()
    assert replay([body[i:i + 1] for i in range(len(body))])[:2] == replay([body])[:2]


# --- payload-only recordings -------------------------------------------------------------------


@pytest.mark.parametrize("done", [True, False], ids=["with-DONE", "no-DONE"])
def test_azure_prompt_filter_first_chunk(done: bool) -> None:
    texts, result, decoder = replay([payloads_body("azure-prompt-filter-first-chunk.payloads.jsonl",
                                                   done)])
    assert isinstance(result, RoundResult)
    assert texts == ["Capital", " of", " Denmark", "."]
    assert result.usage == Usage(input_tokens=15, output_tokens=78, reasoning_tokens=64)
    assert result.finish_reason == "stop"
    assert result.model == "gpt-5-nano-2025-08-07"  # the first chunk's "" is ignored
    assert decoder.events == 8
    assert decoder.done is done


MODERN_START = ["**", "Holiday", " Name", ":**", " Harmony", " Day", "\n\n", "**"]
MODERN_END = [" experiences", " and", " mutual", " respect", "."]


@pytest.mark.parametrize("done", [True, False], ids=["with-DONE", "no-DONE"])
def test_text_modern_payloads(done: bool) -> None:
    texts, result, decoder = replay([payloads_body("text-modern.payloads.jsonl", done)])
    assert isinstance(result, RoundResult)
    assert len(texts) == 300
    assert texts[:8] == MODERN_START
    assert texts[-5:] == MODERN_END
    assert result.message.text.startswith("**Holiday Name:** Harmony Day\n\n**Date:** Celebrated")
    assert result.message.text.endswith("through shared human experiences and mutual respect.")
    assert "cultures’ histories" in result.message.text
    assert len(result.message.text) == 1787
    assert result.usage == Usage(input_tokens=16, output_tokens=300)
    assert result.finish_reason == "stop"
    assert result.model == "gpt-4.1-nano-2025-04-14"
    assert decoder.events == 303


# --- ends, truncation, protocol errors ---------------------------------------------------------


def events_of(*payloads: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)


def delta(**kwargs: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": kwargs, "finish_reason": None}]}


def finish(reason: str = "stop") -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def test_truncated_before_done_and_finish_reason() -> None:
    body = (DATA / "text-with-usage.sse").read_bytes()
    cut = body.index(b'"finish_reason":"stop"')
    cut = body.rindex(b"\n\n", 0, cut) + 2
    texts, error, _ = replay([body[:cut]])
    assert texts == WEATHER_CHUNKS
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "".join(WEATHER_CHUNKS)


def test_eof_inside_an_event_is_interrupted() -> None:
    body = events_of(delta(content="Hi")) + b'data: {"choices":[{"ind'
    _, error, _ = replay([body])
    assert isinstance(error, StreamProtocolError)  # the unterminated event is not JSON


def test_finish_reason_without_done_or_usage_is_a_clean_end() -> None:
    texts, result, decoder = replay([events_of(delta(content="Hi"), finish())])
    assert isinstance(result, RoundResult)
    assert texts == ["Hi"]
    assert not decoder.done
    assert result.usage == Usage()
    assert result.message.usage is None


def test_last_event_without_blank_line_is_flushed() -> None:
    decoder = DIALECT.decoder()
    chunks = decoder.feed(b'data: {"choices":[{"index":0,"delta":{"content":"A"}}]}\n\n'
                          b'data: {"choices":[{"index":0,"delta":{"content":"B"},'
                          b'"finish_reason":"stop"}]}')
    assert [c.text for c in chunks] == ["A"]
    assert [c.text for c in decoder.flush()] == ["B"]
    assert decoder.flush() == []
    assert decoder.finish().message.text == "AB"


def test_done_without_anything_else() -> None:
    _, result, _ = replay([b"data: [DONE]\n\n"])
    assert isinstance(result, RoundResult)
    assert result.message.text == ""
    assert result.finish_reason is None


def test_events_after_done_are_ignored() -> None:
    texts, result, _ = replay([events_of(delta(content="A")) + b"data: [DONE]\n\n"
                               + events_of(delta(content="B"))])
    assert texts == ["A"]
    assert isinstance(result, RoundResult)


@pytest.mark.parametrize("data", [b"not json", b"[1,2]", b'"text"', b"{bad",
                                  b'{"choices":[1]}', b'{"choices":[{"delta":"x"}]}'])
def test_non_object_data_is_a_protocol_error(data: bytes) -> None:
    decoder = DIALECT.decoder()
    with pytest.raises(StreamProtocolError, match="JSON object"):
        decoder.feed(b"data: " + data + b"\n\n")


def test_protocol_error_snippet_is_truncated() -> None:
    with pytest.raises(StreamProtocolError) as info:
        DIALECT.decoder().feed(b"data: <" + b"x" * 10_000 + b"\n\n")
    assert len(str(info.value)) < 300


def test_comments_do_not_count_as_events() -> None:
    decoder = DIALECT.decoder()
    decoder.feed(b": ping\n\n: ping\n\n")
    assert (decoder.events, decoder.comments) == (0, 2)
    decoder.feed(events_of(delta(content="x")))
    assert (decoder.events, decoder.comments) == (1, 2)


@pytest.mark.parametrize(("error", "cls", "status", "retryable"), [
    ({"message": "boom", "type": "server_error", "code": None}, ServerError, None, True),
    ({"message": "slow down", "type": "tokens", "code": "rate_limit_exceeded"},
     RateLimitError, None, True),
    ({"message": "no money", "type": "insufficient_quota", "code": "insufficient_quota"},
     RateLimitError, None, False),
    ({"message": "too long", "code": "context_length_exceeded"}, ContextLengthError, None, False),
    ({"message": "Overloaded", "type": "overloaded_error"}, OverloadedError, None, True),
    ({"message": "upstream", "code": 502}, ServerError, 502, True),
    ({"message": "weird", "code": 7}, ServerError, None, True),
    ("plain string error", ServerError, None, True),
])
def test_inband_error_mapping(error: Any, cls: type[APIStatusError], status: int | None,
                              retryable: bool) -> None:
    body = events_of({"error": error, **delta(content="")})
    with pytest.raises(cls) as info:
        DIALECT.decoder().feed(body)
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.retryable is retryable
    assert info.value.body == {"error": error, **delta(content="")}


def test_falsy_error_key_is_not_an_error() -> None:
    texts, result, _ = replay([events_of({"error": None, **delta(content="ok")}, finish())])
    assert texts == ["ok"]
    assert isinstance(result, RoundResult)


# --- tool-call accumulation edge cases ---------------------------------------------------------


def tool(index: int | None = None, call_id: str | None = None, name: str | None = None,
         arguments: Any = None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"function": {}}
    if index is not None:
        fragment["index"] = index
    if call_id is not None:
        fragment["id"] = call_id
    if name is not None:
        fragment["function"]["name"] = name
    if arguments is not None:
        fragment["function"]["arguments"] = arguments
    return fragment


def calls_of(*tool_deltas: list[dict[str, Any]]) -> tuple[ToolCall, ...]:
    body = events_of(*(delta(tool_calls=t) for t in tool_deltas), finish("tool_calls"))
    _, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    return result.message.tool_calls


def test_tool_index_starting_at_one_with_text() -> None:
    body = events_of(delta(content="Let me check."),
                     delta(tool_calls=[tool(1, "toolu_1", "get_weather", "")]),
                     delta(tool_calls=[tool(1, arguments='{"city":')]),
                     delta(tool_calls=[tool(1, arguments='"Paris"}')]), finish("tool_calls"))
    texts, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    assert texts == ["Let me check."]
    assert result.message.tool_calls == (ToolCall(id="toolu_1", name="get_weather",
                                                   arguments={"city": "Paris"},
                                                   raw_arguments='{"city":"Paris"}'),)


def test_tool_without_index_uses_id_or_last_call() -> None:
    calls = calls_of([tool(None, "a", "one", '{"x"')], [tool(None, None, None, ":1}")],
                     [tool(None, "b", "two", "{}")], [tool(None, "a", None, "")])
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "one", {"x": 1}),
                                                             ("b", "two", {})]


def test_new_id_on_same_index_starts_a_new_call() -> None:
    calls = calls_of([tool(0, "a", "one", "{}")], [tool(0, "b", "two", '{"y":2}')])
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "one", {}),
                                                             ("b", "two", {"y": 2})]


def test_first_name_wins_and_missing_id_is_generated() -> None:
    calls = calls_of([tool(0, None, "first", "")], [tool(0, None, "first", "")],
                     [tool(0, None, "other", "")], [tool(1, None, "second", None)])
    assert [(c.id, c.name, c.arguments, c.raw_arguments) for c in calls] == [
        ("call_0", "first", {}, ""), ("call_1", "second", {}, "")]


def test_invalid_or_non_object_arguments_keep_the_raw_text() -> None:
    calls = calls_of([tool(0, "a", "cut", '{"city": "Par')], [tool(1, "b", "arr", "[1]")],
                     [tool(2, "c", "obj", {"already": "parsed"})])
    assert [(c.arguments, c.raw_arguments) for c in calls] == [
        ({}, '{"city": "Par'), ({}, "[1]"), ({"already": "parsed"}, '{"already":"parsed"}')]


def test_tool_calls_keyed_by_choice_and_text_from_choice_zero() -> None:
    body = events_of(
        {"choices": [{"index": 0, "delta": {"content": "zero"}},
                     {"index": 1, "delta": {"content": "one"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [tool(0, "a", "f", "{}")]}},
                     {"index": 1, "delta": {"tool_calls": [tool(0, "b", "g", "{}")]}}]},
        finish("tool_calls"))
    texts, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    assert texts == ["zero"]
    assert [c.id for c in result.message.tool_calls] == ["a", "b"]


def test_usage_details() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 50,
             "prompt_tokens_details": {"cached_tokens": 40},
             "completion_tokens_details": {"reasoning_tokens": 30}}
    _, result, _ = replay([events_of(finish(), {"choices": [], "usage": usage})])
    assert isinstance(result, RoundResult)
    assert result.usage == Usage(input_tokens=100, output_tokens=50, cached_tokens=40,
                                 reasoning_tokens=30)
