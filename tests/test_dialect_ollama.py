"""Ollama native dialect: recorded NDJSON streams, request bodies and error mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit._errors import (
    APIStatusError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    ServerError,
    StreamInterruptedError,
    StreamProtocolError,
)
from promptkit.engine.chunks import ChunkType
from promptkit.engine.dialect import Endpoint, ModelRequest, RoundResult, ToolDefinition
from promptkit.engine.messages import Message, ToolCall, ToolResult, Usage
from promptkit.providers.ollama import OllamaDecoder, OllamaDialect, ollama_base_url

DATA = Path(__file__).parent / "data" / "wire" / "ollama"
DIALECT = OllamaDialect(Endpoint(base_url="http://localhost:11434"))
T, TH = ChunkType.TEXT.value, ChunkType.THINKING.value


def replay(pieces: list[bytes]) -> tuple[list[tuple[str, str]], RoundResult | Exception,
                                          OllamaDecoder]:
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
    _, result, _ = replay([(DATA / name).read_bytes()])
    assert isinstance(result, RoundResult), result
    return result


EXPECTED: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str, dict[str, Any]]],
                          tuple[int, int], str, str, int]] = {
    "chat-text.CONSTRUCTED.ndjson": (
        [(T, "The"), (T, " sky"), (T, " appears"), (T, " blue"),
         (T, " because of Rayleigh scattering. 🌈")], [], (26, 282), "stop", "llama3.2", 6),
    "chat-tool-call.CONSTRUCTED.ndjson": (
        [(TH, "The user wants the weather in Tokyo; I should call get_weather.")],
        [("call_k3v9x2ab", "get_weather", {"city": "Tokyo"})], (169, 15), "tool_calls",
        "qwen3", 3),
    "chat-parallel-tool-calls.CONSTRUCTED.ndjson": (
        [], [("call_a1b2c3d4", "get_temperature", {"city": "New York"}),
             ("call_e5f6g7h8", "get_conditions", {"city": "New York"}),
             ("call_i9j0k1l2", "get_temperature", {"city": "London"})],
        (212, 61), "tool_calls", "qwen3", 3),
}
STREAMS = sorted(p.name for p in DATA.glob("*.ndjson"))


def test_every_stream_fixture_has_expectations() -> None:
    assert set(STREAMS) == {*EXPECTED, "generate-midstream-error.ndjson"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream(name: str) -> None:
    want_chunks, want_calls, usage, finish, model, events = EXPECTED[name]
    chunks, result, decoder = replay([(DATA / name).read_bytes()])
    assert isinstance(result, RoundResult), result
    assert chunks == want_chunks
    text = "".join(t for kind, t in want_chunks if kind == T)
    assert result.message.text == text == decoder.partial_text
    assert [(c.id, c.name, c.arguments) for c in result.message.tool_calls] == want_calls
    assert result.usage == result.message.usage == Usage(input_tokens=usage[0],
                                                         output_tokens=usage[1])
    assert result.finish_reason == result.message.finish_reason == finish
    assert result.model == model
    assert decoder.events == events
    assert decoder.done
    assert result.message.extra == {}


def test_midstream_error_line() -> None:
    chunks, error, decoder = replay([(DATA / "generate-midstream-error.ndjson").read_bytes()])
    assert chunks == [(T, " Yes"), (T, "."), (T, "I"), (T, "can")]  # /api/generate's form
    assert type(error) is ServerError
    assert error.message == "an error was encountered while running the model"
    assert error.status_code is None
    assert error.retryable is True
    assert decoder.partial_text == " Yes.Ican"


@pytest.mark.parametrize("name", STREAMS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_splits_give_identical_chunks_and_result(name: str, data: st.DataObject) -> None:
    body = (DATA / name).read_bytes()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=60))))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    whole_chunks, whole, _ = replay([body])
    chunks, outcome, _ = replay(pieces)
    assert chunks == whole_chunks
    assert repr(outcome) == repr(whole)
    if not isinstance(whole, Exception):
        assert outcome == whole


def test_one_byte_reads_split_the_emoji() -> None:
    body = (DATA / "chat-text.CONSTRUCTED.ndjson").read_bytes()
    chunks, result, _ = replay([body[i:i + 1] for i in range(len(body))])
    assert chunks == EXPECTED["chat-text.CONSTRUCTED.ndjson"][0]
    assert result == result_of("chat-text.CONSTRUCTED.ndjson")


# --- stream edge cases -------------------------------------------------------------------------


def lines(*values: Any) -> bytes:
    return b"".join(json.dumps(v).encode() + b"\n" for v in values)


def test_eof_before_done_is_interrupted() -> None:
    chunks, error, _ = replay([lines({"message": {"role": "assistant", "content": "Hi"},
                                      "done": False})])
    assert chunks == [(T, "Hi")]
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "Hi"


def test_last_line_without_newline_and_length_reason() -> None:
    body = (lines({"message": {"role": "assistant", "content": "a"}, "done": False})
            + b'{"model":"m","message":{"role":"assistant","content":"b"},"done":true,'
              b'"done_reason":"length","eval_count":2}')
    chunks, result, _ = replay([body])
    assert chunks == [(T, "a"), (T, "b")]
    assert isinstance(result, RoundResult)
    assert result.finish_reason == "length"
    assert result.usage == Usage(output_tokens=2)  # prompt_eval_count omitted (cached prompt)


def test_old_servers_tool_calls_without_ids_on_the_done_line() -> None:
    body = lines({"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {"x": 1}}},
        {"function": {"name": "g", "arguments": '{"y": 2}'}}]}, "done": True,
        "done_reason": "stop"})
    _, result, _ = replay([body])
    assert isinstance(result, RoundResult)
    assert result.message.tool_calls == (
        ToolCall(id="call_0", name="f", arguments={"x": 1}, raw_arguments='{"x":1}'),
        ToolCall(id="call_1", name="g", arguments={"y": 2}, raw_arguments='{"y": 2}'))
    assert result.finish_reason == "tool_calls"
    assert result.message.usage is None


@pytest.mark.parametrize(("message", "cls", "retryable"), [
    ("server busy, please try again.  maximum pending requests exceeded", OverloadedError, True),
    ("model 'x' not found", NotFoundError, False),
    ("gemma does not support tools", BadRequestError, False),
    ("boom", ServerError, True),
])
def test_inband_error_mapping(message: str, cls: type[APIStatusError], retryable: bool) -> None:
    with pytest.raises(cls) as info:
        DIALECT.decoder().feed(lines({"error": message}))
    assert type(info.value) is cls
    assert info.value.retryable is retryable
    assert info.value.body == {"error": message}


@pytest.mark.parametrize("body", [b"not json\n", b"[1]\n", b'{"message": "text"}\n',
                                  b'{"message": {"content": 7}}\n'])
def test_bad_lines_are_protocol_errors(body: bytes) -> None:
    _, error, _ = replay([body])
    assert isinstance(error, StreamProtocolError)


# --- requests ----------------------------------------------------------------------------------

WEATHER = ToolDefinition(name="get_weather", description="Get the weather in a given city",
                         parameters={"type": "object", "properties": {"city": {
                             "type": "string", "description": "The city to get the weather for"}},
                             "required": ["city"]})


def request(messages: list[Message], dialect: OllamaDialect = DIALECT,
            **kwargs: Any) -> dict[str, Any]:
    built = dialect.build_request(ModelRequest(messages=messages, **kwargs))
    body: dict[str, Any] = json.loads(built.body)
    return body


def test_tool_result_followup_matches_the_documented_request() -> None:
    call = ToolCall(id="call_0", name="get_weather", arguments={"city": "Toronto"})
    messages = [Message(role="user", text="what is the weather in Toronto?"),
                Message(role="assistant", tool_calls=(call,)),
                Message(role="tool", tool_result=ToolResult(call_id="call_0", name="get_weather",
                                                            content="11 degrees celsius"))]
    body = request(messages, model="llama3.2", system="", tools=[WEATHER])
    want = json.loads((DATA / "tool-result-followup.request.json").read_text())
    # we stream, and send the call id both ways (Ollama matches results by it when present)
    assert (body.pop("stream"), want.pop("stream")) == (True, False)
    assert body["messages"][1]["tool_calls"][0].pop("id") == "call_0"
    assert body["messages"][2].pop("tool_call_id") == "call_0"
    assert body == want


def test_followup_from_a_recorded_round_keeps_server_ids_and_order() -> None:
    assistant = result_of("chat-parallel-tool-calls.CONSTRUCTED.ndjson").message
    results = [Message(role="tool", tool_result=ToolResult(call_id=c.id, name=c.name,
                                                           content=f"r{n}"))
               for n, c in enumerate(assistant.tool_calls)]
    body = request([Message(role="user", text="?"), assistant, *results], model="qwen3",
                   system="Be brief.")
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m.get("tool_call_id") for m in body["messages"][3:]] == [
        "call_a1b2c3d4", "call_e5f6g7h8", "call_i9j0k1l2"]
    assert body["messages"][2]["tool_calls"][2] == {
        "id": "call_i9j0k1l2", "function": {"name": "get_temperature",
                                            "arguments": {"city": "London"}}}


def test_options_think_and_tool_choice_none() -> None:
    dialect = OllamaDialect(Endpoint(base_url="localhost:11434"), think=True, keep_alive="5m")
    body = request([Message(role="user", text="x")], dialect, model="qwen3", system="",
                   tools=[WEATHER], tool_choice="none", parameters={
                       "temperature": 0.1, "top_p": 0.9, "top_k": 5, "max_tokens": 50,
                       "presence_penalty": 0.2, "frequency_penalty": 0.3, "stop": ["\n\n"]})
    assert body["options"] == {"temperature": 0.1, "top_p": 0.9, "top_k": 5, "num_predict": 50,
                               "presence_penalty": 0.2, "frequency_penalty": 0.3,
                               "stop": ["\n\n"]}
    assert (body["think"], body["keep_alive"]) == (True, "5m")
    assert "tools" not in body


def test_images_are_base64_and_urls_are_refused() -> None:
    image = {"type": "image", "mime_type": "image/png", "data": "iVBOR"}
    body = request([Message(role="user", text="what?", extra={"parts": [image]})],
                   model="llava", system="")
    assert body["messages"] == [{"role": "user", "content": "what?", "images": ["iVBOR"]}]
    with pytest.raises(BadRequestError, match="image URLs"):
        request([Message(role="user", extra={"parts": [{"type": "image", "url": "http://x"}]})],
                model="llava", system="")


@pytest.mark.parametrize(("host", "url"), [
    (None, "http://localhost:11434"), ("", "http://localhost:11434"),
    ("myhost", "http://myhost:11434"), ("0.0.0.0:8080", "http://0.0.0.0:8080"),
    (":9000", "http://localhost:9000"), ("https://ollama.example/", "https://ollama.example"),
    ("[::1]", "http://[::1]:11434"), ("box/prefix", "http://box:11434/prefix"),
])
def test_ollama_host_values(host: str | None, url: str) -> None:
    assert ollama_base_url(host) == url


@pytest.mark.parametrize("base", ["localhost:11434", "http://localhost:11434/",
                                  "http://localhost:11434/v1", "http://localhost:11434/api"])
def test_chat_url(base: str) -> None:
    dialect = OllamaDialect(Endpoint(base_url=base, api_key="cloud-key"))
    built = dialect.build_request(ModelRequest(model="m", system="", messages=[]))
    assert built.url == "http://localhost:11434/api/chat"
    assert built.headers["authorization"] == "Bearer cloud-key"
    assert "cloud-key" not in repr(dialect)


# --- error bodies ------------------------------------------------------------------------------

ERROR_BODIES = {
    "error-400-does-not-support-tools.json": (400, BadRequestError, False),
    "error-404-model-not-found.json": (404, NotFoundError, False),
    "error-503-server-busy.json": (503, OverloadedError, True),
}


def test_every_error_fixture_is_mapped() -> None:
    assert {p.name for p in DATA.glob("error-*.json")} == set(ERROR_BODIES)


@pytest.mark.parametrize("name", sorted(ERROR_BODIES))
def test_error_bodies(name: str) -> None:
    status, cls, retryable = ERROR_BODIES[name]
    body = (DATA / name).read_bytes()
    error = DIALECT.map_error(status, {}, body)
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.message == json.loads(body)["error"]
    assert error.provider == "ollama"


def test_plain_text_error_body() -> None:
    error = DIALECT.map_error(500, {}, b"llama runner process has terminated: signal: killed")
    assert type(error) is ServerError
    assert "llama runner" in error.message
