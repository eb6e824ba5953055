"""The tool loop in depth: schemas, coercion, validation, timeouts, parallelism, repeats."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import pytest

import promptkit
from promptkit import ChunkType
from promptkit.engine.arguments import argument_problems, coerce_arguments
from promptkit.tools.signature import schema_from_signature

from support import PACKS, Driver

ASSISTANT = PACKS / "assistant.pack.json"


def call_turns(*calls: tuple[str, dict[str, Any]], answer: str = "done") -> dict[str, Any]:
    return {"turns": {1: {"tool_calls": [{"name": n, "arguments": a} for n, a in calls]},
                      2: answer}}


def open_mock(driver: Driver, script: Any, prompt: str = "assistant") -> Any:
    variables = {"user_name": "Ada"} if prompt == "assistant" else {}
    return driver.open(ASSISTANT, prompt, provider="mock", mock_responses=script,
                       variables=variables)


def sent(conv: Any) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in conv._binding.options["transport"].requests]


def test_string_encoded_numbers_and_booleans_are_coerced() -> None:
    schema = {"type": "object", "properties": {
        "n": {"type": "integer"}, "x": {"type": "number"}, "b": {"type": "boolean"},
        "nested": {"type": "object", "properties": {"k": {"type": "integer"}}},
        "items": {"type": "array", "items": {"type": "number"}}}}
    args = {"n": "3", "x": "2.5", "b": "TRUE", "nested": {"k": "7"}, "items": ["1", "1.5"],
            "other": "5"}
    assert coerce_arguments(schema, args) == {"n": 3, "x": 2.5, "b": True, "nested": {"k": 7},
                                              "items": [1, 1.5], "other": "5"}
    assert coerce_arguments(schema, {"n": "three"}) == {"n": "three"}
    assert argument_problems(schema, {"n": "three"}) == ["n: 'three' is not of type 'integer'"]


@dataclass
class Point:
    x: float
    y: float


class Local:
    pass


def test_schema_from_type_hints() -> None:
    def locate(city: str, limit: int = 3, exact: bool | None = None,
               unit: Literal["c", "f"] = "c", tags: list[str] | None = None,
               at: Point | None = None, ctx: promptkit.ToolContext | None = None) -> str:
        """Find a city.

        More details that the model does not need."""
        return city

    schema, description = schema_from_signature(locate)
    assert description == "Find a city."
    assert schema["required"] == ["city"]
    props = schema["properties"]
    assert props["city"] == {"type": "string"}
    assert props["limit"] == {"type": "integer", "default": 3}
    assert props["exact"]["type"] == "boolean"
    assert props["unit"] == {"enum": ["c", "f"], "default": "c"}
    assert props["tags"]["type"] == "array" and props["tags"]["items"] == {"type": "string"}
    assert props["at"]["properties"]["x"] == {"type": "number"}
    assert "ctx" not in props

    def odd(city: str, thing: Local) -> str:  # an unresolvable hint leaves that field untyped
        return city

    odd.__annotations__["thing"] = "NoSuchType"
    schema, _ = schema_from_signature(odd)
    assert schema["properties"] == {"city": {"type": "string"}, "thing": {}}


def test_invalid_arguments_become_an_error_result_the_model_can_fix(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"country": 42})))
    called: list[Any] = []
    conv.on_tool("get_weather", lambda args: called.append(args) or "sunny")
    response = driver.send(conv, "weather?")
    result = response.tool_results[0]
    assert result.is_error and called == []
    assert "'city' is a required property" in result.content
    assert "country: 42 is not of type 'string'" in result.content
    assert "call the tool again" in result.content


def test_coerced_arguments_reach_the_handler(driver: Driver, tmp_path: Any) -> None:
    data = json.loads(ASSISTANT.read_text())
    data["tools"]["get_weather"]["parameters"]["properties"]["days"] = {"type": "integer"}
    path = tmp_path / "coerce.pack.json"
    path.write_text(json.dumps(data))
    conv = driver.open(path, "assistant", provider="mock", variables={"user_name": "Ada"},
                       mock_responses=call_turns(("get_weather", {"city": "Paris",
                                                                  "days": "3"})))
    seen: list[Any] = []
    conv.on_tool("get_weather", lambda args: seen.append(args) or "ok")
    driver.send(conv, "weather?")
    assert seen == [{"city": "Paris", "days": 3}]


def test_arguments_that_are_not_json_are_refused(driver: Driver) -> None:
    from promptkit.engine.tool_round import plan_calls
    from promptkit.tools.registry import tool_entry

    call = promptkit.ToolCall(id="1", name="t", arguments={}, raw_arguments='{"city": "Par')
    plan = plan_calls([call], {"t": tool_entry(lambda args: 1)}, schemas={},
                      allowed=None, blocklist=(), conversation_id="c", deadline=1.0)
    assert plan.runs == [] and plan.slots[0] is not None and plan.slots[0].is_error
    assert "not a JSON object" in plan.slots[0].content


def test_code_defined_tools_get_a_schema_and_named_arguments(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("lookup_order", {"order_id": "A1", "items": "true"})),
                     prompt="plain")

    @conv.tool
    def lookup_order(order_id: str, items: bool = False) -> dict[str, Any]:
        """Look up an order by id."""
        return {"id": order_id, "items": items}

    response = driver.send(conv, "order?")
    assert json.loads(response.tool_results[0].content) == {"id": "A1", "items": True}
    offered = sent(conv)[0]["tools"][0]["function"]
    assert offered["name"] == "lookup_order"
    assert offered["description"] == "Look up an order by id."
    assert offered["parameters"]["required"] == ["order_id"]


def test_pack_schema_wins_over_type_hints(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"city": "Paris"})))

    @conv.tool
    def get_weather(city: str, country: str = "FR", ctx: promptkit.ToolContext | None = None
                    ) -> str:
        assert ctx is not None and ctx.tool_name == "get_weather"
        return f"{city}/{country}"

    response = driver.send(conv, "weather?")
    assert response.tool_results[0].content == "Paris/FR"
    offered = sent(conv)[0]["tools"][0]["function"]
    assert offered["description"] == "Get current weather for a city"  # from the pack


def test_two_tools_run_at_the_same_time_results_in_call_order(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"city": "Slow"}),
                                        ("get_weather", {"city": "Fast"})), prompt="assistant")
    running = threading.Semaphore(0)
    overlap: list[bool] = []

    def weather(args: dict[str, Any]) -> str:
        running.release()
        if args["city"] == "Slow":
            time.sleep(0.3)
            # the fast call started while the slow one was running
            overlap.append(running.acquire(blocking=False) or True)
        return args["city"]

    conv.on_tool("get_weather", weather)
    started = time.monotonic()
    chunks = driver.stream(conv, "two cities")
    elapsed = time.monotonic() - started
    results = [c.tool_result.content for c in chunks
               if c.type is ChunkType.TOOL_RESULT and c.tool_result]
    assert results == ["Slow", "Fast"]
    assert elapsed < 0.6  # concurrent, not 2 × 0.3 s in a row
    kinds = [c.type for c in chunks]
    assert kinds.index(ChunkType.TOOL_RESULT) > kinds.index(ChunkType.TOOL_CALL)


def test_async_handlers_run_concurrently(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"city": "A"}),
                                        ("get_weather", {"city": "B"})))

    async def weather(args: dict[str, Any]) -> str:
        await asyncio.sleep(0.3)
        return args["city"]

    conv.on_tool("get_weather", weather)
    started = time.monotonic()
    response = driver.send(conv, "two")
    assert [r.content for r in response.tool_results] == ["A", "B"]
    assert time.monotonic() - started < 0.55


def test_a_hung_handler_times_out_into_an_error_result(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"city": "A"}),
                                        ("get_weather", {"city": "B"})))
    release = threading.Event()

    def weather(args: dict[str, Any]) -> str:
        if args["city"] == "A":
            release.wait(5)
        return args["city"]

    conv.on_tool("get_weather", weather, timeout=0.2)
    try:
        response = driver.send(conv, "two")
    finally:
        release.set()
    first, second = response.tool_results
    assert first.is_error and "did not finish within 0.2 s" in first.content
    assert second.content == "B" and not second.is_error
    assert response.text == "done"


def test_huge_results_are_truncated_visibly(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"city": "A"})))
    conv.on_tool("get_weather", lambda args: "x" * (2 << 20))
    result = driver.send(conv, "big").tool_results[0]
    assert len(result.content) < (1 << 20) + 100 and "[truncated:" in result.content


def test_identical_repeated_calls_are_stopped(driver: Driver, tmp_path: Any) -> None:
    data = json.loads(ASSISTANT.read_text())
    data["prompts"]["assistant"]["tool_policy"] = {"max_rounds": 10}
    path = tmp_path / "loop.pack.json"
    path.write_text(json.dumps(data))
    same = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    conv = driver.open(path, "assistant", provider="mock", variables={"user_name": "Ada"},
                       mock_responses={"turns": dict.fromkeys(range(1, 10), same)})
    calls: list[Any] = []
    conv.on_tool("get_weather", lambda args: calls.append(args) or "sunny")
    chunks = driver.stream(conv, "loop")
    results = [c.tool_result for c in chunks if c.type is ChunkType.TOOL_RESULT]
    assert len(calls) == 2  # the third identical call is refused ...
    assert results[2] is not None and "repeated call ignored" in results[2].content
    error = chunks[-1].error  # ... and a fourth ends the turn
    assert isinstance(error, promptkit.ToolLoopLimitError) and "repeating" in str(error)


def test_max_tool_calls_per_turn(driver: Driver, tmp_path: Any) -> None:
    data = json.loads(ASSISTANT.read_text())
    data["prompts"]["assistant"]["tool_policy"] = {"max_tool_calls_per_turn": 2}
    path = tmp_path / "calls.pack.json"
    path.write_text(json.dumps(data))
    script = call_turns(*[("get_weather", {"city": c}) for c in "ABC"])
    conv = driver.open(path, "assistant", provider="mock", variables={"user_name": "Ada"},
                       mock_responses=script)
    conv.on_tool("get_weather", lambda args: "x")
    with pytest.raises(promptkit.ToolLoopLimitError, match="max_tool_calls_per_turn"):
        driver.send(conv, "three")


def test_blocklisted_and_unlisted_tools_are_refused(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_time", {}), ("delete_everything", {})))
    conv.on_tool("get_time", lambda args: "noon")
    conv.on_tool("delete_everything", lambda args: "gone")
    response = driver.send(conv, "go")
    blocked, unlisted = response.tool_results
    assert blocked.is_error and "blocked" in blocked.content
    assert unlisted.is_error and "not available" in unlisted.content


def test_http_tools_register_through_on_tool_http(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"city": "Paris"})))
    with pytest.raises(TypeError):
        conv.on_tool_http("get_weather", lambda args: "not an HTTPTool")
    with pytest.raises(promptkit.HTTPToolRefusedError):
        promptkit.HTTPTool("http://169.254.169.254/latest/meta-data")
    conv.on_tool_http("get_weather", promptkit.HTTPTool("http://localhost:9/weather"))
    result = driver.send(conv, "weather?").tool_results[0]
    assert result.is_error and "loopback" in result.content  # refused before connecting


def test_registering_from_many_threads_loses_nothing() -> None:
    from promptkit.tools.registry import ToolRegistry

    registry = ToolRegistry()
    start = threading.Barrier(8)

    def handler(args: dict[str, Any]) -> str:
        return "ok"

    def register(index: int) -> None:
        start.wait()
        for n in range(50):
            registry.register(f"t{index}_{n}", handler)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    before = registry.copy()
    for thread in threads:
        thread.join()
    assert len(registry.snapshot()) == 400
    registry.register("late", handler)
    assert "late" not in before.snapshot() and len(before.snapshot()) <= 400
    assert ToolRegistry().snapshot() == {}  # registries without tools stay empty
