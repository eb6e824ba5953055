"""A conversation keeps its decoded history between turns: per-turn cost flat in history length.

Before each turn it asks the store for ``head()`` (version and incarnation) and reloads only
when another writer moved the version; after a commit it extends what it keeps. These tests
count the store's loads and check that every way another writer can change the history is
still seen, through both drivers and with every store.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit.engine.messages import Message
from promptkit.stores import MemoryStore, SQLiteStore
from redis_server import RedisServer, start_or_skip

from support import PACKS, Driver

HELLO = PACKS / "hello.pack.json"
OPTIONS: dict[str, Any] = {"provider": "mock", "variables": {"user_name": "Ada"}}


class CountingStore:
    """A store wrapper that counts full loads (and can hide ``head``)."""

    def __init__(self, store: Any, *, with_head: bool = True) -> None:
        self.store = store
        self.loads = 0
        if with_head:
            self.head = store.head

    def load(self, conversation_id: str) -> Any:
        self.loads += 1
        return self.store.load(conversation_id)

    def append(self, conversation_id: str, messages: Any, expected_version: int) -> Any:
        return self.store.append(conversation_id, messages, expected_version)

    def fork(self, source_id: str, target_id: str) -> Any:
        return self.store.fork(source_id, target_id)

    def delete(self, conversation_id: str) -> Any:
        return self.store.delete(conversation_id)


@pytest.fixture(autouse=True)
def _keep_every_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests use short conversations: keep them as if they were long."""
    monkeypatch.setattr("promptkit.conversation.kept.KEEP_FROM", 0)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server: RedisServer = start_or_skip(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "s.db")
    from promptkit.stores import RedisStore

    return RedisStore(request.getfixturevalue("redis_url"), prefix=f"kept{uuid.uuid4().hex[:12]}")


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_turns_load_the_history_once(kind: str, driver: Driver, tmp_path: Path,
                                     request: pytest.FixtureRequest) -> None:
    store = CountingStore(make_store(kind, tmp_path, request))
    conv = driver.open(HELLO, "chat", store=store, **OPTIONS)
    for n in range(6):
        driver.send(conv, f"message {n}")
    assert store.loads == 1  # the first turn; then head() said nothing moved
    assert [m.text for m in conv.messages if m.role == "user"] == [f"message {n}"
                                                                 for n in range(6)]
    assert store.head(conv.id)[0] == 6


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_another_writer_is_seen_at_the_next_turn(kind: str, driver: Driver, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    raw = make_store(kind, tmp_path, request)
    store = CountingStore(raw)
    conv = driver.open(HELLO, "chat", store=store, conversation_id="shared", **OPTIONS)
    driver.send(conv, "first")
    other = driver.open(HELLO, "chat", store=raw, conversation_id="shared", **OPTIONS)
    driver.send(other, "from the other one")
    driver.send(conv, "third")
    assert store.loads == 2  # reloaded because the version moved
    users = [m.text for m in conv.messages if m.role == "user"]
    assert users == ["first", "from the other one", "third"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_delete_and_rewrite_to_the_same_version_is_not_mistaken(
        kind: str, driver: Driver, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Same version number, new incarnation: the kept history must not be reused."""
    raw = make_store(kind, tmp_path, request)
    conv = driver.open(HELLO, "chat", store=raw, conversation_id="c", **OPTIONS)
    driver.send(conv, "old one")
    driver.send(conv, "old two")
    raw.delete("c")
    raw.append("c", [Message(role="user", text="new a"), Message(role="assistant", text="x")], 0)
    raw.append("c", [Message(role="user", text="new b"), Message(role="assistant", text="y")], 1)
    driver.send(conv, "after")
    users = [m.text for m in conv.messages if m.role == "user"]
    assert users == ["new a", "new b", "after"]


def test_clear_then_continue(driver: Driver) -> None:
    conv = driver.open(HELLO, "chat", **OPTIONS)
    driver.send(conv, "one")
    driver.clear(conv)
    driver.send(conv, "two")
    assert [m.text for m in conv.messages if m.role == "user"] == ["two"]


def test_a_store_without_head_loads_every_turn(driver: Driver) -> None:
    store = CountingStore(MemoryStore(), with_head=False)
    conv = driver.open(HELLO, "chat", store=store, **OPTIONS)
    for n in range(3):
        driver.send(conv, f"m{n}")
    assert store.loads == 3
    assert len(conv.messages) == 6


def test_a_failed_turn_keeps_the_history_consistent(driver: Driver) -> None:
    store = CountingStore(MemoryStore())
    conv = driver.open(HELLO, "chat", store=store, **OPTIONS)
    driver.send(conv, "kept")

    def refuse(*_: Any) -> Any:
        raise promptkit.StoreError("disk full")

    store.append = refuse  # type: ignore[method-assign]
    with pytest.raises(promptkit.StoreError):
        driver.send(conv, "lost")
    del store.append
    driver.send(conv, "next")
    assert store.loads == 1  # the failed turn changed nothing that was kept
    assert [m.text for m in conv.messages if m.role == "user"] == ["kept", "next"]


def test_the_request_carries_the_kept_history(driver: Driver) -> None:
    """What the model sees after many kept turns is the whole history, in order."""
    conv = driver.open(HELLO, "chat", **OPTIONS)
    transport = conv._binding.options["transport"]
    for n in range(4):
        driver.send(conv, f"q{n}")
    sent = [json.loads(request.body)["messages"] for request in transport.requests]
    assert [len(messages) for messages in sent] == [2, 4, 6, 8]  # system + history + new
    assert [m["content"] for m in sent[-1] if m["role"] == "user"] == ["q0", "q1", "q2", "q3"]


def test_async_store_head_is_awaited(tmp_path: Path) -> None:
    from promptkit.stores import AsyncSQLiteStore

    async def go() -> list[str]:
        store = AsyncSQLiteStore(tmp_path / "a.db")
        async with promptkit.open_async(HELLO, "chat", store=store, **OPTIONS) as conv:
            for n in range(3):
                await conv.send(f"a{n}")
            version, incarnation = await store.head(conv.id)
            assert (version, len(incarnation)) == (3, 32)
            stored = await store.load(conv.id)
            assert stored is not None
            return [m.text for m in stored.messages if m.role == "user"]

    assert asyncio.run(go()) == ["a0", "a1", "a2"]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_head_reports_version_and_incarnation(kind: str, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    store = make_store(kind, tmp_path, request)
    assert store.head("h1") == (0, "")
    store.append("h1", [Message(role="user", text="a")], 0)
    version, first = store.head("h1")
    assert version == 1 and first
    store.append("h1", [Message(role="user", text="b")], 1)
    assert store.head("h1") == (2, first)
    store.delete("h1")
    store.append("h1", [Message(role="user", text="c")], 0)
    store.append("h1", [Message(role="user", text="d")], 1)
    version, second = store.head("h1")
    assert version == 2 and second != first


def test_the_budget_drops_the_least_recently_used_histories(driver: Driver,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from promptkit.conversation.kept import KEPT, KeptHistories

    budget = KeptHistories(6000)
    monkeypatch.setattr("promptkit.conversation.kept.KEPT", budget)
    stores = [CountingStore(MemoryStore()) for _ in range(3)]
    convs = [driver.open(HELLO, "chat", store=s, **OPTIONS) for s in stores]
    for conv in convs:
        driver.send(conv, "one")  # 2 messages each: about 1,200 bytes kept
    assert budget.total <= 6000
    for _ in range(3):
        driver.send(convs[2], "the newest keeps growing")
    assert convs[0]._history is None  # dropped first (least recently used)
    assert convs[2]._history is not None
    before = stores[0].loads
    driver.send(convs[0], "two")  # simply loads again
    assert stores[0].loads == before + 1
    assert [m.text for m in convs[0].messages if m.role == "user"] == ["one", "two"]
    assert KEPT is not budget


def test_a_zero_budget_keeps_nothing(driver: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.conversation.kept import KeptHistories

    monkeypatch.setattr("promptkit.conversation.kept.KEPT", KeptHistories(0))
    store = CountingStore(MemoryStore())
    conv = driver.open(HELLO, "chat", store=store, **OPTIONS)
    for n in range(3):
        driver.send(conv, f"m{n}")
    assert store.loads == 3 and conv._history is None


def test_each_history_message_is_converted_to_the_wire_once(driver: Driver,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from promptkit.providers import openai_chat

    converted: list[str] = []
    original = openai_chat._message

    def counting(message: Message) -> Any:
        converted.append(message.text)
        return original(message)

    monkeypatch.setattr(openai_chat, "_message", counting)
    conv = driver.open(HELLO, "chat", **OPTIONS)
    for n in range(4):
        driver.send(conv, f"q{n}")
    # every turn converts only its new user message (and, after a reply, nothing again)
    assert [text for text in converted if text.startswith("q")] == ["q0", "q1", "q2", "q3"]
    assert len(converted) == 4 + 3  # 4 user messages, 3 earlier replies (each once)
    bodies = [json.loads(r.body)["messages"] for r in conv._binding.options["transport"].requests]
    assert bodies[-1][1:] == [original(m) for m in conv.messages[:-1]]  # sent before the reply


def test_the_wire_memo_reuses_the_common_prefix_only() -> None:
    from promptkit.engine.dialect import WireMemo

    memo = WireMemo()
    kept = [Message(role="user", text=f"k{n}") for n in range(3)]
    for n in range(100):  # e.g. failed turns' messages, never committed: nothing piles up
        memo.convert([*kept, Message(role="user", text=f"lost {n}")], lambda m: {"t": m.text})
    assert len(memo) == 4
    again = memo.convert(kept, lambda m: {"t": "recomputed"})
    assert again == [{"t": "k0"}, {"t": "k1"}, {"t": "k2"}]  # reused, not converted again
    other = [kept[0], Message(role="user", text="k1"), kept[2]]  # equal text, new object
    assert memo.convert(other, lambda m: {"t": "new " + m.text}) == [
        {"t": "k0"}, {"t": "new k1"}, {"t": "new k2"}]  # from the first difference on


def test_short_histories_are_not_kept(driver: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under KEEP_FROM messages a conversation reloads each turn and keeps nothing decoded
    (an idle short conversation costs what its store holds); from then on it keeps."""
    monkeypatch.setattr("promptkit.conversation.kept.KEEP_FROM", 6)
    store = CountingStore(MemoryStore())
    conv = driver.open(HELLO, "chat", store=store, **OPTIONS)
    for n in range(3):
        driver.send(conv, f"m{n}")  # 2, 4, 6 messages after each turn
        assert (conv._history is None) == (n < 2)
        assert (len(conv._wire_memo) == 0) == (n < 2)
    driver.send(conv, "m3")
    driver.send(conv, "m4")
    assert store.loads == 3  # turns 1-3 loaded; the 6 messages after turn 3 were kept
