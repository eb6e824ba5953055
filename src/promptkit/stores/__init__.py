"""Conversation stores: where committed history lives.

* ``MemoryStore``: the default; this process only; optional ``ttl`` and
  ``max_conversations`` (off by default: nothing expires silently). Works with both drivers.
* ``SQLiteStore`` / ``AsyncSQLiteStore``: one file on one machine, shared by threads and
  processes; the CLI's sessions live in one.
* ``RedisStore`` / ``AsyncRedisStore``: processes on many machines; optional ``ttl``.

Every store keeps, per conversation id, the history (versioned: one version per appended turn)
and metadata (pack id, prompt, pack version, variables, created/updated times, and the
``ContextSummary`` a summarizing ``ContextPolicy`` made, so a resumed conversation reuses
it). Ids are 1-255 characters from ``A-Z a-z 0-9 . _ : -``. The persistent stores load
lazily: importing this package costs nothing until one is used (``redis``, from the extra
``promptkit-sdk[redis]``, is imported only by the Redis stores).

May import ``promptkit.engine.messages`` and ``promptkit._errors``; a store knows nothing of
packs, turns or drivers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptkit.stores._protocol import (
    AsyncConversationStore,
    ConflictError,
    ContextSummary,
    ConversationExistsError,
    ConversationInfo,
    ConversationMetadata,
    ConversationStore,
    InvalidConversationIdError,
    StoredConversation,
    check_conversation_id,
)
from promptkit.stores.memory import MemoryStore

if TYPE_CHECKING:
    from promptkit.stores._redis import AsyncRedisStore, RedisStore
    from promptkit.stores._sqlite_async import AsyncSQLiteStore
    from promptkit.stores.sqlite import SQLiteStore

__all__ = [
    "AsyncConversationStore",
    "AsyncRedisStore",
    "AsyncSQLiteStore",
    "ConflictError",
    "ContextSummary",
    "ConversationExistsError",
    "ConversationInfo",
    "ConversationMetadata",
    "ConversationStore",
    "InvalidConversationIdError",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "StoredConversation",
    "check_conversation_id",
]

_LAZY = {
    "AsyncRedisStore": "._redis",
    "AsyncSQLiteStore": "._sqlite_async",
    "RedisStore": "._redis",
    "SQLiteStore": ".sqlite",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptkit.stores' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
