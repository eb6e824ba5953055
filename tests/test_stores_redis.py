"""RedisStore specifics against a real redis-server: key layout, TTL, idempotent retried
appends, reconnecting after a server restart, and an unreachable server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import promptkit
from promptkit import Message
from promptkit.stores import AsyncRedisStore, ConversationMetadata, RedisStore
from redis_server import RedisServer, start_or_skip

from support import PACKS

HELLO = PACKS / "hello.pack.json"


def turn(text: str) -> list[Message]:
    return [Message(role="user", text=text), Message(role="assistant", text=f"re: {text}")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    started = start_or_skip(tmp_path_factory.mktemp("redis"))
    yield started
    started.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()


def test_key_layout_and_prefix_isolation(server: RedisServer, raw: redis.Redis,
                                         prefix: str) -> None:
    with RedisStore(server.url, prefix=prefix) as store, \
            RedisStore(server.url, prefix=prefix + "-b") as other:
        store.append("user:1", turn("hi"), 0, metadata=ConversationMetadata(
            pack_id="p", prompt="chat", pack_version="1", variables={"a": "b"}))
        assert sorted(raw.keys(f"{prefix}:*")) == [
            f"{prefix}:index", f"{prefix}:messages:user:1", f"{prefix}:meta:user:1"]
        meta = raw.hgetall(f"{prefix}:meta:user:1")
        assert (meta["version"], meta["message_count"], meta["pack_id"]) == ("1", "2", "p")
        assert raw.ttl(f"{prefix}:meta:user:1") == -1  # no TTL unless asked
        assert other.load("user:1") is None
        assert other.append("user:1", turn("separate"), 0) == 1
        assert store.load("user:1").version == 1  # type: ignore[union-attr]
    for bad in ("", "a:b", "a b", "{x}"):
        with pytest.raises(ValueError, match="prefix"):
            RedisStore(server.url, prefix=bad)


def test_ttl_expires_whole_conversations(server: RedisServer, raw: redis.Redis,
                                         prefix: str) -> None:
    with RedisStore(server.url, prefix=prefix, ttl=0.3) as store:
        store.append("c", turn("one"), 0)
        store.fork("c", "d")
        for key in (f"{prefix}:meta:c", f"{prefix}:messages:c", f"{prefix}:meta:d",
                    f"{prefix}:messages:d"):
            assert 0 < raw.pttl(key) <= 300
        time.sleep(0.35)
        assert store.load("c") is None and store.load("d") is None
        assert store.list() == []
        assert raw.zcard(f"{prefix}:index") == 0  # list() tidied the index
        assert store.append("c", turn("fresh"), 0) == 1
    with pytest.raises(ValueError, match="ttl"):
        RedisStore(server.url, ttl=0)


def test_a_retried_append_is_applied_once(server: RedisServer, prefix: str) -> None:
    """A reply lost after Redis ran the script: the client's retry sends the same call."""
    with RedisStore(server.url, prefix=prefix) as store:
        keys, args = store._layout.append_call("c", turn("once"), 0, None)
        assert store._append(keys=keys, args=args)[:2] == [1, 1]
        assert store._append(keys=keys, args=args)[:2] == [1, 1]  # same token: already done
        assert len(store.load("c").messages) == 2  # type: ignore[union-attr]
        keys, other = store._layout.append_call("c", turn("stale"), 0, None)
        assert store._append(keys=keys, args=other)[:2] == [0, 1]  # another writer: conflict


def test_a_client_you_configure_is_used_and_left_open(server: RedisServer,
                                                      prefix: str) -> None:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    store = RedisStore(client, prefix=prefix)
    store.append("c", turn("text replies"), 0, metadata=ConversationMetadata(pack_id="p"))
    loaded = store.load("c")
    assert loaded is not None and loaded.messages[0].text == "text replies"
    assert loaded.metadata.pack_id == "p"
    store.close()
    assert client.ping()  # not ours to close
    client.close()


def test_an_unreachable_server_is_a_clear_store_error() -> None:
    with RedisStore("redis://127.0.0.1:1/0", retries=0) as store:
        started = time.monotonic()
        with pytest.raises(promptkit.StoreError, match="redis: cannot load: the server is "
                                                       "unreachable"):
            store.load("c")
        assert time.monotonic() - started < 5


def test_redis_restarted_between_two_turns_reconnects(tmp_path: Path) -> None:
    with start_or_skip(tmp_path) as own, RedisStore(own.url, prefix="restart") as store:
        conv = promptkit.open(HELLO, "chat", provider="mock", store=store,
                              conversation_id="survivor", variables={"user_name": "Ada"},
                              mock_responses={"turns": {1: "first", 2: "second"}})
        assert conv.send("one").text == "first"
        own.restart()  # same port and data (append-only file); the pooled socket is dead
        assert conv.send("two").text == "second"  # 2nd reply: the history came back
        assert [m.text for m in conv.messages] == ["one", "first", "two", "second"]
        own.stop()
        with pytest.raises(promptkit.StoreError, match="unreachable"):
            conv.send("three")
        own.start()
        assert conv.send("three").text.startswith("Mock response")
        assert len(conv.messages) == 6


async def test_async_redis_restarted_between_two_turns_reconnects(tmp_path: Path) -> None:
    own = start_or_skip(tmp_path)
    try:
        async with AsyncRedisStore(own.url, prefix="restart") as store:
            async with promptkit.open_async(
                    HELLO, "chat", provider="mock", store=store, conversation_id="survivor",
                    variables={"user_name": "Ada"},
                    mock_responses={"turns": {1: "first", 2: "second"}}) as conv:
                assert (await conv.send("one")).text == "first"
                await asyncio.to_thread(own.restart)
                assert (await conv.send("two")).text == "second"
            stored = await store.load("survivor")
            assert stored is not None and stored.version == 2
    finally:
        own.stop()
