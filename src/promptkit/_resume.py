"""Resuming a stored conversation: ``promptkit.resume`` / ``resume_async``.

A conversation opened on a store it was given (``open(..., store=s)``) saves its metadata with
every turn: pack id, prompt name, pack version and the variables set explicitly. Resuming loads
the conversation once, checks it belongs to the pack, and opens a conversation on the same id
with the saved variables (overridable), so the next turn continues the full history, held tool
calls included. The metadata rides on the store's ``append`` (same transaction as the turn);
:class:`MetadataBinding` adds it to the drivers' ``append`` calls.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ConversationNotFoundError, StoreError
from .stores._protocol import ConversationMetadata, StoredConversation, check_conversation_id

if TYPE_CHECKING:
    from ._async_conversation import AsyncConversation
    from ._conversation import Conversation
    from ._messages import Message
    from ._pack import Pack, PromptSpec
    from ._variables import VariableSet

__all__ = ["MetadataBinding", "PackMismatchError", "PackVersionWarning", "resume",
           "resume_async"]


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


def resume(conversation_id: str, pack: str | os.PathLike[str] | Pack, prompt: str, *,
           store: Any, **options: Any) -> Conversation:
    """Continue a stored conversation: its history, held tool calls and variables.

    ``pack`` is a path or a loaded Pack; ``options`` are :func:`promptkit.open`'s
    (``variables=`` are applied over the saved ones). Raises ConversationNotFoundError for an
    unknown id and PackMismatchError (a StoreError) if the conversation belongs to another pack;
    a changed pack version resumes with a :class:`PackVersionWarning`.

        conv = promptkit.resume("ada", "hello.pack.json", "chat", store=SQLiteStore("chats.db"))
    """
    from ._open import _as_pack, open

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
    from ._open import _as_pack, open_async

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


# --- saving metadata with each turn -----------------------------------------------------------

_ACCEPTS_METADATA: dict[type, bool] = {}


def accepts_metadata(store: Any) -> bool:
    """Whether ``store.append`` takes ``metadata=`` (every promptkit store does)."""
    kind = type(store)
    known = _ACCEPTS_METADATA.get(kind)
    if known is None:
        try:
            parameters = inspect.signature(store.append).parameters
        except (AttributeError, TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        known = _ACCEPTS_METADATA[kind] = "metadata" in parameters
    return known


class MetadataBinding:
    """A store as one conversation sees it: its appends carry the conversation's metadata.

    Everything else is the wrapped store's. Appends for another id carry no metadata: a fork
    sharing this binding keeps the metadata the store copied at the fork, unless the fork is
    given its own binding (:meth:`rebind`), which then saves the fork's variables too.
    """

    __slots__ = ("_defaults", "_id", "_static", "_variables", "store")

    def __init__(self, store: Any, *, conversation_id: str, pack: Pack, prompt: PromptSpec,
                 variables: VariableSet) -> None:
        from ._variables import VariableSet

        self.store = store
        self._id = conversation_id
        self._static = (pack.id, prompt.name, pack.version)
        self._variables = variables
        self._defaults = VariableSet(variables.specs).snapshot()

    def __repr__(self) -> str:
        return f"MetadataBinding({self.store!r}, conversation_id={self._id!r})"

    def __getattr__(self, name: str) -> Any:
        if name == "store":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.store, name)

    def rebind(self, conversation_id: str, variables: VariableSet) -> MetadataBinding:
        """The binding for a fork: same store, pack and prompt; the fork's id and variables."""
        clone = MetadataBinding.__new__(MetadataBinding)
        clone.store = self.store
        clone._id = conversation_id
        clone._static = self._static
        clone._variables = variables
        clone._defaults = self._defaults
        return clone

    def metadata(self) -> ConversationMetadata:
        """What the next append saves: variables set explicitly (defaults are not pinned)."""
        defaults = self._defaults
        values = {name: value for name, value in self._variables.snapshot().items()
                  if defaults.get(name) != value}
        pack_id, prompt, version = self._static
        return ConversationMetadata(pack_id=pack_id, prompt=prompt, pack_version=version,
                                    variables=values)

    def load(self, conversation_id: str) -> Any:
        return self.store.load(conversation_id)

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int) -> Any:
        metadata = self.metadata() if conversation_id == self._id else None
        return self.store.append(conversation_id, messages, expected_version, metadata=metadata)

    def fork(self, source_id: str, target_id: str) -> Any:
        return self.store.fork(source_id, target_id)

    def delete(self, conversation_id: str) -> Any:
        return self.store.delete(conversation_id)
