"""``POST /v1/chat/completions`` and ``GET /v1/models`` driven by the official ``openai``
package (sync and async clients) against a live uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from promptkit.server import create_app

from serve_support import HELLO, TOOLS, WEATHER, LiveServer

openai = pytest.importorskip("openai")

TOKEN = "tok-openai-compat-1234"
NAME = {"variables": {"user_name": "Ada"}}


@pytest.fixture
def hello() -> Any:
    script = {"turns": {1: "first answer", 2: "second answer"}, "defaultResponse": "later"}
    with LiveServer(create_app(HELLO, provider="mock", mock_responses=script,
                               token=TOKEN)) as live:
        yield live


def client(live: Any, key: str = TOKEN) -> Any:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, timeout=10)


def test_a_completion_uses_the_request_messages_as_history(hello: Any) -> None:
    api = client(hello)
    first = api.chat.completions.create(model="chat", extra_body=NAME,
                                        messages=[{"role": "user", "content": "Hi"}])
    assert first.object == "chat.completion" and first.model == "chat"
    assert first.choices[0].message.content == "first answer"
    assert first.choices[0].finish_reason == "stop"
    assert first.usage.completion_tokens > 0
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    second = api.chat.completions.create(model="chat", extra_body=NAME, messages=[
        {"role": "system", "content": "ignored: the pack supplies the system prompt"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "And?"}]}])
    assert second.choices[0].message.content == "second answer"  # the mock saw one reply


def test_streaming_ends_with_usage_when_asked(hello: Any) -> None:
    api = client(hello)
    chunks = list(api.chat.completions.create(
        model="chat", extra_body=NAME, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Hi"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "first answer"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    plain = list(api.chat.completions.create(model="chat", extra_body=NAME, stream=True,
                                             messages=[{"role": "user", "content": "Hi"}]))
    assert all(c.usage is None for c in plain) and plain[-1].choices


def test_the_async_client_streams_too(hello: Any) -> None:
    async def go() -> str:
        api = openai.AsyncOpenAI(base_url=hello.url + "/v1", api_key=TOKEN, max_retries=0)
        stream = await api.chat.completions.create(
            model="chat", extra_body=NAME, stream=True,
            messages=[{"role": "user", "content": "Hi"}])
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await api.close()
        return "".join(parts)

    assert asyncio.run(go()) == "first answer"


def test_models_are_the_prompts_and_errors_are_openai_errors(hello: Any) -> None:
    api = client(hello)
    assert [m.id for m in api.models.list()] == ["chat"]
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="user_name"):
        api.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        client(hello, key="wrong").models.list()


def _tools_server(setup: Any = None) -> LiveServer:
    return LiveServer(create_app(TOOLS, provider="mock", mock_responses=str(WEATHER),
                                 setup=setup))


QUESTION = [{"role": "user", "content": "Weather in London?"}]
FINAL = "It's currently 22.5°C and partly cloudy in London."


def test_client_side_tools_surface_as_tool_calls_and_continue() -> None:
    with _tools_server() as live:
        api = client(live)
        first = api.chat.completions.create(model="assistant", messages=QUESTION)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls
        assert call.type == "function" and call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "London", "country": "GB"}
        assert call.id.startswith("pkc_")
        follow = [*QUESTION, choice.message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id,
                   "content": json.dumps({"temp_c": 22.5, "sky": "partly cloudy"})}]
        second = api.chat.completions.create(model="assistant", messages=follow)
        assert second.choices[0].message.content == FINAL
        assert second.choices[0].finish_reason == "stop"
        # that held turn is finished: the same results again are refused
        with pytest.raises(openai.BadRequestError):
            api.chat.completions.create(model="assistant", messages=follow)
        with pytest.raises(openai.BadRequestError):  # results for calls never returned
            api.chat.completions.create(model="assistant", messages=[
                *QUESTION, {"role": "assistant", "tool_calls": [{
                    "id": "call_x", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_x", "content": "{}"}])


def test_client_side_tool_calls_stream_the_openai_way() -> None:
    with _tools_server() as live:
        api = client(live)
        chunks = list(api.chat.completions.create(model="assistant", messages=QUESTION,
                                                  stream=True))
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        calls = [t for d in deltas for t in (d.tool_calls or ())]
        assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
        follow = [*QUESTION, {"role": "assistant", "content": None, "tool_calls": [
            {"id": calls[0].id, "type": "function",
             "function": {"name": "get_weather", "arguments": calls[0].function.arguments}}]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "22.5 C"}]
        text = "".join(c.choices[0].delta.content or "" for c in api.chat.completions.create(
            model="assistant", messages=follow, stream=True) if c.choices)
        assert text == FINAL


def test_tools_with_setup_handlers_run_on_the_server() -> None:
    seen: list[dict[str, Any]] = []

    def setup(conversation: Any) -> None:
        conversation.on_tool("get_weather", lambda args: seen.append(args) or {"temp_c": 22.5})

    with _tools_server(setup) as live:
        answer = client(live).chat.completions.create(model="assistant", messages=QUESTION)
        assert answer.choices[0].message.content == FINAL
        assert answer.choices[0].message.tool_calls is None
        assert seen == [{"city": "London", "country": "GB"}]
