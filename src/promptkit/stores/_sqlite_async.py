"""The asyncio twin of :class:`~promptkit.stores.SQLiteStore`.

Every call runs the blocking store in a worker thread (``asyncio.to_thread``), so the event loop
never waits on the disk or on another process's write lock. The file, its schema and its
guarantees are the sync store's: both classes can share one file, even in one process.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import threading
from collections.abc import Sequence

from promptkit.engine.messages import Message
from promptkit.stores._protocol import (
    ConversationInfo,
    ConversationMetadata,
    StoredConversation,
    check_conversation_id,
)
from promptkit.stores.sqlite import SQLiteStore, Synchronous

__all__ = ["AsyncSQLiteStore"]


class AsyncSQLiteStore:
    """An :class:`~promptkit.stores.AsyncConversationStore` in a SQLite file.

        store = AsyncSQLiteStore("chats.db")
        async with promptkit.open_async(pack, "chat", store=store) as conv: ...
        await store.aclose()

    The file is opened (and its schema checked or migrated) on first use, in a worker thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0,
                 synchronous: Synchronous = "FULL", cache_size: int = 256) -> None:
        self._path = path
        self._options = {"timeout": timeout, "synchronous": synchronous,
                         "cache_size": cache_size}
        self._store: SQLiteStore | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AsyncSQLiteStore({os.fspath(self._path)!r})"

    def _sync(self) -> SQLiteStore:
        """The blocking store, opened on first use (called in a worker thread)."""
        with self._lock:
            if self._store is None:
                self._store = SQLiteStore(self._path, **self._options)  # type: ignore[arg-type]
            return self._store

    async def open(self) -> AsyncSQLiteStore:
        """Open the file now (it is otherwise opened by the first call); returns the store."""
        await asyncio.to_thread(self._sync)
        return self

    async def __aenter__(self) -> AsyncSQLiteStore:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    async def load(self, conversation_id: str) -> StoredConversation | None:
        check_conversation_id(conversation_id)
        return await asyncio.to_thread(lambda: self._sync().load(conversation_id))

    async def append(self, conversation_id: str, messages: Sequence[Message],
                     expected_version: int, *,
                     metadata: ConversationMetadata | None = None) -> int:
        check_conversation_id(conversation_id)
        return await asyncio.to_thread(lambda: self._sync().append(
            conversation_id, messages, expected_version, metadata=metadata))

    async def head(self, conversation_id: str) -> tuple[int, str]:
        check_conversation_id(conversation_id)
        return await asyncio.to_thread(lambda: self._sync().head(conversation_id))

    async def check_writable(self, conversation_id: str) -> None:
        """Raise StoreError if the database cannot be written (see SQLiteStore)."""
        check_conversation_id(conversation_id)
        await asyncio.to_thread(lambda: self._sync().check_writable(conversation_id))

    async def fork(self, source_id: str, target_id: str) -> None:
        check_conversation_id(source_id)
        check_conversation_id(target_id)
        await asyncio.to_thread(lambda: self._sync().fork(source_id, target_id))

    async def delete(self, conversation_id: str) -> None:
        check_conversation_id(conversation_id)
        await asyncio.to_thread(lambda: self._sync().delete(conversation_id))

    async def list(self, *, prefix: str = "", after: str | None = None,
                   limit: int = 100) -> builtins.list[ConversationInfo]:
        return await asyncio.to_thread(
            lambda: self._sync().list(prefix=prefix, after=after, limit=limit))
