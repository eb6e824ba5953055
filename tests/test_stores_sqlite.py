"""SQLiteStore specifics: the file format (WAL, migrations, application id), foreign and
corrupted files, several connections and the async twin's event-loop friendliness."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import promptkit
from promptkit import Message
from promptkit.stores import AsyncSQLiteStore, ConflictError, SQLiteStore
from promptkit.stores.sqlite import APPLICATION_ID, SCHEMA_VERSION

from support import PACKS

HELLO = PACKS / "hello.pack.json"


def turn(text: str) -> list[Message]:
    return [Message(role="user", text=text), Message(role="assistant", text=f"re: {text}")]


def test_a_new_file_gets_wal_the_schema_and_our_application_id(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with SQLiteStore(path) as store:
        store.append("c", turn("hi"), 0)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        rows = db.execute("SELECT version, description FROM promptkit_migrations").fetchall()
        assert rows == [(1, "conversations and messages"), (2, "context summaries")]
        assert SCHEMA_VERSION == 2
        assert db.execute("SELECT turn, seq FROM messages ORDER BY seq").fetchall() == [
            (1, 0), (1, 1)]
    finally:
        db.close()


def test_reopening_keeps_everything_and_runs_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    with SQLiteStore(path) as first:
        first.append("c", turn("one"), 0)
    with SQLiteStore(path) as second:
        assert second.load("c").version == 1  # type: ignore[union-attr]
        second.append("c", turn("two"), 1)
    with SQLiteStore(path) as third:
        assert [m.text for m in third.load("c").messages] == [  # type: ignore[union-attr]
            "one", "re: one", "two", "re: two"]
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM promptkit_migrations").fetchone()[0] == \
        SCHEMA_VERSION
    db.close()


def test_many_openers_of_a_new_file_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    stores: list[SQLiteStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def opener() -> None:
        barrier.wait()
        try:
            stores.append(SQLiteStore(path))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(stores) == 8
    for n, store in enumerate(stores):
        store.append(f"c{n}", turn("hi"), 0)
    assert len(stores[0].list()) == 8
    for store in stores:
        store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM promptkit_migrations").fetchone()[0] == \
        SCHEMA_VERSION
    db.close()


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteStore(path) as store:
        assert store.append("c", [], 0) == 1


@pytest.mark.parametrize("content", [
    b"this is a text file, not a database\n" * 100,
    os.urandom(8192),
    b"SQLite format 3\x00" + b"\xff" * 4080,  # a damaged header
], ids=["text", "random", "bad-header"])
def test_a_file_that_is_not_a_database_is_a_clear_store_error(
        tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(content)
    with pytest.raises(promptkit.StoreError, match=r"junk\.db is (corrupted|not a promptkit)"):
        SQLiteStore(path)
    assert path.read_bytes() == content  # untouched


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(promptkit.StoreError,
                       match=r"foreign\.db is not a promptkit conversation store: it has "
                             r"other tables \(users\)"):
        SQLiteStore(path)
    marked = tmp_path / "marked.db"
    db = sqlite3.connect(marked)
    db.execute("PRAGMA application_id = 1234")
    db.commit()
    db.close()
    with pytest.raises(promptkit.StoreError, match="application_id is 0x4d2"):
        SQLiteStore(marked)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO promptkit_migrations VALUES (99, 'from the future', 0)")
    db.commit()
    db.close()
    with pytest.raises(promptkit.StoreError, match="schema is version 99, newer"):
        SQLiteStore(path)


def test_corrupted_pages_surface_as_store_errors(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    with SQLiteStore(path) as store:
        for n in range(40):
            store.append(f"c{n}", [Message(role="user", text="x" * 2000)], 0)
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), page):  # keep the header page, wreck the rest
        data[offset:offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(promptkit.StoreError, match="corrupted"):
        store = SQLiteStore(path)
        try:
            for n in range(40):
                store.load(f"c{n}")
            store.list(limit=100)
        finally:
            store.close()


def test_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(promptkit.StoreError, match="unable to open"):
        SQLiteStore(tmp_path / "no" / "such" / "dir.db")
    with pytest.raises(ValueError, match="MemoryStore"):
        SQLiteStore(":memory:")


def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    store.close()
    store.close()
    with pytest.raises(promptkit.StoreError, match="closed"):
        store.load("c")


def test_two_store_objects_on_one_file_see_each_other_and_conflict(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with SQLiteStore(path) as a, SQLiteStore(path) as b:
        a.append("c", turn("from a"), 0)
        assert b.load("c").version == 1  # type: ignore[union-attr]
        with pytest.raises(ConflictError):
            b.append("c", turn("stale b"), 0)
        b.fork("c", "d")
        assert a.load("d").messages == b.load("c").messages  # type: ignore[union-attr]


def test_a_writer_waits_for_another_connections_transaction(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = SQLiteStore(path, timeout=5)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, lambda: blocker.execute("COMMIT")).start()
    started = time.monotonic()
    assert store.append("c", turn("waited"), 0) == 1
    assert time.monotonic() - started >= 0.15
    blocker.close()
    impatient = SQLiteStore(path, timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(promptkit.StoreError, match="locked"):
        impatient.append("c", turn("gave up"), 1)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert impatient.append("c", turn("now"), 1) == 2  # the failed connection was discarded
    impatient.close()
    store.close()


def test_unstorable_extra_data_is_refused_before_writing(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "x.db") as store:
        bad = Message(role="assistant", text="x", extra={"obj": object()})
        with pytest.raises(promptkit.StoreError, match="JSON-serialisable"):
            store.append("c", [Message(role="user", text="hi"), bad], 0)
        assert store.load("c") is None


async def test_the_async_store_does_not_block_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "async.db"
    store = AsyncSQLiteStore(path, timeout=5)
    await store.open()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock for 0.3 s
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, lambda: blocker.execute("COMMIT"))
    assert await store.append("c", turn("hi"), 0) == 1
    ticking.cancel()
    assert ticks >= 10  # the loop kept running while the append waited for the lock
    blocker.close()
    async with AsyncSQLiteStore(path) as again:
        assert (await again.load("c")).version == 1  # type: ignore[union-attr]
    await store.aclose()


async def test_async_store_reports_a_foreign_file_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database" * 500)
    store = AsyncSQLiteStore(path)
    with pytest.raises(promptkit.StoreError, match="junk"):
        await store.load("c")
    await store.aclose()


def test_conversations_persist_through_the_drivers(tmp_path: Path) -> None:
    path = tmp_path / "conv.db"
    with SQLiteStore(path) as store:
        conv = promptkit.open(HELLO, "chat", provider="mock", store=store,
                              conversation_id="ada", variables={"user_name": "Ada"})
        conv.send("hello")
        fork = conv.fork()
        fork.send("on the fork")
        assert len(conv.messages) == 2 and len(fork.messages) == 4
    with SQLiteStore(path) as store:
        listed = {i.id: i for i in store.list()}
        assert listed["ada"].message_count == 2
        assert listed["ada"].metadata.variables == {"user_name": "Ada"}
        assert listed[fork.id].message_count == 4
        assert listed[fork.id].metadata.pack_id == "hello-example"


async def test_async_conversations_persist_through_the_async_store(tmp_path: Path) -> None:
    path = tmp_path / "aconv.db"
    async with AsyncSQLiteStore(path) as store:
        async with promptkit.open_async(HELLO, "chat", provider="mock", store=store,
                                        conversation_id="ada",
                                        variables={"user_name": "Ada"}) as conv:
            await conv.send("hello")
            await conv.send("again")
        stored = await store.load("ada")
    assert stored is not None and stored.version == 2
    assert stored.metadata.prompt == "chat" and stored.metadata.variables == {
        "user_name": "Ada"}
