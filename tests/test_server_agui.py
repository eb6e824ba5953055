"""``POST /agui``: a RunAgentInput in, AG-UI events out, each parsed back with the
``ag-ui-protocol`` types; tools as TOOL_CALL_* events, failures as RUN_ERROR."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from promptkit.server import create_app
from promptkit.testing import FakeServer, Reply

from serve_support import HELLO, TOOLS, WEATHER, LiveServer, parse_sse

core = pytest.importorskip("ag_ui.core")
pydantic = pytest.importorskip("pydantic")

EVENT = pydantic.TypeAdapter(core.Event)


def run_input(messages: list[dict[str, Any]], **props: Any) -> dict[str, Any]:
    return {"threadId": "thread-1", "runId": "run-1", "state": {}, "messages": messages,
            "tools": [], "context": [], "forwardedProps": props}


def post(url: str, body: Any, path: str = "/agui") -> tuple[int, list[Any], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    if response.status != 200:
        return response.status, [], raw
    return 200, [EVENT.validate_python(data) for _, data in parse_sse(raw)], raw


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


def test_a_text_run_is_the_documented_sequence() -> None:
    script = {"turns": {1: "hello there", 2: "again"}}
    with LiveServer(create_app(HELLO, provider="mock", mock_responses=script)) as live:
        status, events, _ = post(live.url, run_input(
            [{"id": "u1", "role": "user", "content": "Hi"}], variables={"user_name": "Ada"}))
        assert status == 200
        assert kinds(events) == ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT",
                                 "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "RUN_FINISHED"]
        assert events[0].thread_id == "thread-1" and events[0].run_id == "run-1"
        assert "".join(e.delta for e in events[2:4]) == "hello there"
        assert len({e.message_id for e in events[1:5]}) == 1
        # the input's messages are the history (the mock answers the second turn)
        _, events, _ = post(live.url, run_input([
            {"id": "u1", "role": "user", "content": "Hi"},
            {"id": "a1", "role": "assistant", "content": "hello there"},
            {"id": "u2", "role": "user", "content": "More"}], variables={"user_name": "Ada"}))
        assert "".join(e.delta for e in events if e.type.value == "TEXT_MESSAGE_CONTENT") \
            == "again"


def test_tool_calls_are_tool_call_events_with_their_results() -> None:
    def setup(conversation: Any) -> None:
        conversation.on_tool("get_weather", lambda args: {"temp_c": 22.5})

    app = create_app(TOOLS, provider="mock", mock_responses=str(WEATHER), setup=setup)
    with LiveServer(app) as live:
        _, events, _ = post(live.url, run_input(
            [{"id": "u1", "role": "user", "content": "Weather?"}]), "/agui?prompt=assistant")
    names = kinds(events)
    assert names[:5] == ["RUN_STARTED", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END",
                         "TOOL_CALL_RESULT"]
    assert names[-1] == "RUN_FINISHED" and "TEXT_MESSAGE_START" in names
    start, args, end, result = events[1:5]
    assert start.tool_call_name == "get_weather"
    assert start.tool_call_id == args.tool_call_id == end.tool_call_id == result.tool_call_id
    assert json.loads(args.delta) == {"city": "London", "country": "GB"}
    assert json.loads(result.content) == {"temp_c": 22.5}


def test_a_failed_turn_is_run_error() -> None:
    key = "sk-test-agui-SECRET-0123456789"
    error = {"error": {"message": f"Incorrect API key provided: {key}",
                       "type": "invalid_request_error", "code": "invalid_api_key"}}
    with FakeServer(lambda request: Reply.json(401, error)) as fake, LiveServer(create_app(
            HELLO, provider="openai", base_url=fake.url + "/v1", api_key=key)) as live:
        _, events, raw = post(live.url, run_input(
            [{"id": "u1", "role": "user", "content": "Hi"}], variables={"user_name": "A"}))
    assert kinds(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[1].code == "AuthenticationError"
    assert key not in raw.decode()


def test_bad_input_is_400() -> None:
    with LiveServer(create_app(HELLO, provider="mock")) as live:
        assert post(live.url, {"threadId": 3})[0] == 400
        status, _, body = post(live.url, run_input(
            [{"id": "u1", "role": "user", "content": "x"}], prompt="nope"))
        assert status == 400 and json.loads(body)["error"]["type"] == "unknown_prompt"
