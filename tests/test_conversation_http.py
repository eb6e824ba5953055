"""Conversations over real HTTP: recorded OpenAI streams and failures replayed by FakeServer,
through both drivers (stdlib http.client for sync, aiohttp for async)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import ChunkType, StreamChunk
from promptkit.testing import FakeServer, Reply

from support import PACKS, WIRE, Driver, kinds, texts

OPENAI = WIRE / "openai-chat"
ASSISTANT = PACKS / "assistant.pack.json"
KEY = "sk-test-0123456789abcdefghijklmnop"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def open_http(driver: Driver, server: FakeServer, **options: Any) -> Any:
    options.setdefault("variables", {"user_name": "Ada"})
    options.setdefault("timeouts", promptkit.Timeouts(connect=2, first_token=5, idle=5))
    return driver.open(ASSISTANT, "assistant", provider="openai", model="gpt-4o-mini",
                       api_key=KEY, base_url=server.url + "/v1", **options)


def error_body(name: str) -> Any:
    import json

    return json.loads((OPENAI / name).read_text())


def normalise(chunks: list[StreamChunk]) -> list[tuple[Any, ...]]:
    """Chunks without timing fields, to compare runs."""
    out: list[tuple[Any, ...]] = []
    for c in chunks:
        response = c.response
        summary = None if response is None else (
            response.text, response.usage, response.finish_reason, response.tool_calls,
            response.tool_results, response.model)
        out.append((c.type, c.text, c.tool_call, c.tool_result, summary,
                    type(c.error).__name__ if c.error else None))
    return out


SSE_FIXTURES = sorted(p.name for p in OPENAI.glob("*.sse"))


@pytest.mark.parametrize("fixture", SSE_FIXTURES)
def test_every_recorded_stream_gives_the_same_chunks_through_both_drivers(fixture: str) -> None:
    runs = []
    for kind in ("sync", "async"):
        with FakeServer() as srv:
            srv.enqueue(Reply.sse(OPENAI / fixture),
                        Reply.sse(OPENAI / "text-after-tool-result.sse"))
            conv = open_http(Driver(kind), srv)
            conv.on_tool("get_weather", lambda args: "sunny")
            runs.append(Driver(kind).stream(conv, "hi"))
    sync_chunks, async_chunks = runs
    assert normalise(sync_chunks) == normalise(async_chunks)
    assert sync_chunks[-1].type in (ChunkType.DONE, ChunkType.ERROR)
    assert sum(c.type in (ChunkType.DONE, ChunkType.ERROR) for c in sync_chunks) == 1


def test_text_stream_over_http(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse"))
    conv = open_http(driver, server)
    chunks = driver.stream(conv, "What is the capital of the UK?")
    assert texts(chunks) == "The capital of the UK is London."
    response = chunks[-1].response
    assert response is not None
    assert response.usage.input_tokens == 78 and response.usage.output_tokens == 9
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.cost == pytest.approx((78 * 0.15 + 9 * 0.6) / 1e6)
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json["model"] == "gpt-4o-mini"
    assert request.json["stream_options"] == {"include_usage": True}


def test_parallel_tool_calls_over_http(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "parallel-tool-calls.sse"),
                   Reply.sse(OPENAI / "text-after-tool-result.sse"))
    conv = open_http(driver, server)
    chunks = driver.stream(conv, "weather and stock")
    calls = [c.tool_call for c in chunks if c.type is ChunkType.TOOL_CALL]
    assert [(c.name, c.arguments) for c in calls if c] == [
        ("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}),
        ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"}),
    ]
    follow_up = server.requests[1].json["messages"]
    assert [m["role"] for m in follow_up[-3:]] == ["assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in follow_up[-2:]] == [c.id for c in calls if c]
    assert follow_up[-3]["tool_calls"][0]["function"]["arguments"] == calls[0].raw_arguments


@pytest.mark.parametrize(("status", "fixture", "error"), [
    (401, "error-401-invalid-api-key.json", promptkit.AuthenticationError),
    (404, "error-404-model-not-found.json", promptkit.NotFoundError),
    (400, "error-400-context-length-exceeded.json", promptkit.ContextLengthError),
    (429, "error-429-insufficient-quota.CONSTRUCTED.json", promptkit.RateLimitError),
])
def test_error_replies_raise_typed_errors_without_retry(
        driver: Driver, server: FakeServer, status: int, fixture: str,
        error: type[Exception]) -> None:
    server.enqueue(Reply.json(status, error_body(fixture), headers={"x-request-id": "req_123"}))
    conv = open_http(driver, server)
    with pytest.raises(error) as info:
        driver.send(conv, "hi")
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert info.value.request_id == "req_123"  # type: ignore[attr-defined]
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert len(server.requests) == 1
    assert conv.messages == []


def test_errors_arrive_as_one_error_chunk_in_streams(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.json(401, error_body("error-401-invalid-api-key.json")))
    conv = open_http(driver, server)
    chunks = driver.stream(conv, "hi")
    assert kinds(chunks) == ["error"]
    assert isinstance(chunks[0].error, promptkit.AuthenticationError)


def test_rate_limit_and_server_errors_are_retried_before_the_first_chunk(
        driver: Driver, server: FakeServer) -> None:
    server.enqueue(
        Reply.json(429, error_body("error-429-rate-limit-tokens.CONSTRUCTED.json"),
                   headers={"retry-after-ms": "10"}),
        Reply.json(500, {"error": {"message": "boom", "type": "server_error"}},
                   headers={"retry-after": "0"}),
        Reply.sse(OPENAI / "text-after-tool-result.sse"),
    )
    conv = open_http(driver, server)
    assert driver.send(conv, "hi").text == "The capital of the UK is London."
    assert len(server.requests) == 3


def test_retries_give_up_after_max_retries(driver: Driver, server: FakeServer) -> None:
    for _ in range(3):
        server.enqueue(Reply.json(503, {"error": {"message": "overloaded"}},
                                  headers={"retry-after": "0"}))
    conv = open_http(driver, server, max_retries=1)
    with pytest.raises(promptkit.OverloadedError):
        driver.send(conv, "hi")
    assert len(server.requests) == 2


def test_dropped_connection_mid_stream_keeps_partial_text_and_history(
        driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse", drop_after=5))
    conv = open_http(driver, server)
    chunks = driver.stream(conv, "hi")
    error = chunks[-1].error
    assert isinstance(error, promptkit.StreamInterruptedError)
    assert error.partial_text == "The capital of the"
    assert texts(chunks) == "The capital of the"
    assert len(server.requests) == 1  # text reached the caller: never retried
    assert conv.messages == []
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse"))
    assert driver.send(conv, "again").text == "The capital of the UK is London."


def test_connection_lost_before_any_chunk_is_retried(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply(hang_up=True), Reply.sse(OPENAI / "text-after-tool-result.sse"))
    conv = open_http(driver, server)
    assert driver.send(conv, "hi").text == "The capital of the UK is London."
    assert len(server.requests) >= 1


def test_unreachable_server_is_a_connection_error(driver: Driver) -> None:
    with FakeServer() as srv:
        url = srv.url
    conv = driver.open(ASSISTANT, "assistant", provider="openai", api_key=KEY,
                       base_url=url + "/v1", variables={"user_name": "Ada"}, max_retries=0)
    with pytest.raises(promptkit.APIConnectionError) as info:
        driver.send(conv, "hi")
    assert KEY not in str(info.value)


def test_in_band_error_event_is_a_typed_error_after_the_text(
        driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "midstream-error.CONSTRUCTED.sse"))
    conv = open_http(driver, server)
    chunks = driver.stream(conv, "hi")
    assert kinds(chunks) == ["text", "error"]
    assert chunks[0].text == "Hello"
    assert isinstance(chunks[1].error, promptkit.ServerError)
    assert "server had an error" in str(chunks[1].error)
    assert len(server.requests) == 1


def test_non_json_data_line_is_a_protocol_error(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(b"data: {\"choices\":[]}\n\ndata: <html>oops</html>\n\n"))
    conv = open_http(driver, server)
    chunks = driver.stream(conv, "hi")
    assert isinstance(chunks[-1].error, promptkit.StreamProtocolError)


def test_stall_raises_idle_timeout_even_with_keepalives(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse", stall_after=3,
                             keepalive=b": ping\n\n", keepalive_interval=0.05))
    conv = open_http(driver, server, timeouts=promptkit.Timeouts(idle=0.4))
    started = time.monotonic()
    chunks = driver.stream(conv, "hi")
    elapsed = time.monotonic() - started
    assert isinstance(chunks[-1].error, promptkit.IdleTimeout)
    assert isinstance(chunks[-1].error, TimeoutError)
    assert texts(chunks) == "The capital"
    assert elapsed < 3.0
    assert server.wait_idle(2.0)


def test_first_token_timeout(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse", first_delay=2.0))
    conv = open_http(driver, server, max_retries=0,
                     timeouts=promptkit.Timeouts(first_token=0.3, idle=5))
    with pytest.raises(promptkit.FirstTokenTimeout):
        driver.send(conv, "hi")


def test_turn_deadline_holds_however_the_bytes_trickle(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse", chunk_delay=0.15))
    conv = open_http(driver, server)
    started = time.monotonic()
    with pytest.raises(promptkit.TurnTimeout):
        driver.send(conv, "hi", timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_leaving_a_stream_early_closes_the_connection(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse", stall_after=3))
    conv = open_http(driver, server)
    if driver.is_async:
        import asyncio

        async def first_text() -> str:
            async with conv.stream("hi") as stream:
                async for chunk in stream:
                    return chunk.text
            return ""
        assert asyncio.run(first_text()) == "The"
    else:
        with conv.stream("hi") as stream:
            assert next(iter(stream)).text == "The"
    assert server.wait_idle(2.0)
    assert conv.messages == []


def test_api_key_and_base_url_from_the_environment(
        driver: Driver, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse"))
    conv = driver.open(ASSISTANT, "assistant", variables={"user_name": "Ada"})
    assert conv.provider == "openai" and conv.model == "gpt-4o-mini"
    driver.send(conv, "hi")
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(conv)


def test_keys_never_appear_in_reprs(server: FakeServer) -> None:
    conv = open_http(Driver("sync"), server)
    binding = conv._binding
    assert KEY not in repr(conv)
    assert KEY not in repr(binding)
    assert KEY not in repr(binding.dialect.build_request(
        promptkit.engine.dialect.ModelRequest(model="m", system="", messages=())))


def test_fixtures_exist() -> None:
    assert SSE_FIXTURES, f"no fixtures under {Path(OPENAI)}"


def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    import json

    payload = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(payload).encode()


def test_final_event_without_blank_line_is_delivered(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(_event({"content": "Hi"}) + b"\n\n" + _event({}, "stop")))
    conv = open_http(driver, server)
    assert driver.send(conv, "hi").text == "Hi"
    server.enqueue(Reply.sse(_event({"content": "Hi"}) + b"\n\n" + _event({"content": " there"})))
    chunks = driver.stream(conv, "again")
    assert [c.text for c in chunks[:-1]] == ["Hi", " there"]
    error = chunks[-1].error
    assert isinstance(error, promptkit.StreamInterruptedError)
    assert error.partial_text == "Hi there"


def test_break_without_with_closes_the_connection(driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "text-after-tool-result.sse", stall_after=3))
    conv = open_http(driver, server)
    if driver.is_async:
        import asyncio

        async def go() -> None:
            async for _ in conv.stream("hi"):
                break
            await asyncio.sleep(0.05)  # the event loop closes a dropped async generator
        asyncio.run(go())
    else:
        for _ in conv.stream("hi"):
            break
    assert server.wait_idle(2.0)


def test_connections_are_reused_across_turns_and_tool_rounds(driver: Driver,
                                                             server: FakeServer) -> None:
    server.enqueue(Reply.sse(OPENAI / "tool-call-then-usage.sse"),
                   Reply.sse(OPENAI / "text-after-tool-result.sse"),
                   Reply.sse(OPENAI / "text-after-tool-result.sse"))
    conv = open_http(driver, server)
    if driver.is_async:
        import asyncio

        async def turns() -> None:  # one event loop: the async pool lives per loop
            await conv.send("capital?")
            await conv.send("again")
        asyncio.run(turns())
    else:
        driver.send(conv, "capital?")
        driver.send(conv, "again")
    assert len(server.requests) == 3
    assert server.connections_opened == 1
