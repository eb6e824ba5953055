"""A store that cannot take the turn fails it before the provider is called (issue 12, item 8):
a read-only ``sessions.db`` used to let the paid answer stream and then lose it to StoreError.

Root ignores file modes, so the file is made immutable (``chattr +i``) when running as root,
and read-only by mode otherwise; either way SQLite opens it read-only, as the issue's user met
it. Redis: a read-only replica refuses writes the same way."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit.stores import AsyncSQLiteStore, MemoryStore, SQLiteStore
from promptkit.testing import FakeServer, Reply

from support import PACKS, WIRE, Driver

ASSISTANT = PACKS / "assistant.pack.json"
KEY = "sk-preflight-0123456789abcdefghij"


@pytest.fixture
def read_only_db(tmp_path: Path) -> Iterator[Path]:
    """A promptkit SQLite store file holding one turn of conversation "ada", made unwritable."""
    path = tmp_path / "sessions.db"
    with SQLiteStore(path) as store:
        store.append("ada", [promptkit.Message(role="user", text="hello"),
                             promptkit.Message(role="assistant", text="hi")], 0)
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(path)],
                                            capture_output=True, check=False).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i")
        try:
            yield path
        finally:
            subprocess.run([chattr, "-i", str(path)], check=False)
    else:
        path.chmod(0o444)
        yield path
        path.chmod(0o644)


def open_http(driver: Driver, server: FakeServer, store: Any) -> Any:
    return driver.open(ASSISTANT, "assistant", provider="openai", model="gpt-4o-mini",
                       api_key=KEY, base_url=server.url + "/v1", store=store,
                       conversation_id="ada", variables={"user_name": "Ada"})


def test_a_read_only_sqlite_store_fails_the_turn_before_any_request(
        driver: Driver, read_only_db: Path) -> None:
    store = SQLiteStore(read_only_db)  # opening and reading work
    try:
        assert store.load("ada") is not None
        with FakeServer([Reply.sse(WIRE / "openai-chat/text-with-usage.sse")]) as server:
            conv = open_http(driver, server, store)
            with pytest.raises(promptkit.StoreError, match="cannot be written"):
                driver.send(conv, "are you there?")
            chunks = driver.stream(conv, "still there?")
            assert not server.requests  # the provider was never asked (nor paid)
        assert chunks[-1].type is promptkit.ChunkType.ERROR
        assert isinstance(chunks[-1].error, promptkit.StoreError)
        assert [m.text for m in conv.messages] == ["hello", "hi"]  # history as it was
    finally:
        store.close()


def test_the_async_sqlite_store_checks_too(read_only_db: Path) -> None:
    async def go(server: FakeServer) -> None:
        async with AsyncSQLiteStore(read_only_db) as store:
            conv = open_http(Driver("async"), server, store)
            with pytest.raises(promptkit.StoreError, match="cannot be written"):
                await conv.send("hi")

    with FakeServer([Reply.sse(WIRE / "openai-chat/text-with-usage.sse")]) as server:
        asyncio.run(go(server))
        assert not server.requests


def test_a_writable_store_is_probed_without_changing_anything(tmp_path: Path,
                                                              driver: Driver) -> None:
    with SQLiteStore(tmp_path / "ok.db") as store:
        store.check_writable("ada")
        assert store.load("ada") is None and store.list() == []
        with FakeServer([Reply.sse(WIRE / "openai-chat/text-with-usage.sse")]) as server:
            conv = open_http(driver, server, store)
            assert driver.send(conv, "hi").text
        assert store.load("ada") is not None
    MemoryStore().check_writable("ada")


def test_a_read_only_redis_replica_fails_the_turn_before_any_request(
        tmp_path: Path, driver: Driver) -> None:
    from redis_server import start_or_skip

    (tmp_path / "primary").mkdir()
    primary = start_or_skip(tmp_path / "primary")
    replica_dir = tmp_path / "replica"
    replica_dir.mkdir()
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(replica_dir), "--replicaof", "127.0.0.1",
         str(primary.port), "--replica-read-only", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from promptkit.stores import AsyncRedisStore, RedisStore

        url = f"redis://127.0.0.1:{port}/0"
        _wait_for(url)
        with FakeServer([Reply.sse(WIRE / "openai-chat/text-with-usage.sse")]) as server:
            if driver.is_async:
                async def go() -> None:
                    async with AsyncRedisStore(url) as store:
                        conv = open_http(driver, server, store)
                        with pytest.raises(promptkit.StoreError, match=r"READONLY|read only"):
                            await conv.send("hi")

                asyncio.run(go())
            else:
                with RedisStore(url) as store:
                    conv = open_http(driver, server, store)
                    with pytest.raises(promptkit.StoreError, match=r"READONLY|read only"):
                        conv.send("hi")
            assert not server.requests
    finally:
        process.terminate()
        process.wait(5)
        primary.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str) -> None:
    import time

    import redis

    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.02)
        pytest.skip("the redis replica did not start")
    finally:
        client.close()
