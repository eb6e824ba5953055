"""Every native dialect end to end: recorded streams replayed over real HTTP by FakeServer,
through both drivers, with the same chunks; errors typed the same way for every provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import ChunkType, StreamChunk
from promptkit.testing import FakeServer, Reply

from support import PACKS, WIRE, Driver

ASSISTANT = PACKS / "assistant.pack.json"
KEY = "sk-e2e-0123456789abcdefghijklmnop"

# provider → (model, fixtures replayed as whole turns, the path its requests go to)
PROVIDERS: dict[str, tuple[str, str]] = {
    "anthropic": ("claude-sonnet-4-5", "/v1/messages"),
    "gemini": ("gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    "ollama": ("llama3.2", "/api/chat"),
    "responses": ("gpt-4.1", "/v1/responses"),
}
TEXT_FIXTURES = {
    "anthropic": "anthropic/text.sse",
    "gemini": "gemini/text.sse",
    "ollama": "ollama/chat-text.CONSTRUCTED.ndjson",
    "responses": "openai-responses/text-modern.sse",
}
TOOL_FIXTURES = {
    "anthropic": ("anthropic/tool-use-fragmented.sse", "anthropic/text-after-tool-result.sse"),
    "gemini": ("gemini/function-call.sse", "gemini/text-after-tool-result.sse"),
    "ollama": ("ollama/chat-tool-call.CONSTRUCTED.ndjson", "ollama/chat-text.CONSTRUCTED.ndjson"),
    "responses": ("openai-responses/function-call-2025-03.sse",
                  "openai-responses/text-after-tool-result-2025-03.sse"),
}


def reply(fixture: str) -> Reply:
    path = WIRE / fixture
    if path.suffix == ".ndjson":
        lines = path.read_bytes().splitlines(keepends=True)
        return Reply(200, {"content-type": "application/x-ndjson"}, lines)
    return Reply.sse(path)


def open_provider(driver: Driver, provider: str, server: FakeServer, **options: Any) -> Any:
    model, _ = PROVIDERS[provider]
    name, api = ("openai", "responses") if provider == "responses" else (provider, None)
    base = server.url + ("/v1" if provider == "responses" else
                         "/v1beta" if provider == "gemini" else "")
    options.setdefault("variables", {"user_name": "Ada"})
    return driver.open(ASSISTANT, "assistant", provider=name, model=model, api_key=KEY,
                       base_url=base, api=api, **options)


def normalise(chunks: list[StreamChunk]) -> list[tuple[Any, ...]]:
    out = []
    for c in chunks:
        r = c.response
        out.append((c.type, c.text, c.tool_call, c.tool_result,
                    None if r is None else (r.text, r.usage, r.finish_reason, r.tool_calls),
                    type(c.error).__name__ if c.error else None))
    return out


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_text_turn_is_identical_through_both_drivers(provider: str) -> None:
    runs = []
    for kind in ("sync", "async"):
        with FakeServer([reply(TEXT_FIXTURES[provider])]) as server:
            conv = open_provider(Driver(kind), provider, server)
            runs.append(Driver(kind).stream(conv, "hi"))
            request = server.requests[0]
            assert request.path.startswith(PROVIDERS[provider][1])
            assert KEY not in request.path  # keys go in headers only
    assert normalise(runs[0]) == normalise(runs[1])
    done = runs[0][-1]
    assert done.type is ChunkType.DONE and done.response is not None
    assert done.response.text and done.response.provider in ("anthropic", "gemini", "ollama",
                                                              "openai")
    assert done.response.usage.output_tokens > 0


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_tool_round_trip(driver: Driver, provider: str) -> None:
    first, second = TOOL_FIXTURES[provider]
    with FakeServer([reply(first), reply(second)]) as server:
        conv = open_provider(driver, provider, server)
        calls: list[Any] = []
        for name in ("get_weather", "get_time", "get_capital", "get_current_weather"):
            conv.on_tool(name, lambda args, _n=name: calls.append((_n, args)) or "sunny")
        chunks = driver.stream(conv, "weather?")
        follow_up = server.requests[1].json
    tool_calls = [c.tool_call for c in chunks if c.type is ChunkType.TOOL_CALL]
    assert tool_calls, [c.type for c in chunks]
    assert chunks[-1].type is ChunkType.DONE
    results = [c.tool_result for c in chunks if c.type is ChunkType.TOOL_RESULT]
    assert len(results) == len(tool_calls)
    # the follow-up request carries the tool call and its result back
    dumped = json.dumps(follow_up)
    assert tool_calls[0] is not None and tool_calls[0].name in dumped
    assert results[0] is not None and results[0].content in dumped


@pytest.mark.parametrize(("provider", "fixture", "status", "error"), [
    ("anthropic", "anthropic/error-529-overloaded.json", 529, promptkit.OverloadedError),
    ("anthropic", "anthropic/error-401-authentication.CONSTRUCTED.json", 401,
     promptkit.AuthenticationError),
    ("anthropic", "anthropic/error-400-prompt-too-long.CONSTRUCTED.json", 400,
     promptkit.ContextLengthError),
    ("gemini", "gemini/error-400-api-key-invalid.json", 400, promptkit.AuthenticationError),
    ("gemini", "gemini/error-400-token-count-exceeded.json", 400, promptkit.ContextLengthError),
    ("gemini", "gemini/error-404-model-not-found.json", 404, promptkit.NotFoundError),
    ("ollama", "ollama/error-404-model-not-found.json", 404, promptkit.NotFoundError),
])
def test_error_replies_map_to_the_same_classes(driver: Driver, provider: str, fixture: str,
                                               status: int, error: type[Exception]) -> None:
    body = json.loads((WIRE / fixture).read_text())
    replies = [Reply.json(status, body, headers={"retry-after": "0"}) for _ in range(3)]
    with FakeServer(replies) as server:
        conv = open_provider(driver, provider, server, max_retries=0)
        with pytest.raises(error):
            driver.send(conv, "hi")


def test_anthropic_in_band_overloaded_is_an_overloaded_error(driver: Driver) -> None:
    with FakeServer([reply("anthropic/midstream-overloaded.CONSTRUCTED.sse")]) as server:
        conv = open_provider(driver, "anthropic", server)
        chunks = driver.stream(conv, "hi")
    assert isinstance(chunks[-1].error, promptkit.OverloadedError)
    assert chunks[-1].error.retryable


def test_thinking_arrives_as_its_own_chunk_type(driver: Driver) -> None:
    with FakeServer([reply("anthropic/thinking-then-text.sse")]) as server:
        conv = open_provider(driver, "anthropic", server)
        chunks = driver.stream(conv, "think")
    thinking = "".join(c.text for c in chunks if c.type is ChunkType.THINKING)
    text = "".join(c.text for c in chunks if c.type is ChunkType.TEXT)
    assert thinking and text
    response = chunks[-1].response
    assert response is not None and response.text == text and thinking not in response.text
    assert conv.messages[-1].extra.get("anthropic_thinking")  # kept for the follow-up


def test_azure_preset_sends_the_key_as_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeServer([reply("openai-chat/text-after-tool-result.sse")]) as server:
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
        conv = promptkit.open(ASSISTANT, "assistant", provider="azure", model="my-deployment",
                              variables={"user_name": "Ada"})
        assert conv.send("hi").text
        request = server.requests[0]
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["api-key"] == KEY and "authorization" not in request.headers


def test_fixtures_exist() -> None:
    for fixture in [*TEXT_FIXTURES.values(), *(f for pair in TOOL_FIXTURES.values() for f in pair)]:
        assert Path(WIRE / fixture).exists(), fixture


SCHEMA = {"title": "Weather report", "type": "object",
          "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
          "required": ["city"]}


@pytest.mark.parametrize(("provider", "check"), [
    ("openai", lambda b: b["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "Weather_report", "schema": SCHEMA}}),
    ("responses", lambda b: b["text"] == {"format": {
        "type": "json_schema", "name": "Weather_report", "schema": SCHEMA}}),
    ("gemini", lambda b: b["generationConfig"]["responseMimeType"] == "application/json"
     and b["generationConfig"]["responseJsonSchema"] == SCHEMA),
    ("ollama", lambda b: b["format"] == SCHEMA),
    ("anthropic", lambda b: '"temp_c"' in b["system"] and "JSON Schema" in b["system"]),
])
def test_response_format_maps_to_each_native_form(provider: str, check: Any) -> None:
    from promptkit.engine.dialect import Endpoint, ModelRequest
    from promptkit.providers._select import make_dialect

    kind = {"openai": "openai_chat", "responses": "openai_chat"}.get(provider, provider)
    api = "responses" if provider == "responses" else None
    dialect = make_dialect(kind, Endpoint(base_url="http://127.0.0.1:9"), provider, api)
    request = ModelRequest(model="m", system="Be brief.", messages=(),
                           response_format=SCHEMA)
    body = json.loads(dialect.build_request(request).body)
    assert check(body), body
    plain = ModelRequest(model="m", system="", messages=(),
                         response_format={"type": "json_object"})
    assert json.loads(dialect.build_request(plain).body)


def test_response_format_is_a_conversation_option(driver: Driver) -> None:
    conv = driver.open(ASSISTANT, "plain", provider="mock", response_format=SCHEMA,
                       mock_responses={"defaultResponse": '{"city": "Paris"}'})
    assert json.loads(driver.send(conv, "weather as JSON").text) == {"city": "Paris"}
    body = json.loads(conv._binding.options["transport"].requests[0].body)
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA


def _framed(provider: str, path: Path) -> bytes:
    if path.name.endswith(".payloads.jsonl"):
        out = []
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line).get("type") if provider != "gemini" else None
            out.append((f"event: {event}\n" if event else "") + f"data: {line}\n\n")
        return "".join(out).encode()
    return path.read_bytes()


def _stream_fixtures() -> list[tuple[str, str]]:
    found = []
    for provider, folder in (("anthropic", "anthropic"), ("gemini", "gemini"),
                             ("ollama", "ollama"), ("responses", "openai-responses")):
        for path in sorted((WIRE / folder).iterdir()):
            if path.name.endswith((".sse", ".ndjson", ".payloads.jsonl")):
                found.append((provider, f"{folder}/{path.name}"))
    return found


@pytest.mark.parametrize(("provider", "fixture"), _stream_fixtures())
def test_every_recorded_stream_through_both_drivers(provider: str, fixture: str) -> None:
    """Same chunks through sync and async over HTTP as the dialect's decoder gives alone."""
    data = _framed(provider, WIRE / fixture)
    runs = []
    for kind in ("sync", "async"):
        pieces = data.splitlines(keepends=True) if fixture.endswith(".ndjson") else [data]
        with FakeServer([Reply(200, {"content-type": "text/event-stream"}, pieces),
                         Reply.sse(b"")]) as server:
            conv = open_provider(Driver(kind), provider, server, max_retries=0)
            runs.append(Driver(kind).stream(conv, "hi"))
    assert normalise(runs[0]) == normalise(runs[1])
    with FakeServer() as server:
        dialect = open_provider(Driver("sync"), provider, server)._binding.dialect
    decoder = dialect.decoder()
    expected: list[StreamChunk] = []
    try:
        expected += decoder.feed(data)
        expected += decoder.flush()
    except promptkit.PromptKitError:
        pass
    delivered = [c for c in runs[0] if c.type in (ChunkType.TEXT, ChunkType.THINKING)]
    assert [(c.type, c.text) for c in delivered] == [(c.type, c.text) for c in expected
                                                     if c.type in (ChunkType.TEXT,
                                                                   ChunkType.THINKING)]
    ends = [c for c in runs[0] if c.type in (ChunkType.DONE, ChunkType.ERROR)]
    assert len(ends) == 1 and ends[0] is runs[0][-1]
