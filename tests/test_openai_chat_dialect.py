"""OpenAI Chat Completions dialect: recorded streams, request bodies and error mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
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


SPLIT_BODIES = [*sorted(EXPECTED), *sorted(ERRORS),
                "azure-prompt-filter-first-chunk.payloads.jsonl", "text-modern.payloads.jsonl"]


@pytest.mark.parametrize("name", SPLIT_BODIES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_splits_give_identical_chunks_and_result(name: str, data: st.DataObject) -> None:
    body = (payloads_body(name, done=name.startswith("text-")) if name.endswith(".jsonl")
            else (DATA / name).read_bytes())
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


MODERN_TEXT = (
    "**Holiday Name:** Harmony Day\n"
    "\n"
    "**Date:** Celebrated annually on the first Saturday of May\n"
    "\n"
    "**Purpose:** Harmony Day is dedicated to fostering understanding, kindness, and "
    "unity among diverse communities. It emphasizes celebrating cultural differences "
    "while promoting empathy and collaboration.\n"
    "\n"
    "**Traditions:**\n"
    "\n"
    "1. **Cultural Potluck Gatherings:** Communities come together to share "
    "traditional dishes from their backgrounds, encouraging conversation and "
    "curiosity about different cultures.\n"
    "\n"
    "2. **Story Circles:** People of all ages are encouraged to share stories from "
    "their heritage or personal experiences that promote understanding and empathy.\n"
    "\n"
    "3. **Decorate for Unity:** Public spaces and homes are decorated with symbols "
    "representing different cultures—flags, traditional art, and meaningful motifs—to "
    "visually celebrate diversity.\n"
    "\n"
    "4. **Collaborative Art Projects:** Communities create murals or sculptures that "
    "symbolize unity and diversity, involving artists and residents of all ages.\n"
    "\n"
    "5. **Acts of Kindness:** As a central activity, participants perform Small acts "
    "of kindness throughout the day, such as volunteering, helping neighbors, or "
    "inviting someone new to join festivities.\n"
    "\n"
    "6. **Music & Dance Festivals:** Local performances showcase a variety of musical "
    "styles and dances from different parts of the world, emphasizing shared joy and "
    "creativity.\n"
    "\n"
    "7. **Educational Workshops:** Interactive sessions teach about various cultures’ "
    "histories, traditions, and celebrations, fostering respect and knowledge.\n"
    "\n"
    "**Overall Spirit:** Harmony Day aims to create a sense of global community, "
    "reminding everyone that despite our differences, we are all connected through "
    "shared human experiences and mutual respect."
)
MODERN_START = ["**", "Holiday", " Name", ":**", " Harmony", " Day", "\n\n", "**"]
MODERN_END = [" experiences", " and", " mutual", " respect", "."]


@pytest.mark.parametrize("done", [True, False], ids=["with-DONE", "no-DONE"])
def test_text_modern_payloads(done: bool) -> None:
    texts, result, decoder = replay([payloads_body("text-modern.payloads.jsonl", done)])
    assert isinstance(result, RoundResult)
    assert len(texts) == 300
    assert texts[:8] == MODERN_START
    assert texts[-5:] == MODERN_END
    assert result.message.text == MODERN_TEXT == "".join(texts)
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


# --- request building --------------------------------------------------------------------------


def body_of(request: ModelRequest, dialect: OpenAIChatDialect = DIALECT) -> dict[str, Any]:
    http = dialect.build_request(request)
    assert http.method == "POST"
    assert http.url == "https://api.openai.com/v1/chat/completions"
    parsed: dict[str, Any] = json.loads(http.body)
    assert http.body == json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode()
    return parsed


def test_tool_result_followup_matches_the_recorded_request() -> None:
    recorded = json.loads((DATA / "tool-result-followup.request.json").read_text())
    call_id = "call_ZR5UUuTt3pf61kjwAJIYdVMj"
    params = recorded["tools"][0]["function"]["parameters"]
    request = ModelRequest(
        model="gpt-4o-mini", system="",
        messages=[
            Message(role="user", text="What is the capital of the UK? Use the tool, then answer."),
            Message(role="assistant", tool_calls=(ToolCall(
                id=call_id, name="get_capital", arguments={"country": "UK"},
                raw_arguments='{"country":"UK"}'),)),
            Message(role="tool", tool_result=ToolResult(call_id=call_id, name="get_capital",
                                                        content="London")),
        ],
        tools=[ToolDefinition(name="get_capital", description="", parameters=params)],
        tool_choice="auto")
    # documented differences: ToolDefinition has no "strict" flag, so we never send it; the
    # assistant's content is "" (not null), which llama-cpp-python's server also accepts
    del recorded["tools"][0]["function"]["strict"]
    assert recorded["messages"][1]["content"] is None
    recorded["messages"][1]["content"] = ""
    assert body_of(request) == recorded


def test_parallel_tool_results_followup_matches_the_constructed_request() -> None:
    recorded = json.loads((DATA / "parallel-tool-results-followup.CONSTRUCTED.request.json")
                          .read_text())
    weather, stock = "call_JMW1whyEaYG438VE1OIflxA2", "call_DNYTawLBoN8fj3KN6qU9N1Ou"
    request = ModelRequest(
        model="gpt-4o", system="",
        messages=[
            Message(role="user",
                    text="What's the weather like in Edinburgh? And the price of AAPL?"),
            Message(role="assistant", tool_calls=(
                ToolCall(id=weather, name="GetWeatherArgs", arguments=json.loads(EDINBURGH),
                         raw_arguments=EDINBURGH),
                ToolCall(id=stock, name="get_stock_price", arguments=json.loads(AAPL),
                         raw_arguments=AAPL))),
            Message(role="tool", tool_result=ToolResult(call_id=weather, name="GetWeatherArgs",
                                                        content='{"temp_c": 11}')),
            Message(role="tool", tool_result=ToolResult(call_id=stock, name="get_stock_price",
                                                        content='{"price": 227.5}')),
        ],
        tools=[ToolDefinition(name=t["function"]["name"],
                              description=t["function"]["description"],
                              parameters=t["function"]["parameters"])
               for t in recorded["tools"]])
    recorded["messages"][1]["content"] = ""  # "" where the recording has null (see above)
    assert body_of(request) == recorded


def test_assistant_tool_calls_carry_string_content_never_null() -> None:
    """llama-cpp-python's server answers 500 to ``content: null`` and to a missing
    ``content``; OpenAI and vLLM take ``""`` as well, so ``""`` goes to every server."""
    calls = (ToolCall(id="c1", name="f", arguments={}),)
    request = ModelRequest(model="m", system="", messages=[
        Message(role="user", text="go"),
        Message(role="assistant", tool_calls=calls),
        Message(role="tool", tool_result=ToolResult(call_id="c1", name="f", content="ok")),
        Message(role="assistant", text="Again.", tool_calls=calls)])
    assistants = [m for m in body_of(request)["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in assistants] == ["", "Again."]
    assert all(isinstance(m["content"], str) and m["tool_calls"] for m in assistants)


def test_headers_url_and_secrets() -> None:
    dialect = OpenAIChatDialect(Endpoint(base_url="http://localhost:8000/v1",
                                         api_key="sk-secret", headers={"x-extra": "1"}),
                                name="vllm")
    http = dialect.build_request(ModelRequest(model="m", system="", messages=[]))
    assert http.url == "http://localhost:8000/v1/chat/completions"
    assert dict(http.headers) == {"content-type": "application/json",
                                  "accept": "text/event-stream",
                                  "authorization": "Bearer sk-secret", "x-extra": "1"}
    assert "sk-secret" not in repr(http) + repr(dialect)
    assert dialect.name == "vllm"
    keyless = OpenAIChatDialect(Endpoint(base_url="http://localhost:11434/v1/"))
    assert "authorization" not in keyless.build_request(
        ModelRequest(model="m", system="", messages=[])).headers


def test_messages_parameters_and_tool_choice() -> None:
    request = ModelRequest(
        model="gpt-4o", system="Be brief. ünïcode",
        messages=[Message(role="user", text="Hi 🌈"),
                  Message(role="assistant", text="Checking.", tool_calls=(
                      ToolCall(id="c1", name="f", arguments={"a": "é"}),)),
                  Message(role="tool", tool_result=ToolResult(call_id="c1", name="f",
                                                              content="ok")),
                  Message(role="assistant", text="Done.")],
        tools=[ToolDefinition(name="f")],
        parameters={"temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "top_k": 40,
                    "frequency_penalty": 0.1, "presence_penalty": None},
        tool_choice="f")
    http = DIALECT.build_request(request)
    assert "ünïcode".encode() in http.body and "🌈".encode() in http.body
    body = json.loads(http.body)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief. ünïcode"},
        {"role": "user", "content": "Hi 🌈"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f",
                                                          "arguments": '{"a":"é"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "Done."},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert {k: body[k] for k in ("temperature", "top_p", "max_tokens", "frequency_penalty")} == {
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "frequency_penalty": 0.1}
    assert "top_k" not in body and "presence_penalty" not in body
    assert body["tools"] == [{"type": "function", "function": {
        "name": "f", "description": "", "parameters": {"type": "object", "properties": {}}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize("choice", ["auto", "required", "none"])
def test_tool_choice_modes(choice: str) -> None:
    request = ModelRequest(model="m", system="", messages=[], tools=[ToolDefinition(name="f")],
                           tool_choice=choice)
    assert body_of(request)["tool_choice"] == choice


def test_no_tools_means_no_tools_or_tool_choice_and_options() -> None:
    dialect = OpenAIChatDialect(Endpoint(base_url="https://api.openai.com/v1"),
                                include_usage=False, max_tokens_field="max_completion_tokens")
    body = body_of(ModelRequest(model="o3", system="", messages=[], tool_choice="auto",
                                parameters={"max_tokens": 10}), dialect)
    assert body == {"model": "o3", "messages": [], "stream": True, "max_completion_tokens": 10}


def test_tool_message_without_result_is_rejected() -> None:
    with pytest.raises(ValueError, match="tool_result"):
        DIALECT.build_request(ModelRequest(model="m", system="",
                                           messages=[Message(role="tool", text="x")]))


# --- HTTP error mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "status", "cls", "retryable", "code"), [
    ("error-400-context-length-exceeded.json", 400, ContextLengthError, False,
     "context_length_exceeded"),
    ("error-400-unsupported-value.json", 400, BadRequestError, False, "unsupported_value"),
    ("error-401-invalid-api-key.json", 401, AuthenticationError, False, "invalid_api_key"),
    ("error-404-model-not-found.json", 404, NotFoundError, False, "model_not_found"),
    ("error-429-insufficient-quota.CONSTRUCTED.json", 429, RateLimitError, False,
     "insufficient_quota"),
    ("error-429-rate-limit-tokens.CONSTRUCTED.json", 429, RateLimitError, True,
     "rate_limit_exceeded"),
])
def test_error_fixtures(name: str, status: int, cls: type[APIStatusError], retryable: bool,
                        code: str) -> None:
    raw = (DATA / name).read_bytes()
    error = DIALECT.map_error(status, {"x-request-id": "req_1", "retry-after": "1"}, raw)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status_code == status
    assert error.code == code
    assert error.message == json.loads(raw)["error"]["message"]
    assert error.body == json.loads(raw)
    assert error.request_id == "req_1"
    assert error.retry_after == 1.0
    assert error.provider == "openai"


@pytest.mark.parametrize(("status", "cls", "retryable"), [
    (400, BadRequestError, False), (401, AuthenticationError, False),
    (403, PermissionDeniedError, False), (404, NotFoundError, False),
    (408, BadRequestError, True), (409, BadRequestError, True), (413, BadRequestError, False),
    (422, BadRequestError, False), (418, BadRequestError, False), (429, RateLimitError, True),
    (500, ServerError, True), (502, ServerError, True), (503, OverloadedError, True),
    (504, ServerError, True), (529, OverloadedError, True), (599, ServerError, True),
])
def test_status_classes(status: int, cls: type[APIStatusError], retryable: bool) -> None:
    error = DIALECT.map_error(status, {}, b'{"error":{"message":"m","type":null}}')
    assert (type(error), error.retryable, error.message) == (cls, retryable, "m")


@pytest.mark.parametrize(("body", "message"), [
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "HTTP 502 Bad Gateway (HTML error "
                                                            "page)"),
    (b"", "HTTP 502 Bad Gateway"),
    (b"upstream connect error", "HTTP 502 Bad Gateway: upstream connect error"),
    (b'{"error":"model is loading"}', "model is loading"),
    (b'{"message":"bad gateway"}', "bad gateway"),
    (b'[{"error":{"code":502,"message":"wrapped","status":"UNAVAILABLE"}}]', "wrapped"),
])
def test_odd_error_bodies(body: bytes, message: str) -> None:
    error = DIALECT.map_error(502, {}, body)
    assert isinstance(error, ServerError)
    assert error.message == message


def test_x_should_retry_overrides_and_headers_are_case_insensitive() -> None:
    quota = (DATA / "error-429-insufficient-quota.CONSTRUCTED.json").read_bytes()
    assert DIALECT.map_error(429, {"X-Should-Retry": "true"}, quota).retryable is True
    assert DIALECT.map_error(500, {"x-should-retry": "false"}, b"{}").retryable is False
    error = DIALECT.map_error(500, {"X-Request-Id": "abc", "Retry-After-Ms": "250"}, b"{}")
    assert (error.request_id, error.retry_after) == ("abc", 0.25)


def test_error_text_never_shows_the_key() -> None:
    body = (DATA / "error-401-invalid-api-key.json").read_bytes()
    error = DIALECT.map_error(401, {"x-request-id": "r"}, body)
    assert "sk-test" not in str(error) and "Bearer" not in str(error)
    assert str(error).startswith("openai 401: Incorrect API key provided")


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
    ({"retry-after": "2.5"}, 2.5),
    ({"retry-after": " 0 "}, 0.0),
    ({"Retry-After": "3"}, 3.0),
    ({"retry-after": format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC),
                                     usegmt=True)}, 30.0),
    ({"retry-after": "Thu, 01 Jan 2026 11:59:00 GMT"}, 0.0),
    ({"retry-after": "garbage"}, None),
    ({"retry-after": "-5"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after-ms": "-1"}, None),
    ({}, None),
])
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected
