"""The incremental (streaming) forms of ``content_excludes`` and ``max_length``.

Both satisfy ``promptkit.engine.guardrails.StreamScan``. The banned-word scan holds back the
shortest tail of the text that could still grow into a banned word: the leftmost position,
at a word start, from which the rest of the text is a prefix of some banned word (compared
case-insensitively). Everything before it can never be part of a match, so releasing it is
safe whatever arrives next; a complete word is reported only once the character after it
shows it is whole (or the text ends). One compiled regular expression does both searches.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BannedWordScan", "BannedWords", "LengthLimit", "LengthScan"]


def _prefixes(word: str) -> str:
    """A pattern matching every non-empty prefix of ``word``: ``b(?:a(?:r)?)?``."""
    pattern = ""
    for char in reversed(word[1:]):
        pattern = f"(?:{re.escape(char)}{pattern})?"
    return re.escape(word[0]) + pattern


_WORD_RUN_REVERSED = re.compile(r"\w*")
_KNOWN_LENGTH = 32  # BannedWords.known: texts up to this long, at most this many of them
_KNOWN_SIZE = 1024


@dataclass(frozen=True, slots=True)
class BannedWords:
    """The compiled word list of one ``content_excludes`` check.

    ``hit`` finds a banned word known to be whole (a character follows it); ``whole`` one at
    the end of the text too. ``prefix`` (full match) tells whether a text is a prefix of a
    banned word; it is used when every banned word is made of word characters only (the
    common case): the held tail can then only be the text's trailing run of word characters.
    Otherwise ``stream`` finds the hit or the leftmost prefix in one search.
    """

    words: tuple[str, ...]
    firsts: tuple[str, ...] | None
    start: re.Pattern[str]
    whole: re.Pattern[str]
    hit: re.Pattern[str]
    prefix: re.Pattern[str] | None
    stream: re.Pattern[str]
    longest: int
    #: short delta texts already known to hold no word that starts like a banned one (deltas
    #: repeat: a model streams the same tokens over and over); shared by every scan
    known: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, words: Sequence[str]) -> BannedWords:
        return _compiled(tuple(sorted({w for w in words if w}, key=lambda w: (-len(w), w))))

    def find(self, text: str) -> str | None:
        """The first banned word in ``text`` (as written there), or ``None``."""
        match = self.whole.search(text)
        return None if match is None else match.group(0)


@functools.lru_cache(maxsize=128)
def _compiled(ordered: tuple[str, ...]) -> BannedWords:
    alternatives = "|".join(re.escape(w) for w in ordered)
    partial = "|".join(_prefixes(w) for w in ordered)
    whole = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    hit = re.compile(rf"(?<!\w)(?:{alternatives})(?=\W)", re.IGNORECASE)
    simple = all(re.fullmatch(r"\w+", w) for w in ordered)
    prefix = re.compile(f"(?:{partial})", re.IGNORECASE) if simple else None
    stream = re.compile(
        rf"(?<!\w)(?:(?P<hit>{alternatives})(?=\W)|(?:{partial})\Z)", re.IGNORECASE)
    firsts = "".join(sorted({re.escape(w[0]) for w in ordered}))
    start = re.compile(rf"(?<!\w)[{firsts}]", re.IGNORECASE)
    return BannedWords(ordered, _first_letters(ordered), start, whole, hit, prefix, stream,
                       max(map(len, ordered)))


def _first_letters(words: Sequence[str]) -> tuple[str, ...] | None:
    """Every character that, lower-cased, can be a banned word's first character under the
    regular expressions' case-insensitive matching (with its extra equivalences, such as
    ``ſ`` for ``s``); ``None`` when that table is not available (the check then always
    searches)."""
    try:
        from re import _casefix  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - CPython has had it since 3.11
        return None
    extra: dict[int, tuple[int, ...]] = _casefix._EXTRA_CASES
    found: set[str] = set()
    for word in words:
        for char in {word[0], word[0].lower(), word[0].upper()}:
            found.update(char.lower())
            for code in extra.get(ord(char.lower()), ()) if len(char.lower()) == 1 else ():
                found.update(chr(code).lower())
    return tuple(sorted(found))


class BannedWordScan:
    """Streaming ``content_excludes``: see the module docstring."""

    __slots__ = ("_firsts", "_found", "_hit", "_known", "_longest", "_prefix", "_start",
                 "_stream", "_whole")

    def __init__(self, words: BannedWords) -> None:
        self._stream = words.stream
        self._start = words.start
        self._firsts = words.firsts
        self._whole = words.whole
        self._hit = words.hit
        self._prefix = words.prefix
        self._longest = words.longest
        self._known = words.known
        self._found = ""

    def safe_prefix(self, pending: str, before: str, released: int) -> int:
        # Only a match starting inside ``pending`` is possible (see the module docstring);
        # ``before`` matters only as the word boundary in front of it.
        head = pending[:1]
        if before and (head.isalnum() or head == "_"):  # str.isalnum() is re's \w
            text, offset = before + pending, 1
        else:  # no word boundary is lost: a match cannot start at pending's first character
            text, offset = pending, 0  # unless that one begins a word anyway
        if self.clear_until(text, offset, released) == len(text):
            return len(pending)  # the fast path: no word here starts like a banned word
        prefix = self._prefix
        if prefix is None:
            return self._general(before + pending, len(before))
        found = self._hit.search(text, offset)
        if found is not None:
            self._found = found.group(0)
            return -1
        last = text[-1:]
        if not (last.isalnum() or last == "_"):
            return len(pending)  # ends outside a word: nothing can continue a banned word
        tail = _WORD_RUN_REVERSED.match(text[: -self._longest - 2: -1])
        run = 0 if tail is None else tail.end()
        start = len(text) - run
        if run > self._longest or start < offset or prefix.fullmatch(text, start) is None:
            return len(pending)  # the trailing word is no banned word's beginning
        return start - offset

    def _general(self, text: str, offset: int) -> int:
        match = self._stream.search(text, offset)
        if match is None:
            return len(text) - offset
        hit = match.group("hit")
        if hit is not None:
            self._found = hit
            return -1
        return match.start() - offset

    def clear_chunk(self, text: str, released: int) -> bool:
        known = self._known
        clear = known.get(text)
        if clear is None:  # as if a word started at text[0]: conservative, whatever came before
            # (the quick first-letter test, else the full one: " fox" starts like "forbidden"
            # but is no hit and does not end in a banned word's beginning)
            clear = (self.clear_until(text, 0, released) == len(text)
                     or self.safe_prefix(text, "", released) == len(text))
            if len(text) <= _KNOWN_LENGTH:
                if len(known) >= _KNOWN_SIZE:
                    known.clear()
                known[text] = clear
        return clear

    def clear_until(self, text: str, start: int, released: int) -> int:
        firsts = self._firsts
        if firsts is not None:  # a substring test is far cheaper than any regex search
            lowered = text[start:].lower()
            for char in firsts:
                if char in lowered:
                    break
            else:
                return len(text)
        found = self._start.search(text, start)  # the first word that starts like a banned one
        return len(text) if found is None else found.start()

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

    def clear_chunk(self, text: str, released: int) -> bool:
        return released + len(text) <= self._limit

    def clear_until(self, text: str, start: int, released: int) -> int:
        return start + max(0, self._limit - released)

    def violates_at_end(self, pending: str, before: str, released: int) -> bool:
        return released + len(pending) > self._limit

    def finding(self) -> Mapping[str, Any]:
        return {"limit": self._limit, "length_at_least": self._total}
