"""The decoded histories conversations keep between turns, within one process-wide budget.

A conversation that keeps its history decoded starts each turn from it (after one cheap
``head()`` read of the store) instead of loading and decoding the whole past again, so a turn
at message 4,000 costs what a turn at message 40 does, apart from the request itself. Decoded
messages cost memory, though, so the most recently used histories are kept up to a budget
(``PROMPTKIT_KEPT_HISTORY_MB``, default 64 MiB, ``0`` turns keeping off); a conversation whose
history was dropped simply loads it at its next turn. Short histories (under ``KEEP_FROM``
messages) are not kept at all: reloading them is cheap, and an idle short conversation stays
as small as its store's packed history.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from promptkit.engine.dialect import WireMemo
from promptkit.engine.held import visible
from promptkit.engine.messages import Message

__all__ = ["KEPT", "KeepsHistory", "KeptHistories", "TurnHistory"]

# Histories shorter than this are not kept: decoding 64 messages again costs about 60 µs, and
# an idle short conversation then holds only what its store holds (packed, near its text).
KEEP_FROM = 64

# A decoded Message with its Usage and extra dict, plus its wire form in the conversation's
# WireMemo (which shares the text), costs about this much beside its text (measured with
# tracemalloc on 20-turn histories); a budget estimate, not an exact count.
_MESSAGE_OVERHEAD = 560


def _users(messages: Sequence[Message]) -> int:
    return sum(1 for m in messages if m.role == "user")


def _size(messages: Sequence[Message]) -> int:
    return sum(_MESSAGE_OVERHEAD + len(m.text) for m in messages)


@dataclass(frozen=True, slots=True)
class TurnHistory:
    """A conversation's history as a turn starts from it.

    Reused while the store's ``head()`` still reports ``version`` (and the same incarnation);
    after a commit it is extended with the turn's messages.
    """

    messages: tuple[Message, ...]  # as stored: control records included
    visible: tuple[Message, ...]   # what providers and users see
    version: int
    incarnation: str | None = None  # learnt from head(); None until known
    size: int = 0                   # estimated bytes, for the budget (0 when too short)
    user_turns: int = 0             # user messages among the visible ones (the turn index)

    @classmethod
    def of(cls, messages: tuple[Message, ...], version: int) -> TurnHistory:
        shown = visible(messages)
        size = _size(messages) if len(messages) >= KEEP_FROM else 0  # short: never kept
        return cls(messages, shown, version, None, size, _users(shown))

    def extended(self, messages: Sequence[Message], version: int) -> TurnHistory:
        shown = visible(messages)
        everything = self.messages + tuple(messages)
        if len(everything) < KEEP_FROM:
            size = 0  # short: never kept, so never sized
        elif self.size:
            size = self.size + _size(messages)
        else:
            size = _size(everything)
        return TurnHistory(everything, self.visible + shown, version, self.incarnation, size,
                           self.user_turns + _users(shown))

    def current(self, head: tuple[int, str]) -> TurnHistory | None:
        """This history if the store's ``(version, incarnation)`` says nobody else wrote."""
        version, incarnation = head
        if version != self.version or self.incarnation not in (None, incarnation):
            return None
        if self.incarnation == incarnation:
            return self
        return replace(self, incarnation=incarnation)


class KeptHistories:
    """Which conversations keep a decoded history: the most recently used, within ``budget``
    bytes. Dropping one calls the owner's ``_drop_history()``."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._owners: OrderedDict[int, tuple[weakref.ref[Any], int]] = OrderedDict()
        self._total = 0
        # weakref callbacks only note the dead here (they can run inside any allocation,
        # even while this object holds its lock); keep() and forget() clear them out
        self._dead: list[weakref.ref[Any]] = []
        self._key_of: dict[int, int] = {}  # id(weak reference) -> key of its entry

    @property
    def total(self) -> int:
        """Estimated bytes kept now."""
        return self._total

    def keep(self, owner: Any, size: int) -> None:
        """Record that ``owner`` keeps ``size`` bytes now (most recently used)."""
        key = id(owner)
        dropped: list[Any] = []
        ref = weakref.ref(owner, self._dead.append)
        with self._lock:
            self._purge()
            previous = self._owners.pop(key, None)
            if previous is not None:
                self._total -= previous[1]
                self._key_of.pop(id(previous[0]), None)
            self._owners[key] = (ref, size)
            self._key_of[id(ref)] = key
            self._total += size
            while self._total > self.budget and self._owners:
                _, (old, evicted) = self._owners.popitem(last=False)
                self._total -= evicted
                self._key_of.pop(id(old), None)
                victim = old()
                if victim is not None:
                    dropped.append(victim)
        for victim in dropped:  # outside the lock: an owner is never mid-update here
            victim._drop_history()

    def forget(self, owner: Any) -> None:
        with self._lock:
            self._purge()
            previous = self._owners.pop(id(owner), None)
            if previous is not None:
                self._total -= previous[1]
                self._key_of.pop(id(previous[0]), None)

    def _purge(self) -> None:
        """Drop the entries of owners that were garbage-collected (under the lock)."""
        while self._dead:
            ref = self._dead.pop()
            key = self._key_of.pop(id(ref), None)
            entry = None if key is None else self._owners.get(key)
            if entry is not None and entry[0] is ref:
                del self._owners[key]  # type: ignore[arg-type]
                self._total -= entry[1]


class KeepsHistory:
    """The kept-history part of a conversation (mixed into ConversationCore)."""

    _history: TurnHistory | None
    _wire_memo: WireMemo

    def _reuse_history(self, head: Any) -> TurnHistory | None:
        """The kept history if ``head`` (the store's ``head()``, or None) says it is current."""
        kept = self._history
        if kept is None or not isinstance(head, tuple):
            return None
        current = kept.current(head)
        if current is not kept:
            self._keep(current)
        return current

    def _loaded_history(self, messages: tuple[Message, ...], version: int,
                        head: Any) -> TurnHistory:
        loaded = TurnHistory.of(messages, version)
        self._wire_memo.clear()  # new message objects: nothing to reuse
        if isinstance(head, tuple) and head[0] == version and head[1]:
            loaded = replace(loaded, incarnation=head[1])
        self._keep(loaded)
        return loaded

    def _committed(self, before: TurnHistory, messages: Sequence[Message],
                   version: Any) -> TurnHistory | None:
        """Keep ``before`` plus a committed turn (``version`` is what ``append`` returned)."""
        kept = (before.extended(messages, version)
                if isinstance(version, int) and version == before.version + 1 else None)
        self._keep(kept)
        return kept

    def _drop_history(self) -> None:
        """Forget the kept history (the budget needs the room): the next turn loads it."""
        self._history = None
        self._wire_memo.clear()

    def _keep(self, history: TurnHistory | None) -> None:
        if history is not None and len(history.messages) < KEEP_FROM:
            history = None  # short: loading it again costs less than keeping it
        was_kept = self._history is not None
        self._history = history
        if history is None:
            self._wire_memo.clear()
            if was_kept:  # only a kept history is in the budget's books
                KEPT.forget(self)
        else:
            KEPT.keep(self, history.size)


def _budget_from_env() -> int:
    raw = os.environ.get("PROMPTKIT_KEPT_HISTORY_MB", "").strip()
    try:
        megabytes = float(raw) if raw else 64.0
    except ValueError:
        megabytes = 64.0
    return max(0, int(megabytes * 1024 * 1024))


KEPT = KeptHistories(_budget_from_env())
