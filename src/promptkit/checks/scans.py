"""The incremental (streaming) forms of ``content_excludes`` and ``max_length``.

Both satisfy ``promptkit.engine.guardrails.StreamScan``. The banned-word scan holds back the
shortest tail of the text that could still grow into a banned word: the leftmost position,
at a word start, from which the rest of the text is a prefix of some banned word (compared
case-insensitively). Everything before it can never be part of a match, so releasing it is
safe whatever arrives next; a complete word is reported only once the character after it
shows it is whole (or the text ends). One compiled regular expression does both searches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BannedWordScan", "BannedWords", "LengthLimit", "LengthScan"]


def _prefixes(word: str) -> str:
    """A pattern matching every non-empty prefix of ``word``: ``b(?:a(?:r)?)?``."""
    pattern = ""
    for char in reversed(word[1:]):
        pattern = f"(?:{re.escape(char)}{pattern})?"
    return re.escape(word[0]) + pattern


@dataclass(frozen=True, slots=True)
class BannedWords:
    """The compiled word list of one ``content_excludes`` check."""

    words: tuple[str, ...]
    whole: re.Pattern[str]
    stream: re.Pattern[str]

    @classmethod
    def of(cls, words: Sequence[str]) -> BannedWords:
        ordered = tuple(sorted({w for w in words if w}, key=lambda w: (-len(w), w)))
        alternatives = "|".join(re.escape(w) for w in ordered)
        whole = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        partial = "|".join(_prefixes(w) for w in ordered)
        stream = re.compile(
            rf"(?<!\w)(?:(?P<hit>{alternatives})(?=\W)|(?:{partial})\Z)", re.IGNORECASE)
        return cls(ordered, whole, stream)

    def find(self, text: str) -> str | None:
        """The first banned word in ``text`` (as written there), or ``None``."""
        match = self.whole.search(text)
        return None if match is None else match.group(0)


class BannedWordScan:
    """Streaming ``content_excludes``: see the module docstring."""

    __slots__ = ("_found", "_stream", "_whole")

    def __init__(self, words: BannedWords) -> None:
        self._stream = words.stream
        self._whole = words.whole
        self._found = ""

    def safe_prefix(self, pending: str, before: str, released: int) -> int:
        text = before + pending
        match = self._stream.search(text, len(before))
        if match is None:
            return len(pending)
        hit = match.group("hit")
        if hit is not None:
            self._found = hit
            return -1
        return match.start() - len(before)

    def violates_at_end(self, pending: str, before: str, released: int) -> bool:
        match = self._whole.search(before + pending, len(before))
        if match is None:
            return False
        self._found = match.group(0)
        return True

    def finding(self) -> Mapping[str, Any]:
        return {"word": self._found}


@dataclass(frozen=True, slots=True)
class LengthLimit:
    """A ``max_length`` limit: characters and/or tokens (estimated as characters / 4)."""

    max_characters: int | None
    max_tokens: int | None

    @property
    def characters(self) -> int:
        """The limit in characters (a token limit counts four characters per token)."""
        limits = [n for n in (self.max_characters,
                              None if self.max_tokens is None else self.max_tokens * 4)
                  if n is not None]
        return min(limits)


class LengthScan:
    """Streaming ``max_length``: releases text while the total stays within the limit."""

    __slots__ = ("_limit", "_total")

    def __init__(self, limit: LengthLimit) -> None:
        self._limit = limit.characters
        self._total = 0

    def safe_prefix(self, pending: str, before: str, released: int) -> int:
        total = released + len(pending)
        if total > self._limit:
            self._total = total
            return -1
        return len(pending)

    def violates_at_end(self, pending: str, before: str, released: int) -> bool:
        return released + len(pending) > self._limit

    def finding(self) -> Mapping[str, Any]:
        return {"limit": self._limit, "length_at_least": self._total}
