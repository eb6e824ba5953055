"""Stream lifecycle (issue 12, item 9) and stream reprs (item 6): a stream starts its turn at
the first iteration or on entering ``with``; one never iterated, or partly consumed and
dropped, does not keep the conversation busy; problems found before any I/O still raise from
``stream()`` itself."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import promptkit
from promptkit import ChunkType

from support import PACKS, Driver

ASSISTANT = PACKS / "assistant.pack.json"


def open_mock(driver: Driver, answer: str = "one two three four", **options: Any) -> Any:
    options.setdefault("variables", {"user_name": "Ada"})
    return driver.open(ASSISTANT, "assistant", provider="mock",
                       mock_responses={"defaultResponse": answer}, **options)


def test_a_stream_never_iterated_holds_nothing(driver: Driver) -> None:
    conv = open_mock(driver)
    idle = conv.stream("first")
    assert idle.state == "not started"
    assert driver.send(conv, "second").text == "one two three four"
    assert [m.text for m in conv.messages] == ["second", "one two three four"]
    # the idle stream can still run afterwards, on the history as it is then
    chunks = driver.run(idle.until_done)
    assert chunks.text == "one two three four"
    assert [m.text for m in conv.messages][2] == "first"
    assert idle.state == "done"


def test_gc_is_not_needed_to_free_the_conversation(driver: Driver) -> None:
    gc.disable()
    try:
        conv = open_mock(driver)
        conv.stream("never iterated")
        assert driver.send(conv, "next").text
    finally:
        gc.enable()


def test_sync_partly_consumed_and_dropped_frees_the_conversation() -> None:
    conv = open_mock(Driver("sync"))
    gc.disable()
    try:
        stream = conv.stream("first")
        assert next(iter(stream)).type is ChunkType.TEXT
        assert stream.state == "streaming"
        del stream
        assert conv.send("second").text
    finally:
        gc.enable()
    assert [m.text for m in conv.messages] == ["second", "one two three four"]


def test_async_partly_consumed_and_dropped_frees_the_conversation_at_once() -> None:
    async def go() -> list[str]:
        conv = open_mock(Driver("async"))
        stream = conv.stream("first")
        async for chunk in stream:
            assert chunk.type is ChunkType.TEXT
            break
        assert stream.state == "streaming"
        del stream
        # no await between dropping the stream and the next turn: the generator's own
        # cleanup has not run yet, but the conversation is free already
        response = await conv.send("second")
        assert response.text
        return [m.text for m in conv.messages]

    gc.disable()
    try:
        assert asyncio.run(go()) == ["second", "one two three four"]
    finally:
        gc.enable()


def test_async_for_over_a_dropped_stream_object_keeps_the_turn() -> None:
    """``async for chunk in conv.stream(...)`` holds the stream while iterating: the turn is not
    released under the loop (the stream is the iterator, not its generator)."""
    async def go() -> list[str]:
        conv = open_mock(Driver("async"))
        texts = []
        async for chunk in conv.stream("first"):
            gc.collect()
            if chunk.type is ChunkType.TEXT:  # (the turn is over once DONE arrives)
                with pytest.raises(promptkit.ConversationBusyError):
                    conv.stream("meanwhile")
            texts.append(chunk.type.value)
        return texts

    assert asyncio.run(go())[-1] == "done"


def test_problems_before_io_still_raise_from_stream(driver: Driver) -> None:
    conv = driver.open(ASSISTANT, "assistant", provider="mock")
    with pytest.raises(promptkit.MissingVariableError):
        conv.stream("hi")  # user_name is missing
    conv = open_mock(driver)
    first = conv.stream("one")
    driver.run(first.__aenter__ if driver.is_async else first.__enter__)
    assert first.state == "streaming"
    with pytest.raises(promptkit.ConversationBusyError):
        conv.stream("two")
    driver.run(first.close)
    assert first.state == "closed"
    driver.run(conv.close)
    with pytest.raises(promptkit.ConversationClosedError):
        conv.stream("three")


def test_a_stream_started_while_another_runs_raises_busy_when_iterated(driver: Driver) -> None:
    conv = open_mock(driver)
    first, second = conv.stream("one"), conv.stream("two")
    driver.run(first.__aenter__ if driver.is_async else first.__enter__)
    with pytest.raises(promptkit.ConversationBusyError):
        driver.run(second.until_done)
    assert driver.run(first.until_done).text
    assert conv.messages[0].text == "one"


def test_stream_repr_shows_its_state_and_conversation(driver: Driver) -> None:
    conv = open_mock(driver, conversation_id="chat-7")
    stream = conv.stream("hi")
    name = "AsyncStream" if driver.is_async else "Stream"
    assert repr(stream) == f"{name}(conversation_id='chat-7', state='not started')"
    driver.run(stream.until_done)
    assert repr(stream) == f"{name}(conversation_id='chat-7', state='done')"
    closed = conv.stream("bye")
    driver.run(closed.close)
    assert closed.state == "closed"
    failing = open_mock(driver, "not JSON", response_format={"type": "json_object"})
    bad = failing.stream("hi")
    with pytest.raises(promptkit.ResponseParseError):
        driver.run(bad.until_done)
    assert bad.state == "failed" and "failed" in repr(bad)
