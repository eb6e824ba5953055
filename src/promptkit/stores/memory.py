"""The default store: histories in this process's memory, kept until deleted.

Unlike the Go SDK's default, nothing expires silently. Two limits are available, both off by
default: ``max_conversations`` evicts the least recently used conversation when exceeded, and
``ttl`` (seconds) forgets a conversation that many seconds after its last append.

Histories are kept packed (``_packed.py``): an idle 20-turn conversation costs a few hundred
bytes beyond its text; ``load`` unpacks them into new ``Message`` objects. A store is small
too (conversations opened without ``store=`` each get their own): its lock comes from a shared
pool, and its table is a plain dict unless ``max_conversations`` needs the LRU order.
"""

from __future__ import annotations

import builtins
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from types import MappingProxyType

from promptkit.engine.messages import Message
from promptkit.stores._packed import Packed, extend, unpack
from promptkit.stores._protocol import (
    ConflictError,
    ConversationExistsError,
    ConversationInfo,
    ConversationMetadata,
    StoredConversation,
    check_conversation_id,
    check_page,
)

__all__ = ["MemoryStore"]

_NEVER: OrderedDict[str, float] = OrderedDict()  # the expiry order of stores without a TTL


_incarnations = itertools.count(1)  # unique within the process: enough for an in-memory store

# Stores take their lock from this pool: a lock per store would cost each conversation opened
# without a store 88 bytes. No store method holds its lock while calling out or taking another
# store's, so two stores sharing a lock only ever wait for each other's few microseconds.
_LOCKS = tuple(threading.Lock() for _ in range(64))
_next_lock = itertools.count()


class _Record:
    """One stored conversation: its history (full packed segments, then the last one), message
    count, version, metadata, and the incarnation it belongs to (a new one each time the id is
    created). Never changed once made: readers use it outside the lock."""

    __slots__ = ("count", "incarnation", "last", "metadata", "sealed", "version")

    def __init__(self, sealed: tuple[Packed, ...], last: Packed | None, count: int,
                 version: int, *, metadata: ConversationMetadata, incarnation: int) -> None:
        self.sealed = sealed
        self.last = last
        self.count = count
        self.version = version
        self.metadata = metadata
        self.incarnation = incarnation

    def stored(self, conversation_id: str) -> StoredConversation:
        messages: list[Message] = []
        for packed in self.sealed:
            messages += unpack(packed)
        if self.last is not None:
            messages += unpack(self.last)
        return StoredConversation(id=conversation_id, messages=tuple(messages),
                                  version=self.version, metadata=self.metadata)

    def appended(self, messages: Sequence[Message], metadata: ConversationMetadata
                 ) -> _Record:
        segment, replaces = extend(self.last, messages)
        sealed = (self.sealed if replaces or self.last is None
                  else (*self.sealed, self.last))
        return _Record(sealed, segment, self.count + len(messages), self.version + 1,
                       metadata=metadata, incarnation=self.incarnation)


class MemoryStore:
    """An in-process, thread-safe :class:`~promptkit.stores.ConversationStore`.

        >>> store = MemoryStore()
        >>> store.append("c1", [Message(role="user", text="hi")], expected_version=0)
        1
    """

    __slots__ = ("__weakref__", "_data", "_expiry", "_lock", "_max", "_ttl")

    def __init__(self, *, max_conversations: int | None = None,
                 ttl: float | None = None) -> None:
        if max_conversations is not None and max_conversations < 1:
            raise ValueError("max_conversations must be at least 1")
        if ttl is not None and not ttl > 0:
            raise ValueError("ttl must be a positive number of seconds")
        self._max = max_conversations
        self._ttl = ttl
        self._lock = _LOCKS[next(_next_lock) % len(_LOCKS)]
        # in least-recently-used order when there is a maximum; otherwise order is not needed
        self._data: dict[str, _Record] = OrderedDict() if max_conversations is not None else {}
        # With a TTL: when each conversation expires, in write order (= expiry order).
        # Without a TTL nothing is ever written to it: all such stores share one empty dict.
        self._expiry: OrderedDict[str, float] = OrderedDict() if ttl is not None else _NEVER

    def __repr__(self) -> str:
        return f"MemoryStore(conversations={len(self._data)})"

    def load(self, conversation_id: str) -> StoredConversation | None:
        check_conversation_id(conversation_id)
        with self._lock:
            self._expire()
            found = self._data.get(conversation_id)
            if found is None:
                return None
            self._touch(conversation_id)
        return found.stored(conversation_id)  # records are never changed in place

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int, *, metadata: ConversationMetadata | None = None) -> int:
        check_conversation_id(conversation_id)
        with self._lock:
            self._expire()
            current = self._data.get(conversation_id)
            version = 0 if current is None else current.version
            if version != expected_version:
                raise ConflictError(
                    f"conversation {conversation_id!r} is at version {version}, "
                    f"expected {expected_version}")
            if current is None:
                current = _Record((), None, 0, 0, metadata=_CREATED,
                                  incarnation=next(_incarnations))
            self._data[conversation_id] = current.appended(
                messages, _merge(current.metadata, metadata, time.time()))
            self._touch(conversation_id)
            if self._ttl is not None:
                self._expiry[conversation_id] = time.monotonic() + self._ttl
                self._expiry.move_to_end(conversation_id)
            data = self._data
            if self._max is not None and isinstance(data, OrderedDict):
                while len(data) > self._max:
                    evicted, _ = data.popitem(last=False)
                    self._expiry.pop(evicted, None)
            return version + 1

    def head(self, conversation_id: str) -> tuple[int, str]:
        check_conversation_id(conversation_id)
        with self._lock:
            self._expire()
            found = self._data.get(conversation_id)
        return (0, "") if found is None else (found.version, str(found.incarnation))

    def check_writable(self, conversation_id: str) -> None:
        """Memory can always take a turn (the protocol's optional preflight)."""
        check_conversation_id(conversation_id)

    def fork(self, source_id: str, target_id: str) -> None:
        check_conversation_id(source_id)
        check_conversation_id(target_id)
        with self._lock:
            self._expire()
            if target_id in self._data:
                raise ConversationExistsError(f"conversation {target_id!r} already exists")
            source = self._data.get(source_id)
            if source is None:
                return
            now = time.time()
            meta = source.metadata
            self._data[target_id] = _Record(
                source.sealed, source.last, source.count, source.version,
                metadata=ConversationMetadata(
                    pack_id=meta.pack_id, prompt=meta.prompt, pack_version=meta.pack_version,
                    variables=meta.variables, created_at=now, updated_at=now,
                    summary=meta.summary),
                incarnation=next(_incarnations))
            if self._ttl is not None:
                self._expiry[target_id] = time.monotonic() + self._ttl

    def delete(self, conversation_id: str) -> None:
        check_conversation_id(conversation_id)
        with self._lock:
            self._data.pop(conversation_id, None)
            self._expiry.pop(conversation_id, None)

    def list(self, *, prefix: str = "", after: str | None = None,
             limit: int = 100) -> builtins.list[ConversationInfo]:
        check_page(prefix, after, limit)
        with self._lock:
            self._expire()
            ids = sorted(i for i in self._data
                         if i.startswith(prefix) and (after is None or i > after))[:limit]
            found = [(i, self._data[i]) for i in ids]
        return [ConversationInfo(id=i, version=c.version, message_count=c.count,
                                 metadata=_listed(c.metadata)) for i, c in found]

    def _touch(self, conversation_id: str) -> None:
        """Mark a conversation most recently used (caller holds the lock)."""
        data = self._data
        if isinstance(data, OrderedDict):
            data.move_to_end(conversation_id)

    def _expire(self) -> None:
        """Drop conversations whose TTL passed (caller holds the lock)."""
        if not self._expiry:
            return
        now = time.monotonic()
        while self._expiry:
            conversation_id, deadline = next(iter(self._expiry.items()))
            if deadline > now:
                break
            del self._expiry[conversation_id]
            self._data.pop(conversation_id, None)


_NO_VARIABLES: MappingProxyType[str, str] = MappingProxyType({})
_CREATED = ConversationMetadata()  # a new record's metadata before its first append


def _merge(old: ConversationMetadata | None, new: ConversationMetadata | None,
           now: float) -> ConversationMetadata:
    """The metadata after an append: ``pack_id`` and ``created_at`` stay from creation, the
    rest follows the newest metadata given (the summary only when it gives one)."""
    if old is None:
        old = ConversationMetadata(created_at=now)
    if new is None:
        new = old
    return ConversationMetadata(
        pack_id=old.pack_id or new.pack_id, prompt=new.prompt or old.prompt,
        pack_version=new.pack_version or old.pack_version,
        # a read-only copy (callers cannot edit the store's); most conversations share the empty one
        variables=MappingProxyType(dict(new.variables)) if new.variables else _NO_VARIABLES,
        created_at=old.created_at if old.created_at is not None else now, updated_at=now,
        summary=new.summary or old.summary)


def _listed(metadata: ConversationMetadata) -> ConversationMetadata:
    """The metadata ``list()`` shows: without the summary (as every store lists)."""
    return metadata if metadata.summary is None else replace(metadata, summary=None)
