"""The conversation store protocol: versioned, append-only history per conversation id.

A turn's messages are appended in one call (atomically) with the version the turn started
from; a store whose conversation moved on meanwhile raises :class:`ConflictError`, so two
writers never interleave a turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .._errors import StoreError
from .._messages import Message

__all__ = ["AsyncConversationStore", "ConflictError", "ConversationStore", "StoredConversation"]


class ConflictError(StoreError):
    """The conversation changed since it was loaded (another writer appended a turn)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredConversation:
    """A conversation's committed history and its version (number of appended turns)."""

    id: str
    messages: tuple[Message, ...]
    version: int


@runtime_checkable
class ConversationStore(Protocol):
    """Where conversation histories live; used from blocking code, safe across threads."""

    def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None`` if it was never written."""
        ...

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int) -> int:
        """Append one turn's messages atomically; return the new version."""
        ...

    def fork(self, source_id: str, target_id: str) -> None:
        """Copy ``source_id``'s history to the new id ``target_id``."""
        ...

    def delete(self, conversation_id: str) -> None:
        """Forget a conversation (no error if it does not exist)."""
        ...


@runtime_checkable
class AsyncConversationStore(Protocol):
    """The asyncio twin of :class:`ConversationStore`."""

    async def load(self, conversation_id: str) -> StoredConversation | None: ...

    async def append(self, conversation_id: str, messages: Sequence[Message],
                     expected_version: int) -> int: ...

    async def fork(self, source_id: str, target_id: str) -> None: ...

    async def delete(self, conversation_id: str) -> None: ...
