"""Human approval (HITL) and client-side tools: a turn suspends on held calls, decisions are
recorded in the store, resume() continues the turn."""

from __future__ import annotations

import json
from typing import Any

import pytest

import promptkit
from promptkit import ChunkType
from promptkit.stores import MemoryStore

from support import PACKS, Driver, kinds

ASSISTANT = PACKS / "assistant.pack.json"
TWO_CALLS = {"turns": {
    1: {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                       {"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    2: "Paris is sunny; Oslo is cold."}}


def open_mock(driver: Driver, script: Any = TWO_CALLS, **options: Any) -> Any:
    return driver.open(ASSISTANT, "assistant", provider="mock", mock_responses=script,
                       variables={"user_name": "Ada"}, **options)


def sent(conv: Any) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in conv._binding.options["transport"].requests]


def needs_oslo(args: dict[str, Any]) -> str | None:
    return "trips to Oslo need a manager's approval" if args["city"] == "Oslo" else None


def test_a_held_call_suspends_the_turn_and_resume_finishes_it(driver: Driver) -> None:
    conv = open_mock(driver)
    ran: list[str] = []
    conv.on_tool("get_weather", lambda args: ran.append(args["city"]) or "ok",
                 requires_approval=needs_oslo)
    chunks = driver.stream(conv, "weather in Paris and Oslo?")
    assert kinds(chunks) == ["tool_call", "tool_call", "tool_result", "approval_required",
                             "done"]
    held_chunk = chunks[3]
    assert held_chunk.tool_call is not None and held_chunk.tool_call.arguments == {"city": "Oslo"}
    assert held_chunk.text == "trips to Oslo need a manager's approval"
    response = chunks[-1].response
    assert response is not None and [p.name for p in response.pending_tools] == ["get_weather"]
    assert ran == ["Paris"]  # the other call ran at once
    pending = conv.pending_tools
    assert [(p.call_id, p.kind, p.decision) for p in pending] == [
        (held_chunk.tool_call.id, "approval", None)]

    driver.run(lambda: conv.approve(pending[0].call_id))
    assert conv.pending_tools[0].decision == "approved"
    resumed = driver.run(conv.resume)
    assert resumed.text == "Paris is sunny; Oslo is cold."
    assert ran == ["Paris", "Oslo"]
    assert resumed.pending_tools == ()
    roles = [m.role for m in conv.messages]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]  # no control records
    follow_up = sent(conv)[-1]["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "tool", "tool"]
    assert conv.pending_tools == []


def test_rejection_tells_the_model_why(driver: Driver) -> None:
    conv = open_mock(driver)
    conv.on_tool("get_weather", lambda args: "ok", requires_approval=True)
    response = driver.send(conv, "weather?")
    first, second = response.pending_tools
    driver.run(lambda: conv.approve(first.call_id, {"city": "Lyon"}))
    driver.run(lambda: conv.reject(second.call_id, "too far"))
    resumed = driver.run(conv.resume)
    results = list(resumed.tool_results)
    assert results[0].content == "ok" and not results[0].is_error
    assert results[1].is_error and "rejected: too far" in results[1].content
    assert resumed.tool_calls[0].arguments == {"city": "Lyon"}


def test_approved_arguments_are_merged_and_validated(driver: Driver) -> None:
    conv = open_mock(driver)
    seen: list[Any] = []
    conv.on_tool("get_weather", lambda args: seen.append(args) or "ok", requires_approval=True)
    first, second = driver.send(conv, "weather?").pending_tools
    driver.run(lambda: conv.approve(first.call_id, {"country": "FR"}))
    driver.run(lambda: conv.approve(second.call_id, {"city": 7}))  # invalid: city is a string
    resumed = driver.run(conv.resume)
    assert seen == [{"city": "Paris", "country": "FR"}]
    assert resumed.tool_results[1].is_error and "is not of type 'string'" in \
        resumed.tool_results[1].content


def test_bad_decisions_are_refused(driver: Driver) -> None:
    conv = open_mock(driver)
    conv.on_tool("get_weather", lambda args: "ok", requires_approval=needs_oslo)
    with pytest.raises(promptkit.PendingToolError, match="nothing to resume"):
        driver.run(conv.resume)
    held = driver.send(conv, "weather?").pending_tools[0]
    with pytest.raises(promptkit.PendingToolError, match="no held tool call 'nope'"):
        driver.run(lambda: conv.approve("nope"))
    with pytest.raises(promptkit.PendingToolError, match="still waiting"):
        driver.run(conv.resume)
    with pytest.raises(promptkit.PendingToolError, match="use approve"):
        driver.run(lambda: conv.send_tool_result(held.call_id, "x"))
    with pytest.raises(promptkit.PendingToolError, match="resume"):
        driver.send(conv, "something else")  # a new turn must not leave calls dangling
    driver.run(lambda: conv.approve(held.call_id))
    with pytest.raises(promptkit.PendingToolError, match="already approved"):
        driver.run(lambda: conv.reject(held.call_id))
    assert driver.run(conv.resume).text == "Paris is sunny; Oslo is cold."
    with pytest.raises(promptkit.PendingToolError, match="nothing to resume"):
        driver.run(conv.resume)


def test_two_conversation_objects_sharing_a_store_decide_once(driver: Driver) -> None:
    store = MemoryStore()
    first = open_mock(driver, store=store, conversation_id="shared")
    second = open_mock(driver, store=store, conversation_id="shared")
    for conv in (first, second):
        conv.on_tool("get_weather", lambda args: "ok", requires_approval=needs_oslo)
    held = driver.send(first, "weather?").pending_tools[0]
    assert [p.call_id for p in second.pending_tools] == [held.call_id]
    driver.run(lambda: second.approve(held.call_id))
    with pytest.raises(promptkit.PendingToolError, match="already approved"):
        driver.run(lambda: first.approve(held.call_id))
    assert driver.run(first.resume).text == "Paris is sunny; Oslo is cold."
    assert len(second.messages) == 5


def test_client_side_tools(driver: Driver) -> None:
    script = {"turns": {1: {"tool_calls": [{"name": "get_location", "arguments": {}}]},
                        2: "You are in Paris."}}
    conv = driver.open(ASSISTANT, "plain", provider="mock", mock_responses=script)
    conv.client_tool("get_location", description="The user's location",
                     parameters={"type": "object", "properties": {}})
    chunks = driver.stream(conv, "where am I?")
    assert kinds(chunks) == ["tool_call", "client_tool", "done"]
    call_id = chunks[1].tool_call.id  # type: ignore[union-attr]
    offered = sent(conv)[0]["tools"][0]["function"]
    assert offered["name"] == "get_location" and offered["description"] == "The user's location"
    driver.run(lambda: conv.send_tool_result(call_id, {"city": "Paris"}))
    if driver.is_async:
        import asyncio

        async def go() -> list[Any]:
            return [c async for c in conv.resume_stream()]
        resumed = asyncio.run(go())
    else:
        resumed = list(conv.resume_stream())
    assert resumed[0].type is ChunkType.TOOL_RESULT
    assert resumed[0].tool_result is not None
    assert json.loads(resumed[0].tool_result.content) == {"city": "Paris"}
    assert resumed[-1].response is not None
    assert resumed[-1].response.text == "You are in Paris."


def test_rejected_client_tool(driver: Driver) -> None:
    script = {"turns": {1: {"tool_calls": [{"name": "get_location", "arguments": {}}]},
                        2: "I could not get your location."}}
    conv = driver.open(ASSISTANT, "plain", provider="mock", mock_responses=script)
    conv.client_tool("get_location")
    held = driver.send(conv, "where am I?").pending_tools[0]
    assert held.kind == "client"
    driver.run(lambda: conv.reject_client_tool(held.call_id, "permission denied"))
    resumed = driver.run(conv.resume)
    assert resumed.tool_results[0].is_error
    assert "permission denied" in resumed.tool_results[0].content


APPROVER = r"""
import sys
import promptkit
from promptkit.stores import SQLiteStore

store = SQLiteStore(sys.argv[1])
conv = promptkit.resume("refund-1", sys.argv[2], "assistant", store=store, provider="mock")
held = conv.pending_tools
assert [p.decision for p in held] == [None], held
conv.approve(held[0].call_id)
try:
    conv.approve(held[0].call_id)
except promptkit.PendingToolError as exc:
    print("second approval refused:", exc)
print("approved", held[0].call_id)
"""


def test_an_approval_round_trip_across_two_processes(tmp_path: Any) -> None:
    """Process A holds a call, process B approves it, process A resumes the turn."""
    import subprocess
    import sys

    from promptkit.stores import SQLiteStore

    db = str(tmp_path / "shared.db")
    store = SQLiteStore(db)
    conv = promptkit.open(ASSISTANT, "assistant", provider="mock", store=store,
                          conversation_id="refund-1", variables={"user_name": "Ada"},
                          mock_responses=TWO_CALLS)
    ran: list[str] = []
    conv.on_tool("get_weather", lambda args: ran.append(args["city"]) or "ok",
                 requires_approval=needs_oslo)
    held = conv.send("weather?").pending_tools
    assert [p.name for p in held] == ["get_weather"] and ran == ["Paris"]

    done = subprocess.run([sys.executable, "-c", APPROVER, db, str(ASSISTANT)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "second approval refused: tool call" in done.stdout
    assert f"approved {held[0].call_id}" in done.stdout

    assert conv.pending_tools[0].decision == "approved"
    assert conv.resume().text == "Paris is sunny; Oslo is cold."
    assert ran == ["Paris", "Oslo"]
    store.close()
