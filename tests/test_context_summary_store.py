"""A summarizing ContextPolicy's summary is stored with the history (memory, SQLite, Redis).

A conversation reopened on the same store (a new store object and a new conversation, as a
new process has; and a real second process) sends the stored summary without a model call.
A summary is used only while the prefix it covers is unchanged (count + digest), a fork
inherits it, clear() forgets it, an old store record without one loads fine, one written in
an unknown form is ignored, custom stores without support keep it in the process, and a
version conflict never loses or corrupts it. Both drivers throughout.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import ContextPolicy, Message
from promptkit.stores import (
    AsyncRedisStore,
    AsyncSQLiteStore,
    ConflictError,
    ConversationMetadata,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    StoredConversation,
)
from promptkit.stores.sqlite import MIGRATIONS
from promptkit.testing import FakeServer, Reply
from redis_server import RedisServer, start_or_skip
from test_context_policy import ASSISTANT, KEY, LIMIT, ContextLimitedProvider, words

from support import REPO, Driver

HEADER = "\n\nSummary of the earlier conversation:\n"
VARIABLES = {"user_name": "Ada"}


async def maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Folds:
    """A summarizer that records what it was asked to fold and answers ``SUMMARY<n>``."""

    def __init__(self) -> None:
        self.calls: list[list[Message]] = []

    def __call__(self, messages: Sequence[Message]) -> str:
        self.calls.append(list(messages))
        return f"SUMMARY{len(self.calls)}"


def options(server: FakeServer, summarizer: Any, **more: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": "gpt-4o-mini", "api_key": KEY,
            "base_url": server.url + "/v1", "max_retries": 0,
            "context": ContextPolicy(max_input_tokens=LIMIT, strategy="summarize",
                                     summarizer=summarizer), **more}


@dataclass
class Place:
    """One store kind for one driver; ``store()`` opens it afresh, as a new process would."""

    kind: str
    driver: Driver
    path: Path
    redis_url: str = ""
    prefix: str = ""
    memory: MemoryStore | None = None

    def store(self) -> Any:
        if self.kind == "memory":
            assert self.memory is not None
            return self.memory
        if self.kind == "sqlite":
            return (AsyncSQLiteStore if self.driver.is_async else SQLiteStore)(self.path)
        return (AsyncRedisStore if self.driver.is_async else RedisStore)(
            self.redis_url, prefix=self.prefix)

    def open(self, store: Any, server: FakeServer, summarizer: Any, **more: Any) -> Any:
        return self.driver.open(ASSISTANT, "assistant", store=store, variables=VARIABLES,
                                **options(server, summarizer, **more))

    async def resume(self, conversation_id: str, store: Any, server: FakeServer,
                     summarizer: Any) -> Any:
        pack = promptkit.load_pack(ASSISTANT)
        if self.driver.is_async:
            return await pack.resume_async(conversation_id, "assistant", store=store,
                                           **options(server, summarizer))
        return pack.resume(conversation_id, "assistant", store=store,
                           **options(server, summarizer))


async def close(*things: Any) -> None:
    for thing in things:
        closer = getattr(thing, "aclose", None) or getattr(thing, "close", None)
        if closer is not None:
            await maybe(closer())


async def chat(conv: Any, tag: str, turns: int = 8) -> list[str]:
    sent = [words(60, f"{tag}{i}x") for i in range(turns)]
    for text in sent:
        await maybe(conv.send(text))
    return sent


async def stored(store: Any, conversation_id: str) -> StoredConversation:
    found = await maybe(store.load(conversation_id))
    assert found is not None
    return found  # type: ignore[no-any-return]


def system_sent(server: FakeServer) -> str:
    return str(server.requests[-1].json["messages"][0]["content"])


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_or_skip(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def place(request: pytest.FixtureRequest, driver: Driver, tmp_path: Path) -> Place:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return Place("redis", driver, tmp_path, server.url, f"s{uuid.uuid4().hex[:10]}")
    return Place(request.param, driver, tmp_path / "chats.db", memory=MemoryStore())


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        srv.handler = ContextLimitedProvider("openai")
        yield srv


# --- reuse across reopening -----------------------------------------------------------------


def test_a_resumed_conversation_sends_the_stored_summary_without_a_model_call(
        place: Place, server: FakeServer) -> None:
    async def scenario() -> None:
        folds, store = Folds(), place.store()
        conv = place.open(store, server, folds)
        sent = await chat(conv, "r")
        assert folds.calls, "the history outgrew the budget"
        saved = (await stored(store, conv.id)).metadata.summary
        assert saved is not None and saved.text == f"SUMMARY{len(folds.calls)}"
        await close(conv, store)

        again_store, again_folds = place.store(), Folds()
        again = await place.resume(conv.id, again_store, server, again_folds)
        asked = len(server.requests)
        await maybe(again.send("And what next?"))
        assert again_folds.calls == [] and len(server.requests) == asked + 1
        assert system_sent(server).endswith(HEADER + saved.text)
        history = (await stored(again_store, conv.id)).messages  # stored in full, unchanged
        assert [m.text for m in history if m.role == "user"] == [*sent, "And what next?"]
        assert len(history) == 2 * len(sent) + 2
        await close(again, again_store)

    asyncio.run(scenario())


def test_reopening_with_open_and_the_same_id_reuses_it_and_later_folds_extend_it(
        place: Place, server: FakeServer) -> None:
    async def scenario() -> None:
        folds, store = Folds(), place.store()
        conv = place.open(store, server, folds)
        await chat(conv, "o", turns=6)
        made = len(folds.calls)
        assert made >= 1
        await close(conv, store)

        again_store, again_folds = place.store(), Folds()
        again = place.open(again_store, server, again_folds, conversation_id=conv.id)
        await maybe(again.send("short"))
        assert again_folds.calls == []
        assert system_sent(server).endswith(HEADER + f"SUMMARY{made}")
        await chat(again, "p", turns=4)  # more must be folded: the stored summary is extended
        assert again_folds.calls
        previous = again_folds.calls[0][0]
        assert previous.role == "system" and previous.text == f"SUMMARY{made}"
        saved = (await stored(again_store, conv.id)).metadata.summary
        assert saved is not None and saved.text == f"SUMMARY{len(again_folds.calls)}"
        assert saved.count > 2 * 6 - 4  # covers more than the first process's summary could
        await close(again, again_store)

    asyncio.run(scenario())


# --- the prefix it covers ---------------------------------------------------------------


def test_a_summary_that_does_not_match_its_history_is_made_again(
        place: Place, server: FakeServer) -> None:
    """A's stored summary copied onto B's different history (same length): B must not send it."""
    async def scenario() -> None:
        folds, store = Folds(), place.store()
        conv = place.open(store, server, folds)
        await chat(conv, "a")
        original = await stored(store, conv.id)
        saved = original.metadata.summary
        assert saved is not None
        other = tuple(Message(role=m.role, text=m.text.replace("a", "b")) if m.role == "user"
                      else m for m in original.messages)
        await maybe(store.append("other", other, 0, metadata=ConversationMetadata(
            pack_id="test-assistant", variables=VARIABLES, summary=saved)))
        copied = (await stored(store, "other")).metadata.summary
        assert copied == saved  # stored as given: the check is the conversation's
        await close(conv, store)

        again_store, again_folds = place.store(), Folds()
        again = await place.resume("other", again_store, server, again_folds)
        await maybe(again.send("short"))
        assert len(again_folds.calls) == 1  # made anew, from B's own messages
        assert any("b" in m.text for m in again_folds.calls[0])
        assert system_sent(server).endswith(HEADER + "SUMMARY1")
        fresh = (await stored(again_store, "other")).metadata.summary
        assert fresh is not None and fresh.text == "SUMMARY1" and fresh.digest != saved.digest
        await close(again, again_store)

    asyncio.run(scenario())


def test_an_edited_early_message_invalidates_the_stored_summary(driver: Driver, tmp_path: Path,
                                                                server: FakeServer) -> None:
    """The stored messages changed behind promptkit's back (the SQLite file edited)."""
    place = Place("sqlite", driver, tmp_path / "chats.db")

    async def scenario() -> None:
        folds, store = Folds(), place.store()
        conv = place.open(store, server, folds)
        await chat(conv, "e")
        await close(conv, store)
        db = sqlite3.connect(place.path)
        with db:
            db.execute("UPDATE messages SET data = ? WHERE seq = 0", (json.dumps(
                {"role": "user", "text": "an edited first message"}),))
        db.close()
        again_store, again_folds = place.store(), Folds()
        again = await place.resume(conv.id, again_store, server, again_folds)
        await maybe(again.send("short"))
        assert len(again_folds.calls) == 1
        assert again_folds.calls[0][0].text == "an edited first message"
        await close(again, again_store)

    asyncio.run(scenario())


def test_a_fork_inherits_the_summary_and_clear_forgets_it(place: Place,
                                                          server: FakeServer) -> None:
    async def scenario() -> None:
        folds, store = Folds(), place.store()
        conv = place.open(store, server, folds)
        await chat(conv, "f")
        made = len(folds.calls)
        fork = await maybe(conv.fork())
        await maybe(fork.send("short"))
        assert len(folds.calls) == made  # the fork shares the prefix: nothing recomputed
        assert system_sent(server).endswith(HEADER + f"SUMMARY{made}")
        forked = (await stored(store, fork.id)).metadata.summary
        assert forked is not None and forked.text == f"SUMMARY{made}"
        await maybe(conv.clear())
        assert await maybe(store.load(conv.id)) is None
        await maybe(conv.send("after clear"))
        assert "Summary of the earlier conversation" not in system_sent(server)
        assert (await stored(store, conv.id)).metadata.summary is None
        await close(conv, fork, store)

    asyncio.run(scenario())


def test_a_summary_made_by_a_failed_turn_is_saved_by_the_next_append(
        place: Place, server: FakeServer) -> None:
    """The turn fails after its fold (the provider errs): nothing of it is stored, but the
    summary is kept, reused, and saved by the next turn that commits, of the conversation
    and of a fork made meanwhile."""
    limited = server.handler
    failing: list[bool] = []

    def handler(request: Any) -> Any:
        if failing:
            failing.clear()
            return Reply.json(500, {"error": {"message": "down", "type": "server_error"}})
        return limited(request)

    server.handler = handler

    def summarizer(messages: Sequence[Message]) -> str:
        if not folds.calls:
            failing.append(True)
        return folds(messages)

    async def scenario() -> None:
        store = place.store()
        conv = place.open(store, server, summarizer)
        sent = [words(60, f"t{i}x") for i in range(8)]
        for text in sent:
            try:
                await maybe(conv.send(text))
            except promptkit.ServerError:
                assert len(folds.calls) == 1
                assert (await stored(store, conv.id)).metadata.summary is None
                fork = await maybe(conv.fork())
                await maybe(fork.send("fork"))
                assert len(folds.calls) == 1
                forked = (await stored(store, fork.id)).metadata.summary
                assert forked is not None and forked.text == "SUMMARY1"
                await maybe(conv.send(text))
                await close(fork)
        assert len(folds.calls) >= 1
        assert (await stored(store, conv.id)).metadata.summary is not None
        first = [c for c in folds.calls if c and c[0].role != "system"]
        assert len(first) == 1  # the first fold was made once
        await close(conv, store)

    folds = Folds()
    asyncio.run(scenario())


# --- old and future records ---------------------------------------------------------------


def test_a_schema_1_file_is_migrated_and_its_conversations_resume(driver: Driver, tmp_path: Path,
                                                                  server: FakeServer) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the file as the previous promptkit left it
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA application_id = {0x506B4B74}")
    db.execute("CREATE TABLE promptkit_migrations (version INTEGER PRIMARY KEY, "
               "description TEXT NOT NULL, applied_at REAL NOT NULL)")
    for statement in MIGRATIONS[0][2].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO promptkit_migrations VALUES (1, 'conversations and messages', 0)")
    db.execute("INSERT INTO conversations VALUES ('old', 'inc', 1, 2, 'test-assistant', "
               "'assistant', '', '{\"user_name\": \"Ada\"}', 0, 0)")
    for seq, (role, text) in enumerate([("user", words(60, "z")), ("assistant", "ok")]):
        db.execute("INSERT INTO messages VALUES ('old', ?, 1, ?)",
                   (seq, json.dumps({"role": role, "text": text})))
    db.commit()
    db.close()
    place = Place("sqlite", driver, path)

    async def scenario() -> None:
        store, folds = place.store(), Folds()
        found = await stored(store, "old")
        assert found.metadata.summary is None and len(found.messages) == 2
        conv = await place.resume("old", store, server, folds)
        await chat(conv, "m", turns=6)
        assert folds.calls
        saved = (await stored(store, "old")).metadata.summary
        assert saved is not None and saved.text == f"SUMMARY{len(folds.calls)}"
        await close(conv, store)

    asyncio.run(scenario())
    db = sqlite3.connect(path)
    assert [v for (v,) in db.execute("SELECT version FROM promptkit_migrations")] == [1, 2]
    db.close()


@pytest.mark.parametrize("written", [
    '{"format":2,"count":2,"digest":"x","text":"from a newer promptkit"}',
    "not json at all", '{"format":1,"count":"two","digest":"x","text":"t"}', "[1, 2]"])
def test_a_summary_in_an_unknown_form_is_ignored(tmp_path: Path, redis_server: RedisServer,
                                                 written: str) -> None:
    with SQLiteStore(tmp_path / "f.db") as sqlite_store:
        sqlite_store.append("c", [Message(role="user", text="hi")], 0)
        db = sqlite3.connect(tmp_path / "f.db")
        with db:
            db.execute("UPDATE conversations SET summary = ?", (written,))
        db.close()
        found = sqlite_store.load("c")
        assert found is not None and found.metadata.summary is None
    prefix = f"s{uuid.uuid4().hex[:10]}"
    with RedisStore(redis_server.url, prefix=prefix) as redis_store:
        redis_store.append("c", [Message(role="user", text="hi")], 0)
        redis_store.client.hset(f"{prefix}:meta:c", "summary", written)
        found = redis_store.load("c")
        assert found is not None and found.metadata.summary is None
        assert [m.text for m in found.messages] == ["hi"]


# --- stores that do not keep it -----------------------------------------------------------


class PlainStore:
    """A user's store from before metadata: load, append, fork, delete, nothing else."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[tuple[Message, ...], int]] = {}

    def load(self, conversation_id: str) -> StoredConversation | None:
        found = self.data.get(conversation_id)
        return None if found is None else StoredConversation(
            id=conversation_id, messages=found[0], version=found[1])

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int) -> int:
        history, version = self.data.get(conversation_id, ((), 0))
        if version != expected_version:
            raise ConflictError("moved on")
        self.data[conversation_id] = (history + tuple(messages), version + 1)
        return version + 1

    def fork(self, source_id: str, target_id: str) -> None:
        if source_id in self.data:
            self.data[target_id] = self.data[source_id]

    def delete(self, conversation_id: str) -> None:
        self.data.pop(conversation_id, None)


class MetadataStore(PlainStore):
    """A user's store that takes ``metadata=`` but keeps only the fields it knows."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, ConversationMetadata] = {}

    def load(self, conversation_id: str) -> StoredConversation | None:
        found = super().load(conversation_id)
        return None if found is None else StoredConversation(
            id=found.id, messages=found.messages, version=found.version,
            metadata=self.meta.get(conversation_id, ConversationMetadata()))

    def append(self, conversation_id: str, messages: Sequence[Message],  # type: ignore[override]
               expected_version: int, *, metadata: ConversationMetadata | None = None) -> int:
        version = super().append(conversation_id, messages, expected_version)
        if metadata is not None:
            self.meta[conversation_id] = ConversationMetadata(
                pack_id=metadata.pack_id, prompt=metadata.prompt, variables=metadata.variables)
        return version


@pytest.mark.parametrize("kind", [PlainStore, MetadataStore])
def test_a_custom_store_without_support_keeps_the_summary_in_the_process(
        driver: Driver, server: FakeServer, kind: type[PlainStore]) -> None:
    store = kind()

    async def scenario() -> None:
        folds = Folds()
        conv = driver.open(ASSISTANT, "assistant", store=store, variables=VARIABLES,
                           conversation_id="mine", **options(server, folds))
        await chat(conv, "c")
        made = len(folds.calls)
        assert 1 <= made < 8
        await maybe(conv.send("short"))  # reused in the process, as before
        assert len(folds.calls) == made
        assert system_sent(server).endswith(HEADER + f"SUMMARY{made}")
        fork = await maybe(conv.fork())  # the fork inherits it in the process too
        await maybe(fork.send("fork short"))
        assert len(folds.calls) == made
        assert system_sent(server).endswith(HEADER + f"SUMMARY{made}")
        again = driver.open(ASSISTANT, "assistant", store=store, variables=VARIABLES,
                            conversation_id="mine", **options(server, folds))
        await maybe(again.send("short again"))  # nothing stored: a new object makes it again
        assert len(folds.calls) == made + 1
        assert system_sent(server).endswith(HEADER + f"SUMMARY{made + 1}")
        await close(conv, fork, again)

    asyncio.run(scenario())


# --- another writer -----------------------------------------------------------------------


@pytest.mark.parametrize("on_conflict", ["raise", "reload"])
def test_a_version_conflict_keeps_the_summary_for_the_turn_that_commits(
        place: Place, server: FakeServer, on_conflict: str) -> None:
    """Another writer appends while the summary is being made: the commit conflicts. The
    summary is not recomputed, and it is saved by the append that succeeds."""
    async def scenario() -> None:
        store = place.store()
        intruded: list[bool] = []
        folds = Folds()

        def summarizer(messages: Sequence[Message]) -> str:
            if not intruded:  # the first fold only: another process takes the next version
                intruded.append(True)
                version = sync_version()
                writer.append(conv.id, [Message(role="user", text="elsewhere"),
                                        Message(role="assistant", text="noted")], version)
            return folds(messages)

        writer, sync_version = _other_writer(place, store, lambda: conv.id)
        conv = place.open(store, server, summarizer, on_conflict=on_conflict)
        sent = [words(60, f"w{i}x") for i in range(8)]
        failed = 0
        for text in sent:
            before = bool(intruded)
            try:
                await maybe(conv.send(text))
            except ConflictError:
                failed += 1
                assert on_conflict == "raise"
                assert (await stored(store, conv.id)).metadata.summary is None
                await maybe(conv.send(text))  # the next turn reloads and commits
            if intruded and not before:  # the turn that lost the race, then committed
                saved = (await stored(store, conv.id)).metadata.summary
                assert saved is not None and saved.text == "SUMMARY1"
        assert intruded and failed == (1 if on_conflict == "raise" else 0)
        history = await stored(store, conv.id)
        assert [m.text for m in history.messages if m.role == "user"].count("elsewhere") == 1
        saved = history.metadata.summary
        assert saved is not None and saved.text == f"SUMMARY{len(folds.calls)}"
        # the first summary was reused by the retried turn, not made twice for one fold
        assert len({tuple(m.text for m in call) for call in folds.calls}) == len(folds.calls)
        await close(conv, store)
        if writer is not store:
            await close(writer)

    asyncio.run(scenario())


def _other_writer(place: Place, store: Any, conversation_id: Any) -> tuple[Any, Any]:
    """A blocking store on the same data (a second writer), and its current version."""
    if place.kind == "memory":
        other: Any = store
    elif place.kind == "sqlite":
        other = SQLiteStore(place.path)
    else:
        other = RedisStore(place.redis_url, prefix=place.prefix)

    def version() -> int:
        found = other.load(conversation_id())
        return 0 if found is None else int(found.version)
    return other, version


# --- a real second process ----------------------------------------------------------------

CHILD = """
import asyncio, sys
import promptkit
from promptkit.stores import AsyncRedisStore, AsyncSQLiteStore, RedisStore, SQLiteStore
kind, where, prefix, driver, base_url, conversation_id = sys.argv[1:7]

def summarizer(messages):
    sys.exit("the summarizer was called")

options = dict(provider="openai", model="gpt-4o-mini", api_key="sk-test-0123456789abcdef",
               base_url=base_url, max_retries=0,
               context=promptkit.ContextPolicy(max_input_tokens=int(sys.argv[7]),
                                               strategy="summarize", summarizer=summarizer))
pack = promptkit.load_pack(sys.argv[8])
if driver == "sync":
    store = SQLiteStore(where) if kind == "sqlite" else RedisStore(where, prefix=prefix)
    pack.resume(conversation_id, "assistant", store=store, **options).send("From elsewhere")
else:
    async def main():
        store = (AsyncSQLiteStore(where) if kind == "sqlite"
                 else AsyncRedisStore(where, prefix=prefix))
        conv = await pack.resume_async(conversation_id, "assistant", store=store, **options)
        await conv.send("From elsewhere")
    asyncio.run(main())
print("sent")
"""


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_another_process_resumes_with_the_stored_summary(kind: str, driver: Driver,
                                                         tmp_path: Path,
                                                         server: FakeServer) -> None:
    if kind == "redis":
        (tmp_path / "redis").mkdir()
        redis: RedisServer = start_or_skip(tmp_path / "redis")
        place = Place("redis", Driver("sync"), tmp_path, redis.url, "proc")
        where = redis.url
    else:
        place = Place("sqlite", Driver("sync"), tmp_path / "chats.db")
        where = str(place.path)
    try:
        folds, store = Folds(), place.store()
        conv = place.open(store, server, folds)
        asyncio.run(chat(conv, "x"))
        saved = store.load(conv.id).metadata.summary
        assert saved is not None
        store.close()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, kind, where, "proc", driver.kind,
             server.url + "/v1", conv.id, str(LIMIT), str(ASSISTANT)],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "sent"
        assert server.requests[-1].json["messages"][-1]["content"] == "From elsewhere"
        assert system_sent(server).endswith(HEADER + saved.text)
    finally:
        if kind == "redis":
            redis.stop()
