"""Making untrusted text safe to print on a terminal.

Model output, tool results and error bodies come from outside: a reply holding ``ESC[2J``
clears the screen, OSC 0 retitles the window, OSC 52 writes the clipboard. Everything the CLI
prints goes through :func:`safe_text` (or a :class:`TerminalSanitizer` for streamed text):
escape sequences (CSI, OSC, DCS, SOS, PM, APC and two-byte ``ESC x``, in their 7-bit and C1
forms) are removed whole, and every other C0/C1 control character, DEL and a bare ESC are
dropped. ``\\n`` and ``\\t`` stay. ``promptkit send --raw`` skips this on purpose.
"""

from __future__ import annotations

import re

__all__ = ["TerminalSanitizer", "safe_json", "safe_text"]

_ST = r"(?:\x07|\x1b\\|\x9c)"  # string terminator: BEL, ESC \ or C1 ST
_STRING_START = r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])"  # OSC, DCS, SOS, PM, APC
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"          # CSI: parameters, intermediates, final
    rf"|{_STRING_START}[^\x07\x1b\x9c]*{_ST}"      # control strings up to their terminator
    r"|\x1b[ -/]*[0-~]"                          # other escape sequences (ESC c, ESC ( B)
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"            # any other control character, bare ESC
)
# The start of a sequence cut off by the end of a chunk: wait for the rest.
_INCOMPLETE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*"
    rf"|{_STRING_START}[^\x07\x1b\x9c]*\x1b?"
    r"|\x1b[ -/]*"
)
_ANY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # fast path: nothing to remove
_INTRODUCERS = re.compile(r"[\x1b\x90\x98\x9b\x9d\x9e\x9f]")
# A control string longer than this with no terminator is treated as text (its introducer
# dropped), so an unterminated OSC cannot hold back the rest of an answer.
_MAX_PENDING = 4096


def safe_text(text: str) -> str:
    """``text`` without escape sequences or control characters other than ``\\n``/``\\t``."""
    return text if _ANY_CONTROL.search(text) is None else _SEQUENCE.sub("", text)


class TerminalSanitizer:
    """:func:`safe_text` for a stream: a sequence split across chunks is still removed whole.

    ``feed`` returns what can be printed now and keeps an unfinished sequence for the next
    chunk; ``flush`` (at the end of the stream) returns the rest, made safe.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> str:
        if not self._pending and _ANY_CONTROL.search(text) is None:
            return text  # the usual chunk: plain text
        data = self._pending + text
        self._pending = ""
        for match in _INTRODUCERS.finditer(data, max(0, len(data) - _MAX_PENDING)):
            if _INCOMPLETE.fullmatch(data, match.start()):
                self._pending = data[match.start():]
                data = data[:match.start()]
                break
        return _SEQUENCE.sub("", data)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return _SEQUENCE.sub("", rest)


_JSON_UNSAFE = re.compile(r"[\x7f-\x9f]")


def safe_json(value: object, **options: object) -> str:
    """``json.dumps(value, ensure_ascii=False)`` that a terminal cannot act on either: JSON
    escapes C0 controls itself; DEL and C1 characters (``\\x9b`` is CSI) become ``\\u00XX``
    escapes too, so the decoded data is unchanged."""
    import json

    text = json.dumps(value, ensure_ascii=False, **options)  # type: ignore[arg-type]
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
