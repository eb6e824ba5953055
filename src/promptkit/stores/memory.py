"""The default store: histories in this process's memory, kept until deleted.

Unlike the Go SDK's default, nothing expires silently. ``max_conversations`` (optional) evicts
the least recently used conversation when exceeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from .._errors import StoreError
from .._messages import Message
from ._protocol import ConflictError, StoredConversation

__all__ = ["MemoryStore"]


class MemoryStore:
    """An in-process, thread-safe :class:`~promptkit.stores.ConversationStore`.

        >>> store = MemoryStore()
        >>> store.append("c1", [Message(role="user", text="hi")], expected_version=0)
        1
    """

    def __init__(self, *, max_conversations: int | None = None) -> None:
        if max_conversations is not None and max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        self._max = max_conversations
        self._lock = threading.Lock()
        self._data: OrderedDict[str, StoredConversation] = OrderedDict()

    def __repr__(self) -> str:
        return f"MemoryStore(conversations={len(self._data)})"

    def load(self, conversation_id: str) -> StoredConversation | None:
        with self._lock:
            found = self._data.get(conversation_id)
            if found is not None:
                self._data.move_to_end(conversation_id)
            return found

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int) -> int:
        with self._lock:
            current = self._data.get(conversation_id)
            version = 0 if current is None else current.version
            if version != expected_version:
                raise ConflictError(
                    f"conversation {conversation_id!r} is at version {version}, "
                    f"expected {expected_version}")
            history = () if current is None else current.messages
            self._data[conversation_id] = StoredConversation(
                id=conversation_id, messages=history + tuple(messages), version=version + 1)
            self._data.move_to_end(conversation_id)
            if self._max is not None:
                while len(self._data) > self._max:
                    self._data.popitem(last=False)
            return version + 1

    def fork(self, source_id: str, target_id: str) -> None:
        with self._lock:
            if target_id in self._data:
                raise StoreError(f"conversation {target_id!r} already exists")
            source = self._data.get(source_id)
            if source is not None:
                self._data[target_id] = StoredConversation(
                    id=target_id, messages=source.messages, version=source.version)

    def delete(self, conversation_id: str) -> None:
        with self._lock:
            self._data.pop(conversation_id, None)
