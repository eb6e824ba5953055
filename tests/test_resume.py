"""promptkit.resume / resume_async: history, variables and held tool calls come back; unknown
ids, other packs and changed pack versions are handled as documented."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit.stores import (
    AsyncRedisStore,
    AsyncSQLiteStore,
    ConflictError,
    InvalidConversationIdError,
    MemoryStore,
    RedisStore,
    SQLiteStore,
)

try:
    from promptkit import resume, resume_async
except ImportError:  # until promptkit/__init__.py exports them
    from promptkit.conversation.resuming import resume, resume_async

from promptkit.conversation.resuming import PackMismatchError, PackVersionWarning
from redis_server import RedisServer, start_or_skip

from support import PACKS

ASSISTANT = PACKS / "assistant.pack.json"
HELLO = PACKS / "hello.pack.json"
WEATHER = {"turns": {
    1: {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                       {"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    2: "Paris is sunny; Oslo is cold."}}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_or_skip(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "resume.db") as store:
        yield store


def variant(tmp_path: Path, **changes: str) -> Path:
    """A copy of the assistant pack with top-level fields changed (id, version)."""
    data = json.loads(ASSISTANT.read_text())
    data.update(changes)
    path = tmp_path / f"variant-{uuid.uuid4().hex[:6]}.pack.json"
    path.write_text(json.dumps(data))
    return path


def start(store: Any, conversation_id: str = "conv-1", **options: Any) -> promptkit.Conversation:
    conv = promptkit.open(ASSISTANT, "assistant", provider="mock", store=store,
                          conversation_id=conversation_id,
                          variables={"user_name": "Ada", "language": "fr"},
                          mock_responses={"turns": {1: "bonjour Ada"}}, **options)
    conv.send("hello")
    return conv


def test_resume_restores_history_and_variables(sqlite: SQLiteStore) -> None:
    start(sqlite)
    conv = resume("conv-1", ASSISTANT, "assistant", store=sqlite, provider="mock",
                  mock_responses={"turns": {2: "still here"}})
    assert conv.id == "conv-1"
    assert (conv.get_var("user_name"), conv.get_var("language"), conv.get_var("style")) == (
        "Ada", "fr", "friendly")
    assert "You help Ada." in conv.render_system_prompt()
    assert [m.text for m in conv.messages] == ["hello", "bonjour Ada"]
    assert conv.send("still?").text == "still here"  # turn 2: the history was sent
    # Only values set explicitly are saved: the pack's defaults are not frozen in.
    assert sqlite.load("conv-1").metadata.variables == {  # type: ignore[union-attr]
        "user_name": "Ada", "language": "fr"}


def test_resume_variables_can_be_overridden_and_are_saved(sqlite: SQLiteStore) -> None:
    start(sqlite)
    conv = resume("conv-1", ASSISTANT, "assistant", store=sqlite, provider="mock",
                  variables={"user_name": "Grace"})
    assert (conv.get_var("user_name"), conv.get_var("language")) == ("Grace", "fr")
    conv.set_var("style", "formal")
    conv.send("hi")
    assert sqlite.load("conv-1").metadata.variables == {  # type: ignore[union-attr]
        "user_name": "Grace", "language": "fr", "style": "formal"}


def test_unknown_and_invalid_ids(sqlite: SQLiteStore) -> None:
    with pytest.raises(promptkit.ConversationNotFoundError, match="'nope' not found"):
        resume("nope", ASSISTANT, "assistant", store=sqlite, provider="mock")
    with pytest.raises(promptkit.ConversationNotFoundError):
        resume("nope", ASSISTANT, "assistant", store=MemoryStore(), provider="mock")
    with pytest.raises(InvalidConversationIdError):
        resume("no such thing", ASSISTANT, "assistant", store=sqlite, provider="mock")
    assert issubclass(promptkit.ConversationNotFoundError, promptkit.StoreError)


def test_a_changed_pack_version_resumes_with_a_warning(sqlite: SQLiteStore,
                                                       tmp_path: Path) -> None:
    start(sqlite)
    newer = variant(tmp_path, version="1.3.0")
    with pytest.warns(PackVersionWarning, match=r"saved with version 1\.2\.0 of pack "
                                                r"'test-assistant'; continuing it with "
                                                r"version 1\.3\.0") as caught:
        conv = resume("conv-1", newer, "assistant", store=sqlite, provider="mock")
    assert caught[0].filename == __file__  # points at the caller
    assert issubclass(PackVersionWarning, UserWarning)
    conv.send("on the new version")
    assert sqlite.load("conv-1").metadata.pack_version == "1.3.0"  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resume("conv-1", newer, "assistant", store=sqlite, provider="mock")  # no new warning


def test_another_pack_is_refused(sqlite: SQLiteStore, tmp_path: Path) -> None:
    start(sqlite)
    with pytest.raises(PackMismatchError, match="'conv-1' belongs to pack 'test-assistant', "
                                                "not 'someone-else'") as caught:
        resume("conv-1", variant(tmp_path, id="someone-else"), "assistant", store=sqlite,
               provider="mock")
    assert isinstance(caught.value, promptkit.StoreError)
    # open() on the same id with another pack cannot take the conversation over either.
    other = promptkit.open(variant(tmp_path, id="someone-else"), "assistant", provider="mock",
                           store=sqlite, conversation_id="conv-1",
                           variables={"user_name": "X"})
    other.send("hi")
    assert sqlite.load("conv-1").metadata.pack_id == "test-assistant"  # type: ignore[union-attr]


def test_resume_with_another_prompt_of_the_pack(sqlite: SQLiteStore) -> None:
    start(sqlite)
    conv = resume("conv-1", ASSISTANT, "plain", store=sqlite, provider="mock")
    conv.send("plain now")
    assert sqlite.load("conv-1").metadata.prompt == "plain"  # type: ignore[union-attr]


def test_a_fork_of_a_resumed_conversation_is_stored_with_its_metadata(
        sqlite: SQLiteStore) -> None:
    start(sqlite)
    conv = resume("conv-1", ASSISTANT, "assistant", store=sqlite, provider="mock")
    fork = conv.fork()
    assert fork.id != conv.id and conv.fork().id != fork.id  # never collide
    fork.send("on the fork")
    stored = sqlite.load(fork.id)
    assert stored is not None and len(stored.messages) == 4
    assert stored.metadata.variables == {"user_name": "Ada", "language": "fr"}
    again = resume(fork.id, ASSISTANT, "assistant", store=sqlite, provider="mock")
    assert again.get_var("user_name") == "Ada" and len(again.messages) == 4
    assert len(conv.messages) == 2


def _fork_rebinds() -> bool:
    conv = promptkit.open(ASSISTANT, "plain", provider="mock", store=MemoryStore())
    fork = conv.fork()
    return getattr(fork._store, "_id", None) == fork.id


@pytest.mark.skipif(not _fork_rebinds(), reason="a fork saving its own variables needs "
                    "_core._fork_kwargs to call MetadataBinding.rebind (lead)")
def test_a_fork_saves_its_own_variables(sqlite: SQLiteStore) -> None:
    conv = start(sqlite)
    fork = conv.fork()
    fork.set_var("user_name", "Forked")
    fork.send("on the fork")
    assert sqlite.load(fork.id).metadata.variables["user_name"] == "Forked"  # type: ignore[union-attr]
    assert sqlite.load("conv-1").metadata.variables["user_name"] == "Ada"  # type: ignore[union-attr]


def test_held_tool_calls_are_approved_from_another_process(
        redis_server: RedisServer) -> None:
    cid = f"held-{uuid.uuid4().hex[:8]}"
    script = f"""
import promptkit
from promptkit.stores import RedisStore
conv = promptkit.open({str(ASSISTANT)!r}, "assistant", provider="mock",
                      store=RedisStore({redis_server.url!r}), conversation_id={cid!r},
                      variables={{"user_name": "Ada"}}, mock_responses={WEATHER!r})
conv.on_tool("get_weather", lambda args: "ok",
             requires_approval=lambda args: "needs approval" if args["city"] == "Oslo" else None)
print(len(conv.send("weather?").pending_tools))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout == "1\n", done.stderr
    with RedisStore(redis_server.url) as store:
        conv = resume(cid, ASSISTANT, "assistant", store=store, provider="mock",
                      mock_responses=WEATHER)
        conv.on_tool("get_weather", lambda args: f"weather in {args['city']}")
        (held,) = conv.pending_tools
        assert (held.name, dict(held.arguments), held.decision) == (
            "get_weather", {"city": "Oslo"}, None)
        conv.approve(held.call_id)
        assert conv.resume().text == "Paris is sunny; Oslo is cold."
        assert conv.pending_tools == []


async def test_resume_async_with_the_async_stores(tmp_path: Path,
                                                  redis_server: RedisServer) -> None:
    sqlite_store = AsyncSQLiteStore(tmp_path / "async.db")
    redis_store = AsyncRedisStore(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}")
    try:
        for store in (sqlite_store, redis_store):
            async with promptkit.open_async(ASSISTANT, "assistant", provider="mock",
                                            store=store, conversation_id="a",
                                            variables={"user_name": "Ada"}) as first:
                await first.send("one")
            conv = await resume_async("a", ASSISTANT, "assistant", store=store,
                                      provider="mock", mock_responses={"turns": {2: "two"}})
            assert conv.get_var("user_name") == "Ada"
            assert (await conv.send("again")).text == "two"
            await conv.aclose()
            with pytest.raises(promptkit.ConversationNotFoundError):
                await resume_async("missing", ASSISTANT, "assistant", store=store,
                                   provider="mock")
    finally:
        await sqlite_store.aclose()
        await redis_store.aclose()


async def test_resume_async_with_a_blocking_store(sqlite: SQLiteStore) -> None:
    start(sqlite)
    conv = await resume_async("conv-1", ASSISTANT, "assistant", store=sqlite, provider="mock")
    assert len(conv.messages) == 2


def test_sync_resume_refuses_an_async_store(tmp_path: Path) -> None:
    store = AsyncSQLiteStore(tmp_path / "x.db")
    with pytest.raises(TypeError, match="resume_async"):
        resume("a", ASSISTANT, "assistant", store=store, provider="mock")


def test_a_store_without_metadata_support_still_works(tmp_path: Path) -> None:
    """A third-party store implementing only the four driver calls."""

    class Minimal:
        def __init__(self) -> None:
            self.inner = MemoryStore()

        def load(self, conversation_id: str) -> Any:
            return self.inner.load(conversation_id)

        def append(self, conversation_id: str, messages: Any, expected_version: int) -> int:
            return self.inner.append(conversation_id, messages, expected_version)

        def fork(self, source_id: str, target_id: str) -> None:
            self.inner.fork(source_id, target_id)

        def delete(self, conversation_id: str) -> None:
            self.inner.delete(conversation_id)

    store = Minimal()
    start(store)
    conv = resume("conv-1", ASSISTANT, "assistant", store=store, provider="mock",
                  variables={"user_name": "Ada"})
    assert len(conv.messages) == 2


@pytest.mark.skipif(not hasattr(promptkit.Pack, "resume"),
                    reason="Pack.resume / Pack.resume_async are wired by the lead (_pack.py)")
async def test_pack_resume_methods(sqlite: SQLiteStore) -> None:
    start(sqlite)
    pack = promptkit.load_pack(ASSISTANT)
    conv = pack.resume("conv-1", "assistant", store=sqlite, provider="mock")
    assert len(conv.messages) == 2
    aconv = await pack.resume_async("conv-1", "assistant", store=sqlite, provider="mock")
    assert len(aconv.messages) == 2


@pytest.mark.skipif("on_conflict" not in inspect.signature(promptkit.open).parameters,
                    reason='on_conflict="reload" needs the drivers to retry a turn (lead)')
def test_on_conflict_reload_retries_the_user_turn(sqlite: SQLiteStore) -> None:
    first = start(sqlite)
    second = promptkit.open(ASSISTANT, "assistant", provider="mock", store=sqlite,
                            conversation_id="conv-1", variables={"user_name": "Ada"},
                            mock_responses={"turns": {2: WEATHER["turns"][1], 3: "done"}},
                            on_conflict="reload")  # type: ignore[call-arg]
    interfered: list[str] = []

    def weather(args: dict[str, Any]) -> str:
        if not interfered:  # while the turn runs, another writer commits a turn, once
            interfered.append(first.send("from first").text)
        return "sunny"

    second.on_tool("get_weather", weather)
    # The turn commits after "from first": reloaded and retried instead of ConflictError.
    assert second.send("from second").text == "done"
    assert interfered
    users = [m.text for m in sqlite.load("conv-1").messages  # type: ignore[union-attr]
             if m.role == "user"]
    assert users == ["hello", "from first", "from second"]


def test_without_reload_the_loser_gets_a_conflict(sqlite: SQLiteStore) -> None:
    first = start(sqlite)
    second = resume("conv-1", ASSISTANT, "assistant", store=sqlite, provider="mock")
    stream = second.stream("from second")
    next(iter(stream))  # the turn has loaded version 1 and is streaming
    first.send("from first")
    with pytest.raises(ConflictError, match="at version 2, expected 1"):
        stream.until_done()
    assert second.send("retried").text  # a new turn reloads and succeeds
    users = [m.text for m in sqlite.load("conv-1").messages  # type: ignore[union-attr]
             if m.role == "user"]
    assert users == ["hello", "from first", "retried"]
