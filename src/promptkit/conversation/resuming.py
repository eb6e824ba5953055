"""Resuming a stored conversation: ``promptkit.resume`` / ``resume_async``.

A conversation opened on a store it was given (``open(..., store=s)``) saves its metadata with
every turn: pack id, prompt name, pack version and the variables set explicitly. Resuming loads
the conversation once, checks it belongs to the pack, and opens a conversation on the same id
with the saved variables (overridable), so the next turn continues the full history, held tool
calls included. The metadata rides on the store's ``append`` (same transaction as the turn);
``store_binding.MetadataBinding`` adds it to the drivers' ``append`` calls.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from promptkit._errors import ConversationNotFoundError, StoreError, present_as_promptkit
from promptkit.stores._protocol import (
    StoredConversation,
    check_conversation_id,
)

if TYPE_CHECKING:
    from promptkit.conversation.async_driver import AsyncConversation
    from promptkit.conversation.sync_driver import Conversation
    from promptkit.pack.model import Pack

__all__ = ["PackMismatchError", "PackVersionWarning", "resume", "resume_async"]


class PackVersionWarning(UserWarning):
    """The pack's version changed since the resumed conversation was last saved."""


class PackMismatchError(StoreError):
    """The stored conversation was started with a different pack (another pack id)."""

    def __init__(self, conversation_id: str, stored_pack: str, given_pack: str) -> None:
        self.conversation_id = conversation_id
        self.stored_pack = stored_pack
        self.given_pack = given_pack
        super().__init__(f"conversation {conversation_id!r} belongs to pack {stored_pack!r}, "
                         f"not {given_pack!r}; resume it with that pack")


present_as_promptkit(PackVersionWarning, PackMismatchError)


def resume(conversation_id: str, pack: str | os.PathLike[str] | Pack, prompt: str, *,
           store: Any, **options: Any) -> Conversation:
    """Continue a stored conversation: its history, held tool calls and variables.

    ``pack`` is a path or a loaded Pack; ``options`` are :func:`promptkit.open`'s
    (``variables=`` are applied over the saved ones). Raises ConversationNotFoundError for an
    unknown id and PackMismatchError (a StoreError) if the conversation belongs to another pack;
    a changed pack version resumes with a :class:`PackVersionWarning`.

        conv = promptkit.resume("ada", "hello.pack.json", "chat", store=SQLiteStore("chats.db"))
    """
    from promptkit.conversation.opening import _as_pack, open

    check_conversation_id(conversation_id)
    loaded = _as_pack(pack)
    stored = store.load(conversation_id)
    if inspect.isawaitable(stored):
        if inspect.iscoroutine(stored):
            stored.close()
        raise TypeError(f"{store!r} is an async store: use `await promptkit.resume_async()`")
    variables = _check(conversation_id, loaded, stored, options.pop("variables", None))
    return open(loaded, prompt, store=store, conversation_id=conversation_id,
                variables=variables, **options)


async def resume_async(conversation_id: str, pack: str | os.PathLike[str] | Pack, prompt: str,
                       *, store: Any, **options: Any) -> AsyncConversation:
    """The asyncio twin of :func:`resume` (works with async and blocking stores).

        conv = await promptkit.resume_async("ada", pack, "chat", store=AsyncRedisStore(url))
    """
    from promptkit.conversation.opening import _as_pack, open_async

    check_conversation_id(conversation_id)
    loaded = _as_pack(pack)
    stored = store.load(conversation_id)
    if inspect.isawaitable(stored):
        stored = await stored
    variables = _check(conversation_id, loaded, stored, options.pop("variables", None))
    return open_async(loaded, prompt, store=store, conversation_id=conversation_id,
                      variables=variables, **options)


def _check(conversation_id: str, pack: Pack, stored: StoredConversation | None,
           given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Refuse an unknown id or another pack, warn on a new pack version; the variables."""
    if stored is None:
        raise ConversationNotFoundError(conversation_id)
    meta = stored.metadata
    if meta.pack_id and meta.pack_id != pack.id:
        raise PackMismatchError(conversation_id, meta.pack_id, pack.id)
    if meta.pack_version and pack.version and meta.pack_version != pack.version:
        warnings.warn(
            f"conversation {conversation_id!r} was saved with version {meta.pack_version} of "
            f"pack {pack.id!r}; continuing it with version {pack.version}",
            PackVersionWarning, stacklevel=3)
    return {**meta.variables, **(given or {})}
