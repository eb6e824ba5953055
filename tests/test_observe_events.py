"""Events: ``conv.on`` through both drivers, fed by the turn engine's own steps."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

import promptkit
from promptkit.observe.events import EVENT_NAMES
from promptkit.testing import FakeServer, Reply

from support import PACKS, WIRE, Driver

ASSISTANT = PACKS / "assistant.pack.json"
WEATHER = {"turns": {
    1: {"type": "tool_calls", "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris", "country": "FR"}},
        {"name": "launch_rockets", "arguments": {}}]},
    2: "It is sunny in Paris.",
}}


def open_mock(driver: Driver, script: Any = None, **options: Any) -> Any:
    options.setdefault("variables", {"user_name": "Ada"})
    return driver.open(ASSISTANT, "assistant", provider="mock",
                       mock_responses=script or {"defaultResponse": "Hello there."}, **options)


def close(driver: Driver, conv: Any) -> None:
    driver.run(conv.close)


def test_a_tool_calling_turn_emits_each_step_once_in_order(driver: Driver) -> None:
    conv = open_mock(driver, WEATHER)
    seen: list[promptkit.Event] = []
    conv.on("*", seen.append)
    conv.on_tool("get_weather", lambda args: {"temp_c": 21})
    response = driver.send(conv, "Weather in Paris?")
    assert [e.name for e in seen] == [
        "turn.started", "provider.call.started", "provider.call.completed",
        "tool.call.started", "tool.call.completed", "tool.call.failed",
        "provider.call.started", "provider.call.completed", "turn.completed"]
    assert {e.conversation_id for e in seen} == {conv.id}
    assert {e.turn_index for e in seen} == {0}
    by_name = {e.name: e.data for e in seen}
    assert by_name["turn.started"] == {"prompt": "assistant", "provider": "mock",
                                       "model": "mock-model", "resumed": False}
    call = by_name["provider.call.completed"]
    assert call["provider"] == "mock" and call["model"] == "mock-model"
    assert call["attempt"] == 0 and call["status"] == 200
    assert call["response_id"] == "chatcmpl-mock"  # the mock speaks OpenAI Chat
    assert call["finish_reason"] == "stop" and call["usage"].output_tokens > 0
    assert call["cost"] == 0.0 and call["duration"] >= call["time_to_first_token"] >= 0
    assert by_name["tool.call.started"]["arguments"] == {"city": "Paris", "country": "FR"}
    assert by_name["tool.call.completed"]["result"] == '{"temp_c": 21}'
    assert by_name["tool.call.failed"]["name"] == "launch_rockets"
    assert "launch_rockets" in by_name["tool.call.failed"]["error"]
    done = by_name["turn.completed"]
    assert done["response"] == response and done["usage"] == response.usage
    assert done["tool_calls"] == 2 and done["finish_reason"] == "stop"
    assert all(isinstance(e.time, float) for e in seen)
    close(driver, conv)
    assert seen[-1].name == "conversation.closed" and seen[-1].turn_index is None


def test_prefix_and_exact_names_select_events(driver: Driver) -> None:
    conv = open_mock(driver, WEATHER)
    tools: list[str] = []
    done: list[str] = []
    conv.on("tool.call.*", lambda e: tools.append(e.name))
    conv.on("turn.completed", lambda e: done.append(e.name))
    conv.on_tool("get_weather", lambda args: "ok")
    driver.send(conv, "hi")
    assert tools == ["tool.call.started", "tool.call.completed", "tool.call.failed"]
    assert done == ["turn.completed"]


def test_turn_index_counts_the_turns() -> None:
    conv = open_mock(Driver("sync"))
    indexes: list[int | None] = []
    conv.on("turn.completed", lambda e: indexes.append(e.turn_index))
    for _ in range(3):
        conv.send("again")
    assert indexes == [0, 1, 2]


@pytest.mark.parametrize("name", ["no.such.event", "turn", "turn.*.x", "nope.*", ""])
def test_unknown_names_are_refused_with_the_list(name: str) -> None:
    conv = open_mock(Driver("sync"))
    with pytest.raises(ValueError) as info:
        conv.on(name, print)
    message = str(info.value)
    assert repr(name) in message
    assert all(known in message for known in EVENT_NAMES)


def test_a_non_callable_handler_is_a_type_error() -> None:
    conv = open_mock(Driver("sync"))
    with pytest.raises(TypeError, match="callable"):
        conv.on("turn.completed", "print")  # type: ignore[arg-type]
    conv.send("still works")


def test_a_raising_handler_is_logged_and_the_turn_goes_on(
        driver: Driver, caplog: pytest.LogCaptureFixture) -> None:
    conv = open_mock(driver)
    later: list[str] = []

    def broken(event: promptkit.Event) -> None:
        raise RuntimeError(f"handler broke on {event.name}")

    conv.on("*", broken)
    conv.on("turn.completed", lambda e: later.append(e.name))
    with caplog.at_level(logging.WARNING, logger="promptkit"):
        assert driver.send(conv, "hi").text == "Hello there."
    assert later == ["turn.completed"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(r.name == "promptkit" for r in warnings)
    assert "handler broke on turn.started" in warnings[0].getMessage()
    assert len(conv.messages) == 2


def test_async_handlers_run_on_both_drivers(driver: Driver) -> None:
    conv = open_mock(driver)
    seen: list[str] = []

    async def handler(event: promptkit.Event) -> None:
        await asyncio.sleep(0)
        seen.append(event.name)

    async def broken(event: promptkit.Event) -> None:
        raise ValueError("async handler broke")

    conv.on("turn.*", handler)
    conv.on("turn.completed", broken)
    if driver.is_async:
        async def go() -> None:
            await conv.send("hi")
            await conv.aclose()  # waits for the handlers still running

        asyncio.run(go())
    else:
        conv.send("hi")
    assert seen == ["turn.started", "turn.completed"]


def test_handlers_cannot_change_the_turn(driver: Driver) -> None:
    conv = open_mock(driver, WEATHER)
    got: list[dict[str, Any]] = []
    problems: list[str] = []

    def meddle(event: promptkit.Event) -> None:
        try:
            event.data["injected"] = True  # type: ignore[index]
        except TypeError:
            problems.append("data is read-only")
        try:
            event.name = "other"  # type: ignore[misc]
        except dataclasses.FrozenInstanceError:
            problems.append("event is frozen")
        if event.name == "tool.call.started":
            event.data["arguments"]["city"] = "Berlin"
        if event.name == "turn.completed":
            event.data["response"].tool_calls[0].arguments["city"] = "Berlin"

    conv.on("*", meddle)
    conv.on_tool("get_weather", lambda args: got.append(dict(args)) or "ok")
    response = driver.send(conv, "hi")
    assert got == [{"city": "Paris", "country": "FR"}]
    assert response.tool_calls[0].arguments == {"city": "Paris", "country": "FR"}
    history = driver.run(lambda: conv.messages)
    assert history[1].tool_calls[0].arguments == {"city": "Paris", "country": "FR"}
    assert problems[:2] == ["data is read-only", "event is frozen"]


def test_failed_and_cancelled_turns_emit_turn_failed(driver: Driver) -> None:
    loop = {"type": "tool_calls", "tool_calls": [{"name": "get_weather",
                                                   "arguments": {"city": "X", "country": "Y"}}]}
    conv = open_mock(driver, {"turns": dict.fromkeys(range(1, 10), loop)})
    conv.on_tool("get_weather", lambda args: "again")
    failed: list[promptkit.Event] = []
    conv.on("turn.failed", failed.append)
    with pytest.raises(promptkit.ToolLoopLimitError):
        driver.send(conv, "loop")
    assert failed[-1].data["error_type"] == "ToolLoopLimitError"
    assert failed[-1].data["cancelled"] is False
    assert "max_rounds" in failed[-1].data["error"]

    if driver.is_async:
        async def take_one() -> None:
            async with conv.stream("again") as stream:
                async for _ in stream:
                    break

        asyncio.run(take_one())
    else:
        with conv.stream("again") as stream:
            next(iter(stream))
    assert failed[-1].data["error_type"] == "cancelled" and failed[-1].data["cancelled"]


def test_task_cancellation_ends_the_turn_as_cancelled() -> None:
    conv = open_mock(Driver("async"), {"defaultResponse": "a b c d e f g h", "delay": 0.05})
    failed: list[promptkit.Event] = []
    conv.on("turn.failed", failed.append)

    async def go() -> None:
        task = asyncio.create_task(conv.send("slow"))
        await asyncio.sleep(0.08)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert [e.data["error_type"] for e in failed] == ["cancelled"]


def test_retries_and_failed_calls_are_reported(driver: Driver) -> None:
    with FakeServer() as server:
        server.enqueue(
            Reply.json(429, {"error": {"message": "slow down", "type": "rate_limit"}},
                       headers={"retry-after-ms": "1", "x-request-id": "req_429"}),
            Reply.sse(WIRE / "openai-chat" / "text-after-tool-result.sse",
                      headers={"x-request-id": "req_ok"}),
        )
        conv = driver.open(ASSISTANT, "assistant", provider="openai", model="gpt-4o-mini",
                           api_key="sk-events-0123456789abcdefghij",
                           base_url=server.url + "/v1", variables={"user_name": "Ada"})
        seen: list[promptkit.Event] = []
        conv.on("provider.call.*", seen.append)
        driver.send(conv, "hi")
    assert [e.name for e in seen] == [
        "provider.call.started", "provider.call.failed", "provider.call.retried",
        "provider.call.started", "provider.call.completed"]
    failed, retried, completed = seen[1].data, seen[2].data, seen[4].data
    assert failed["status"] == 429 and failed["error_type"] == "RateLimitError"
    assert failed["request_id"] == "req_429"
    assert retried["attempt"] == 0 and retried["delay"] >= 0
    assert retried["error_type"] == "RateLimitError" and retried["status"] == 429
    assert completed["attempt"] == 1 and completed["request_id"] == "req_ok"
    assert completed["provider"] == "openai"


def test_approval_required_and_fork_keeps_handlers(driver: Driver) -> None:
    script = {"turns": {1: {"type": "tool_calls", "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris", "country": "FR"}}]}}}
    conv = open_mock(driver, script)
    held: list[promptkit.Event] = []
    conv.on("tool.approval.required", held.append)
    conv.on_tool("get_weather", lambda args: "ok", requires_approval=True)
    response = driver.send(conv, "hi")
    assert response.pending_tools
    assert held[0].data["name"] == "get_weather"
    assert held[0].data["reason"] == "this tool requires approval"
    assert held[0].data["arguments"] == {"city": "Paris", "country": "FR"}
    fork = driver.fork(conv)
    closed: list[str] = []
    fork.on("conversation.closed", lambda e: closed.append(e.conversation_id))
    driver.run(fork.close)
    driver.run(fork.close)  # idempotent: one event
    assert closed == [fork.id]


def test_guardrail_and_eval_outcomes_have_their_events(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    """``promptkit.checks`` reports through these two calls (wired when guardrails land)."""

    @dataclasses.dataclass(frozen=True)
    class Outcome:
        type: str = "content_excludes"
        passed: bool = False
        message: str = "banned word"
        direction: str = "output"
        enforced: bool = False
        blocked: bool = False
        id: str = "tone"
        trigger: str = "every_turn"
        score: float = 0.5
        turn_index: int = 3
        metric: Any = None

    conv = open_mock(Driver("sync"))
    seen: list[promptkit.Event] = []
    conv.on("validation.failed", seen.append)
    conv.on("eval.completed", seen.append)
    with caplog.at_level(logging.WARNING, logger="promptkit"):
        conv._watch.validation_failed(Outcome(), 0)
    conv._watch.eval_completed(Outcome())
    assert [e.name for e in seen] == ["validation.failed", "eval.completed"]
    assert seen[0].data["type"] == "content_excludes" and seen[0].data["enforced"] is False
    assert seen[1].data["score"] == 0.5 and seen[1].turn_index == 3
    assert "monitor mode" in caplog.records[-1].getMessage()
