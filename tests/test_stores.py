"""The store protocol, checked the same way on every store: memory, SQLite, Redis and the async
twins (driven through one event loop per test)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import Message, ToolCall, ToolResult, Usage
from promptkit.stores import (
    AsyncConversationStore,
    AsyncRedisStore,
    AsyncSQLiteStore,
    ConflictError,
    ContextSummary,
    ConversationExistsError,
    ConversationMetadata,
    ConversationStore,
    InvalidConversationIdError,
    MemoryStore,
    RedisStore,
    SQLiteStore,
)
from redis_server import RedisServer, start_or_skip

KINDS = ["memory", "sqlite", "sqlite-async", "redis", "redis-async"]

RICH = [
    Message(role="user", text="Hi — ünïcødé 你好 🌍, a lone surrogate \ud800 and \x00 NUL"),
    Message(role="assistant", tool_calls=(
        ToolCall(id="call_1", name="get_weather",
                 arguments={"city": "Paris", "days": [1, 2], "deep": {"x": None, "f": 0.1}},
                 raw_arguments='{"city":"Paris","days":[1,2],"deep":{"x":null,"f":0.1}}'),
        ToolCall(id="call_2", name="get_time", arguments={}, raw_arguments=""),
    ), usage=Usage(input_tokens=10, output_tokens=5, cached_tokens=2, reasoning_tokens=1),
        finish_reason="tool_calls",
        extra={"anthropic": {"thinking": [{"type": "thinking", "thinking": "hmm",
                                            "signature": "EqQBCkYIARgCIkD+/=="}]},
               "gemini": {"thought_signature": "c2ln"}, "n": 3, "ok": True}),
    Message(role="tool", tool_result=ToolResult(call_id="call_1", name="get_weather",
                                                content='{"temp": 21.5}')),
    Message(role="tool", tool_result=ToolResult(call_id="call_2", name="get_time",
                                                content="boom", is_error=True)),
    Message(role="assistant", text="It is 21.5 °C\nin Paris.", finish_reason="stop",
            usage=Usage(input_tokens=40, output_tokens=9)),
    Message(role="system", extra={"promptkit": {"decision": {"call_id": "call_1",
                                                             "action": "approved"}}}),
]


def turn(text: str) -> list[Message]:
    return [Message(role="user", text=text), Message(role="assistant", text=f"re: {text}")]


class SyncView:
    """An async store driven from a test's plain code, every call run on one event loop."""

    def __init__(self, store: Any, runner: asyncio.Runner) -> None:
        self.store = store
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

        return call


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_or_skip(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest,
               runner: asyncio.Runner, **options: Any) -> tuple[Any, Any]:
    """(the store as tests call it, a function closing it)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    if kind == "memory":
        memory = MemoryStore(**options)
        return memory, lambda: None
    if kind == "sqlite":
        sqlite = SQLiteStore(tmp_path / "store.db", **options)
        return sqlite, sqlite.close
    if kind == "sqlite-async":
        asqlite = AsyncSQLiteStore(tmp_path / "store.db", **options)
        return SyncView(asqlite, runner), lambda: runner.run(asqlite.aclose())
    server: RedisServer = request.getfixturevalue("redis_server")
    if kind == "redis":
        redis_store = RedisStore(server.url, prefix=prefix, **options)
        return redis_store, redis_store.close
    aredis = AsyncRedisStore(server.url, prefix=prefix, **options)
    return SyncView(aredis, runner), lambda: runner.run(aredis.aclose())


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, runner: asyncio.Runner
          ) -> Iterator[Any]:
    made, close = make_store(request.param, tmp_path, request, runner)
    yield made
    close()


def test_every_store_satisfies_its_protocol(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "a.db") as sqlite:
        for sync_store in (MemoryStore(), sqlite):
            assert isinstance(sync_store, ConversationStore)
    redis_store = RedisStore("redis://127.0.0.1:1/0")
    assert isinstance(redis_store, ConversationStore)
    redis_store.close()
    for async_store in (AsyncSQLiteStore(tmp_path / "a.db"),
                        AsyncRedisStore("redis://127.0.0.1:1/0")):
        assert isinstance(async_store, AsyncConversationStore)
    assert issubclass(ConflictError, promptkit.StoreError)
    assert issubclass(ConversationExistsError, promptkit.StoreError)
    assert issubclass(InvalidConversationIdError, promptkit.StoreError)
    assert issubclass(InvalidConversationIdError, ValueError)


def test_messages_round_trip_losslessly(store: Any) -> None:
    assert store.load("c1") is None
    assert store.append("c1", RICH, 0) == 1
    loaded = store.load("c1")
    assert loaded.id == "c1" and loaded.version == 1
    assert list(loaded.messages) == RICH
    signature = loaded.messages[1].extra["anthropic"]["thinking"][0]["signature"]
    assert signature == "EqQBCkYIARgCIkD+/=="


def test_versions_refuse_a_stale_append(store: Any) -> None:
    assert store.append("c", turn("one"), expected_version=0) == 1
    with pytest.raises(ConflictError, match="at version 1, expected 0"):
        store.append("c", turn("late"), expected_version=0)
    with pytest.raises(ConflictError):
        store.append("c", turn("future"), expected_version=5)
    assert store.append("c", turn("two"), expected_version=1) == 2
    loaded = store.load("c")
    assert loaded.version == 2
    assert [m.text for m in loaded.messages] == ["one", "re: one", "two", "re: two"]


def test_an_empty_turn_still_counts_as_a_version(store: Any) -> None:
    assert store.append("c", [], 0) == 1
    assert store.load("c").version == 1 and store.load("c").messages == ()


def test_metadata_is_saved_with_the_turn(store: Any) -> None:
    before = time.time()
    meta = ConversationMetadata(pack_id="hello", prompt="chat", pack_version="1.0.0",
                                variables={"user_name": "Ada", "tone": "é"})
    store.append("c", turn("one"), 0, metadata=meta)
    first = store.load("c").metadata
    assert (first.pack_id, first.prompt, first.pack_version) == ("hello", "chat", "1.0.0")
    assert dict(first.variables) == {"user_name": "Ada", "tone": "é"}
    assert first.created_at is not None and before - 1 <= first.created_at <= time.time() + 1
    assert first.updated_at == pytest.approx(first.created_at, abs=1)
    time.sleep(0.01)
    # Without metadata, only the updated time moves.
    store.append("c", turn("two"), 1)
    second = store.load("c").metadata
    assert dict(second.variables) == {"user_name": "Ada", "tone": "é"}
    assert second.created_at == first.created_at
    assert second.updated_at is not None and second.updated_at > first.updated_at  # type: ignore[operator]
    # The pack id stays the creator's; the rest follows the latest append that carries it.
    store.append("c", turn("three"), 2, metadata=ConversationMetadata(
        pack_id="other", prompt="support", pack_version="1.1.0", variables={}))
    third = store.load("c").metadata
    assert (third.pack_id, third.prompt, third.pack_version) == ("hello", "support", "1.1.0")
    assert dict(third.variables) == {}


def test_fork_copies_atomically_and_never_overwrites(store: Any) -> None:
    meta = ConversationMetadata(pack_id="hello", prompt="chat", pack_version="1",
                                variables={"user_name": "Ada"})
    store.append("src", turn("one"), 0, metadata=meta)
    store.append("src", turn("two"), 1)
    store.fork("src", "dst")
    copy = store.load("dst")
    assert copy.version == 2 and [m.text for m in copy.messages][-1] == "re: two"
    assert copy.metadata.pack_id == "hello" and dict(copy.metadata.variables) == {
        "user_name": "Ada"}
    # Independent afterwards, both ways.
    store.append("dst", turn("three"), 2)
    store.append("src", turn("other"), 2)
    assert [m.text for m in store.load("dst").messages][-2:] == ["three", "re: three"]
    assert [m.text for m in store.load("src").messages][-2:] == ["other", "re: other"]
    with pytest.raises(ConversationExistsError, match="'dst' already exists"):
        store.fork("src", "dst")
    assert store.load("dst").version == 3  # untouched by the refused fork
    store.fork("never-written", "empty-fork")  # nothing to copy: nothing created
    assert store.load("empty-fork") is None


def test_a_context_summary_rides_on_appends_and_forks(store: Any) -> None:
    """Saved with the turn that carries it; kept by appends that carry none; replaced by a
    newer one; copied by fork; left out of list(); gone with delete()."""
    first = ContextSummary(count=2, digest="d1", text="Ada likes tea — 你好 \ud800 \x00")
    store.append("c", turn("one"), 0, metadata=ConversationMetadata(pack_id="p"))
    assert store.load("c").metadata.summary is None
    store.append("c", turn("two"), 1, metadata=ConversationMetadata(pack_id="p",
                                                                    summary=first))
    assert store.load("c").metadata.summary == first
    store.append("c", turn("three"), 2, metadata=ConversationMetadata(pack_id="p"))
    store.append("c", turn("four"), 3)
    assert store.load("c").metadata.summary == first
    newer = ContextSummary(count=6, digest="d2", text="more")
    store.append("c", turn("five"), 4, metadata=ConversationMetadata(summary=newer))
    loaded = store.load("c")
    assert loaded.metadata.summary == newer and loaded.metadata.pack_id == "p"
    assert len(loaded.messages) == 10  # the history itself is untouched
    store.fork("c", "f")
    assert store.load("f").metadata.summary == newer
    with pytest.raises(ConflictError):  # a refused append saves nothing
        store.append("f", turn("late"), 0, metadata=ConversationMetadata(summary=first))
    assert store.load("f").metadata.summary == newer
    assert [i.metadata.summary for i in store.list()] == [None, None]
    store.delete("c")
    store.append("c", turn("again"), 0)
    assert store.load("c").metadata.summary is None
    created = ContextSummary(count=1, digest="d0", text="at creation")
    store.append("n", turn("new"), 0, metadata=ConversationMetadata(summary=created))
    assert store.load("n").metadata.summary == created


def test_delete_forgets_and_tolerates_unknown_ids(store: Any) -> None:
    store.append("c", turn("one"), 0)
    store.delete("c")
    assert store.load("c") is None
    assert [i.id for i in store.list()] == []
    store.delete("c")
    assert store.append("c", turn("again"), 0) == 1  # a fresh start, version 1
    assert [m.text for m in store.load("c").messages] == ["again", "re: again"]


def test_list_pages_by_id_with_a_prefix(store: Any) -> None:
    for n in range(25):
        store.append(f"chat-{n:02d}", turn(str(n)), 0,
                     metadata=ConversationMetadata(pack_id="p", prompt="chat"))
    store.append("other", turn("x"), 0)
    pages, after = [], None
    while True:
        page = store.list(prefix="chat-", after=after, limit=10)
        if not page:
            break
        pages.append([i.id for i in page])
        after = page[-1].id
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for page in pages for i in page] == [f"chat-{n:02d}" for n in range(25)]
    everything = store.list(limit=1000)
    assert [i.id for i in everything][-1] == "other" and len(everything) == 26
    info = everything[0]
    assert (info.version, info.message_count, info.metadata.prompt) == (1, 2, "chat")
    assert [i.id for i in store.list(after="chat-23", limit=100)] == ["chat-24", "other"]
    with pytest.raises(ValueError, match="limit"):
        store.list(limit=0)


BAD_IDS = ["", "a b", "x" * 256, "a{b}", "*", "a\nb", "key\r\nFLUSHALL\r\n", "ü", "a/b",
           "../x", "a*", "[a]", 42, None]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_conversation_ids_are_validated(store: Any, bad: Any) -> None:
    for call in (lambda: store.load(bad), lambda: store.append(bad, turn("x"), 0),
                 lambda: store.fork("ok", bad), lambda: store.fork(bad, "ok"),
                 lambda: store.delete(bad)):
        with pytest.raises(InvalidConversationIdError, match="invalid conversation id"):
            call()
    assert store.list() == []


def test_good_ids_are_accepted(store: Any) -> None:
    for good in ("a", "A-z_0.9:x", "x" * 255, "user:42:chat-1", "a:messages", "a:meta"):
        store.append(good, turn(good), 0)
    # ids that look like key suffixes never collide with another conversation's keys
    assert [m.text for m in store.load("a").messages] == ["a", "re: a"]
    assert [m.text for m in store.load("a:messages").messages] == ["a:messages",
                                                                   "re: a:messages"]


def test_open_rejects_an_invalid_id_before_any_turn() -> None:
    from support import PACKS

    with pytest.raises(InvalidConversationIdError):
        promptkit.open(PACKS / "hello.pack.json", "chat", provider="mock",
                       conversation_id="no spaces please")


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_threads_racing_on_one_conversation_lose_nothing(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest,
        runner: asyncio.Runner) -> None:
    store, close = make_store(kind, tmp_path, request, runner)
    conflicts = [0]
    lock = threading.Lock()

    def writer(name: str) -> None:
        for n in range(20):
            while True:
                stored = store.load("shared")
                try:
                    store.append("shared", turn(f"{name}-{n}"), 0 if stored is None
                                 else stored.version)
                    break
                except ConflictError:
                    with lock:
                        conflicts[0] += 1

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.load("shared")
    close()
    users = [m.text for m in final.messages if m.role == "user"]
    assert final.version == 80 and len(users) == 80 and len(set(users)) == 80
    pairs = list(zip(final.messages[::2], final.messages[1::2], strict=True))
    assert all(a.text and b.text == f"re: {a.text}" for a, b in pairs)  # no interleaving
    for i in range(4):  # each writer's turns in its own order
        mine = [int(u.split("-")[1]) for u in users if u.startswith(f"w{i}-")]
        assert mine == list(range(20))


def test_memory_store_ttl_and_max_entries() -> None:
    store = MemoryStore(ttl=0.05)
    store.append("a", turn("a"), 0)
    store.append("b", turn("b"), 0)
    time.sleep(0.03)
    store.append("b", turn("b2"), 1)  # refreshes b only
    time.sleep(0.03)
    assert store.load("a") is None and store.load("b") is not None
    assert [i.id for i in store.list()] == ["b"]
    assert store.append("a", turn("again"), 0) == 1  # an expired id starts afresh
    with pytest.raises(ValueError):
        MemoryStore(ttl=0)
    with pytest.raises(ValueError):
        MemoryStore(max_conversations=0)
    lru = MemoryStore(max_conversations=2)
    for name in "abc":
        lru.append(name, turn(name), 0)
    assert [i.id for i in lru.list()] == ["b", "c"]


def test_memory_store_by_default_never_expires() -> None:
    store = MemoryStore()
    for n in range(2000):
        store.append(f"c{n}", [], 0)
    assert len(store.list(limit=5000)) == 2000
