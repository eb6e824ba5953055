"""A shared store as one conversation sees it: every append carries the conversation's metadata.

A conversation opened on a store it was given saves pack id, prompt name, pack version and the
variables set explicitly with every turn (in the turn's own transaction), so it can be resumed
and listed later (``promptkit.resume``). A context summary not saved yet rides on the next
append the same way (``MetadataBinding.summary``, set by ``fitting.ContextKeeper``).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promptkit.stores._protocol import ContextSummary, ConversationMetadata

if TYPE_CHECKING:
    from promptkit.engine.messages import Message
    from promptkit.pack.model import Pack, PromptSpec
    from promptkit.pack.variables import VariableSet

__all__ = ["MetadataBinding", "accepts_metadata"]

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
    ``summary`` is a context summary to save with the next append of this id; it is cleared
    once an append carrying it succeeded.
    """

    __slots__ = ("_defaults", "_id", "_static", "_variables", "store", "summary")

    def __init__(self, store: Any, *, conversation_id: str, pack: Pack, prompt: PromptSpec,
                 variables: VariableSet) -> None:
        from promptkit.pack.variables import VariableSet

        self.store = store
        self._id = conversation_id
        self._static = (pack.id, prompt.name, pack.version)
        self._variables = variables
        self._defaults = VariableSet(variables.specs).snapshot()
        self.summary: ContextSummary | None = None

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
        clone.summary = None
        return clone

    def metadata(self) -> ConversationMetadata:
        """What the next append saves: variables set explicitly (defaults are not pinned)."""
        defaults = self._defaults
        values = {name: value for name, value in self._variables.snapshot().items()
                  if defaults.get(name) != value}
        pack_id, prompt, version = self._static
        return ConversationMetadata(pack_id=pack_id, prompt=prompt, pack_version=version,
                                    variables=values, summary=self.summary)

    def load(self, conversation_id: str) -> Any:
        return self.store.load(conversation_id)

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int) -> Any:
        metadata = self.metadata() if conversation_id == self._id else None
        result = self.store.append(conversation_id, messages, expected_version,
                                   metadata=metadata)
        summary = None if metadata is None else metadata.summary
        if summary is None:
            return result
        if inspect.isawaitable(result):  # an async store
            return self._saving(result, summary)
        self._saved(summary)
        return result

    async def _saving(self, append: Any, summary: ContextSummary) -> Any:
        version = await append
        self._saved(summary)
        return version

    def _saved(self, summary: ContextSummary) -> None:
        if self.summary is summary:
            self.summary = None

    def fork(self, source_id: str, target_id: str) -> Any:
        return self.store.fork(source_id, target_id)

    def delete(self, conversation_id: str) -> Any:
        return self.store.delete(conversation_id)
