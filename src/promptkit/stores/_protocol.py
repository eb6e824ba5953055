"""The conversation store protocol: versioned, append-only history per conversation id.

A turn's messages are appended in one call (atomically) with the version the turn started
from; a store whose conversation moved on meanwhile raises :class:`ConflictError`, so two
writers never interleave a turn. Next to the history a store keeps a little metadata (pack id,
prompt, pack version, the variables set, created/updated times, a ContextPolicy summary) so a
conversation can be resumed by another process and listed.

Errors (all :class:`~promptkit.StoreError`)::

    StoreError
    ├── ConflictError                 the conversation moved on since it was loaded
    ├── ConversationExistsError       fork() onto an id that is already taken
    ├── InvalidConversationIdError    not 1-255 of A-Z a-z 0-9 . _ : - (also ValueError)
    └── ConversationNotFoundError     (promptkit._errors) resume() of an unknown id
"""

from __future__ import annotations

import builtins
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from promptkit._errors import StoreError, present_as_promptkit
from promptkit.engine.messages import Message

__all__ = [
    "AsyncConversationStore",
    "ConflictError",
    "ContextSummary",
    "ConversationExistsError",
    "ConversationInfo",
    "ConversationMetadata",
    "ConversationStore",
    "HistoryCache",
    "InvalidConversationIdError",
    "StoredConversation",
    "check_conversation_id",
]

#: What a conversation id may be: it becomes part of Redis keys and file-backed rows, so it is
#: restricted to characters that cannot change a key's meaning (no spaces, braces, ``*``...).
CONVERSATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,255}")


class ConflictError(StoreError):
    """The conversation changed since it was loaded (another writer appended a turn)."""


class ConversationExistsError(StoreError):
    """``fork()`` was asked to create a conversation under an id that already exists."""


class InvalidConversationIdError(StoreError, ValueError):
    """A conversation id a store cannot use (it would be unsafe as a key)."""


present_as_promptkit(ConflictError, ConversationExistsError, InvalidConversationIdError)


def check_conversation_id(conversation_id: Any) -> str:
    """Return ``conversation_id`` if it is a valid id, else raise InvalidConversationIdError.

        >>> check_conversation_id("chat-2024:ada")
        'chat-2024:ada'
    """
    if not isinstance(conversation_id, str) or CONVERSATION_ID.fullmatch(conversation_id) is None:
        raise InvalidConversationIdError(
            f"invalid conversation id {conversation_id!r}: use 1 to 255 characters from "
            "A-Z a-z 0-9 . _ : -")
    return conversation_id


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextSummary:
    """A ``ContextPolicy(strategy="summarize")`` summary, kept beside the history it covers.

    It covers the first ``count`` visible messages; ``digest`` is a hash of them that the
    conversation computes (stores keep it as it is), so a summary that no longer matches its
    history is ignored. A cache, never required: a store may drop it, and one it cannot read
    is treated as absent.
    """

    count: int
    digest: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": SUMMARY_FORMAT, "count": self.count, "digest": self.digest,
                "text": self.text}


#: the version of a stored summary's form (``encode_summary``); others are ignored on load
SUMMARY_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationMetadata:
    """What a store keeps about a conversation besides its messages.

    ``variables`` holds the values set explicitly (pack defaults are not frozen in, so a pack
    whose default changed applies the new default). Times are Unix seconds set by the store;
    they are ``None`` in metadata passed *to* a store. ``summary`` is the conversation's
    context summary (``None`` in metadata passed to a store keeps the stored one; ``list()``
    leaves it out).
    """

    pack_id: str = ""
    prompt: str = ""
    pack_version: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    summary: ContextSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"pack_id": self.pack_id, "prompt": self.prompt,
                "pack_version": self.pack_version, "variables": dict(self.variables),
                "created_at": self.created_at, "updated_at": self.updated_at,
                "summary": None if self.summary is None else self.summary.to_dict()}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredConversation:
    """A conversation's committed history and its version (number of appended turns)."""

    id: str
    messages: tuple[Message, ...]
    version: int
    metadata: ConversationMetadata = field(default_factory=ConversationMetadata)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationInfo:
    """One entry of :meth:`ConversationStore.list`: a conversation without its messages."""

    id: str
    version: int
    message_count: int
    metadata: ConversationMetadata


@runtime_checkable
class ConversationStore(Protocol):
    """Where conversation histories live; used from blocking code, safe across threads.

    The drivers need only ``load``, ``append``, ``fork`` and ``delete``; ``list`` and the
    ``metadata`` argument serve resuming and the CLI's sessions. A store may also offer
    ``check_writable(conversation_id)``, raising StoreError when an append would fail for
    lack of write access; the drivers call it after loading and before asking the model, so
    an answer is not paid for and then lost (every promptkit store has it).
    """

    def load(self, conversation_id: str) -> StoredConversation | None:
        """The conversation, or ``None`` if it was never written."""
        ...

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int, *, metadata: ConversationMetadata | None = None) -> int:
        """Append one turn's messages atomically; return the new version.

        Raises :class:`ConflictError` if the stored version is not ``expected_version``.
        ``metadata`` (optional) is saved in the same transaction: ``pack_id`` is kept from the
        conversation's creation, the other fields follow the latest append that carries them
        (``summary`` only when it is not ``None``).
        """
        ...

    def head(self, conversation_id: str) -> tuple[int, str]:
        """``(version, incarnation)`` of the conversation, ``(0, "")`` if never written.

        Optional (every promptkit store has it): a conversation that holds its decoded history
        asks this before each turn and reloads only when another writer moved the version. The
        incarnation is a token made when the id is first written (so delete-and-rewrite is not
        mistaken for the same history)."""
        ...

    def fork(self, source_id: str, target_id: str) -> None:
        """Copy ``source_id``'s history and metadata (its summary too) to the new id
        ``target_id``, atomically.

        Raises :class:`ConversationExistsError` if ``target_id`` exists; a source that was never
        written creates nothing."""
        ...

    def delete(self, conversation_id: str) -> None:
        """Forget a conversation (no error if it does not exist)."""
        ...

    def list(self, *, prefix: str = "", after: str | None = None,
             limit: int = 100) -> builtins.list[ConversationInfo]:
        """Conversations ordered by id: up to ``limit`` whose id starts with ``prefix``, after
        the id ``after`` (pass the last id of a page to get the next page)."""
        ...


@runtime_checkable
class AsyncConversationStore(Protocol):
    """The asyncio twin of :class:`ConversationStore`."""

    async def load(self, conversation_id: str) -> StoredConversation | None: ...

    async def append(self, conversation_id: str, messages: Sequence[Message],
                     expected_version: int, *,
                     metadata: ConversationMetadata | None = None) -> int: ...

    async def head(self, conversation_id: str) -> tuple[int, str]: ...

    async def fork(self, source_id: str, target_id: str) -> None: ...

    async def delete(self, conversation_id: str) -> None: ...

    async def list(self, *, prefix: str = "", after: str | None = None,
                   limit: int = 100) -> builtins.list[ConversationInfo]: ...


def check_page(prefix: str, after: str | None, limit: int) -> None:
    """Validate ``list()`` arguments (shared by every store)."""
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be a positive integer")
    if prefix and CONVERSATION_ID.fullmatch(prefix) is None:
        raise InvalidConversationIdError(f"invalid id prefix {prefix!r}")
    if after is not None:
        check_conversation_id(after)


# JSON is written with ASCII escapes: a lone surrogate (which a provider's JSON can carry
# inside a string) survives the round trip instead of failing the UTF-8 encoding.


def encode_variables(variables: Mapping[str, str]) -> str:
    return json.dumps(dict(variables), sort_keys=True, separators=(",", ":"))


def decode_variables(text: str | bytes | None) -> dict[str, str]:
    if not text:
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("variables are not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def encode_message(message: Message) -> str:
    """A message as compact JSON (what the persistent stores keep)."""
    try:
        return json.dumps(message.to_dict(), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"a {message.role} message cannot be stored: {exc} (the values in "
                         "Message.extra must be JSON-serialisable)") from exc


def decode_message(data: str | bytes) -> Message:
    return Message.from_dict(json.loads(data))


def encode_summary(summary: ContextSummary | None) -> str:
    """A summary as compact JSON ("" for none): what the persistent stores keep."""
    return "" if summary is None else json.dumps(summary.to_dict(), separators=(",", ":"))


def decode_summary(data: str | bytes | None) -> ContextSummary | None:
    """The stored summary, or ``None`` for none, an unreadable one or one in another format
    (a newer promptkit's): a summary is only a cache, so nothing here fails a load."""
    if not data:
        return None
    try:
        found = json.loads(data)
        if found.get("format") != SUMMARY_FORMAT:
            return None
        count, digest, text = found["count"], found["digest"], found["text"]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if type(count) is not int or count < 1 or not isinstance(digest, str) \
            or not isinstance(text, str):
        return None
    return ContextSummary(count=count, digest=digest, text=text)


class HistoryCache:
    """Decoded histories of recently used conversations, so ``load`` fetches and decodes only
    the messages appended since (by anyone) instead of the whole history every turn.

    Sound because a history is append-only within one *incarnation* of a conversation id: a
    random token the store sets when the id is created (anew after a delete, or by a fork),
    so a message at a given position never changes while the token is the same.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, tuple[str, tuple[Message, ...]]] = OrderedDict()

    def get(self, conversation_id: str, incarnation: str | None = None
            ) -> tuple[str, tuple[Message, ...]]:
        """(incarnation, messages) cached for the id; ``messages`` is empty when the cache has
        nothing for it (or, with ``incarnation`` given, nothing for that incarnation)."""
        with self._lock:
            found = self._data.get(conversation_id)
        if found is None or (incarnation is not None and found[0] != incarnation):
            return "", ()
        return found

    def put(self, conversation_id: str, incarnation: str, messages: tuple[Message, ...]) -> None:
        if self._size <= 0 or not incarnation:
            return
        with self._lock:
            self._data[conversation_id] = (incarnation, messages)
            self._data.move_to_end(conversation_id)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def extend(self, conversation_id: str, incarnation: str, before: int,
               messages: Sequence[Message]) -> None:
        """After an append of ``messages`` at position ``before``: extend a cached history
        that was exactly ``before`` long (else leave it; the next load catches up)."""
        with self._lock:
            found = self._data.get(conversation_id)
            if found is not None and found[0] == incarnation and len(found[1]) == before:
                self._data[conversation_id] = (incarnation, found[1] + tuple(messages))

    def discard(self, conversation_id: str) -> None:
        with self._lock:
            self._data.pop(conversation_id, None)
