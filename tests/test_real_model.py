"""A real model on a real server: Gemma 3 270M on llama-cpp-python's OpenAI-compatible server,
driven through promptkit (the ``llamacpp`` preset) with both drivers: streaming, ``send()``,
cancellation mid-stream, and a forced tool round that completes.

Marked ``realmodel``; skipped, saying why, where llama-cpp-python or the model is missing
(``pip install -e '.[realmodel]'`` and ``python tests/fetch_test_model.py``: ``.ci/run`` does
both). Kept short: greedy decoding, a handful of tokens per reply, timeouts on every phase.
See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import promptkit
from fetch_test_model import cached_model
from llama_server import LlamaServer, skip_reason
from promptkit import ChunkType
from promptkit.pack.loading import load_pack_from_dict

from support import Driver, kinds, texts

pytestmark = pytest.mark.realmodel

TIMEOUTS = promptkit.Timeouts(connect=5, first_token=60, idle=30, total=120)
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}


#: what llama-cpp-python's server logs when a streaming client goes away
DISCONNECTED = "Disconnected from client"


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Poll ``condition`` (the server writes its log asynchronously)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pack(max_tokens: int = 12, **policy: Any) -> promptkit.Pack:
    prompt: dict[str, Any] = {
        "id": "chat", "name": "Chat", "version": "1.0.0",
        "system_template": "You are a helpful assistant. Answer briefly.",
        "parameters": {"temperature": 0, "max_tokens": max_tokens},
    }
    if policy:
        prompt["tools"] = ["get_weather"]
        prompt["tool_policy"] = policy
    return load_pack_from_dict({
        "id": "realmodel", "name": "Real model", "version": "1.0.0",
        "template_engine": {"version": "v1", "syntax": "{{variable}}"},
        "prompts": {"chat": prompt},
        "tools": {"get_weather": WEATHER_TOOL},
    })


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    model = cached_model(verify=False)  # verified by skip_reason
    assert model is not None
    with LlamaServer(model, tmp_path_factory.mktemp("llama")) as running:
        yield running


def open_real(driver: Driver, server: LlamaServer, the_pack: promptkit.Pack | None = None
              ) -> Any:
    return driver.open(the_pack or pack(), "chat", provider="llamacpp", model="gemma-3-270m",
                       base_url=server.base_url, timeouts=TIMEOUTS, max_retries=0)


def test_stream_delivers_text_then_one_done(driver: Driver, server: LlamaServer) -> None:
    conv = open_real(driver, server)
    chunks = driver.stream(conv, "Say hello.")
    assert kinds(chunks)[-1] == "done" and kinds(chunks).count("done") == 1
    assert set(kinds(chunks)) == {"text", "done"}
    response = chunks[-1].response
    assert response is not None
    assert response.text == texts(chunks) and response.text.strip()
    assert response.finish_reason in ("stop", "length")
    assert response.provider == "llamacpp"
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[1].text == response.text


def test_send_carries_history_to_the_server(driver: Driver, server: LlamaServer) -> None:
    conv = open_real(driver, server)
    first = driver.send(conv, "What is the capital of France?")
    second = driver.send(conv, "And of Italy?")
    assert first.text.strip() and second.text.strip()
    assert first.finish_reason in ("stop", "length")
    assert [m.role for m in conv.messages] == ["user", "assistant"] * 2
    assert [m.text for m in conv.messages] == ["What is the capital of France?", first.text,
                                               "And of Italy?", second.text]


def test_closing_mid_stream_keeps_history_and_the_next_turn_works(driver: Driver,
                                                                  server: LlamaServer) -> None:
    conv = open_real(driver, server, pack(max_tokens=64))
    disconnects = server.log_text().count(DISCONNECTED)
    seen: list[str] = []

    def take_two_then_stop_sync() -> None:
        with conv.stream("Tell me a long story about a dragon.") as stream:
            for chunk in stream:
                if chunk.type is ChunkType.TEXT:
                    seen.append(chunk.text)
                if len(seen) == 2:
                    break

    async def take_two_then_stop_async() -> promptkit.Response:
        async with conv.stream("Tell me a long story about a dragon.") as stream:
            async for chunk in stream:
                if chunk.type is ChunkType.TEXT:
                    seen.append(chunk.text)
                if len(seen) == 2:
                    break
        return await conv.send("Say hello.", timeout=60)  # type: ignore[no-any-return]

    if driver.is_async:
        after = asyncio.run(take_two_then_stop_async())
    else:
        take_two_then_stop_sync()
        after = conv.send("Say hello.", timeout=60)
    assert len(seen) == 2
    assert after.text.strip()
    # the abandoned turn left nothing behind; the next one is complete
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[0].text == "Say hello."
    # and the server saw the connection go (it stops generating for a gone client)
    assert wait_for(lambda: server.log_text().count(DISCONNECTED) > disconnects), \
        server.log_text()[-1500:]


def test_a_forced_tool_round_completes(driver: Driver, server: LlamaServer) -> None:
    """tool_choice naming the tool is the only way to get a call from this server (it builds
    a grammar from the tool's schema); the follow-up must carry ``content: ""``."""
    conv = open_real(driver, server, pack(max_tokens=48, tool_choice="get_weather",
                                          max_rounds=2))
    calls: list[dict[str, Any]] = []
    conv.on_tool("get_weather", lambda args: calls.append(args) or "sunny, 21 °C")
    chunks = driver.stream(conv, "What is the weather in Paris?")
    assert chunks[-1].type is ChunkType.DONE, chunks[-1].error
    assert kinds(chunks).count("tool_call") == 1 and kinds(chunks).count("tool_result") == 1
    [call] = calls
    assert isinstance(call.get("city"), str)  # the schema's grammar held
    response = chunks[-1].response
    assert response is not None and response.text.strip()
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    tool_message = conv.messages[2]
    assert tool_message.tool_result is not None
    assert tool_message.tool_result.content == "sunny, 21 °C"
    assert not tool_message.tool_result.is_error
    assert json.loads(conv.messages[1].tool_calls[0].raw_arguments or "{}") == call
