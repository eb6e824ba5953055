"""Incremental ``text/event-stream`` decoder (WHATWG server-sent events): bytes in, events out.

Pure and synchronous; the transport feeds it whatever each network read returned.

Framing rules (WHATWG, with one documented deviation at EOF):

- Lines end in LF, CRLF or a lone CR, freely mixed. A CR that ends one read and an LF that
  starts the next are one line ending. Splitting happens on bytes; UTF-8 is decoded only once a
  line is complete (invalid bytes become U+FFFD), so characters split across reads and
  U+2028 inside JSON strings are safe.
- A line starting with ``:`` is a comment (a keep-alive such as ``: OPENROUTER PROCESSING``);
  it is ignored but counted in :attr:`SSEDecoder.comments`. Drivers must not treat comments
  as content.
- Other lines split at the first ``:`` into field and value, dropping one leading space of the
  value; a line without ``:`` is a field with an empty value. ``data`` lines accumulate (joined
  by ``\\n``), ``event`` names the event, ``id`` sets the last event id (it carries over to
  later events; ignored when it contains NUL), ``retry`` (ASCII digits only) is attached to
  the event of its block. Unknown fields are ignored.
- A blank line dispatches the event. A block without any ``data`` line dispatches nothing
  (comment-only blocks, a lone ``event: ping``).
- **EOF**: :meth:`SSEDecoder.flush` treats an unterminated last line as complete and
  dispatches a final event that has data but no trailing blank line. The WHATWG algorithm (and
  openai-python) drop it; we keep it because several real servers and SDK fixtures end that
  way, and completeness is decided by the provider's terminator (``[DONE]``,
  ``message_stop`` ...), not by the blank line.
- No limit on line or event size.

:meth:`SSEDecoder.decode` returns :class:`ServerSentEvent` objects; the fast path
:meth:`SSEDecoder.decode_data` returns only the ``data`` strings, for dialects that ignore
event names (OpenAI Chat Completions, Gemini).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"
_LF = 10
_CR = 13
_COLON = 58


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event.

    ``event`` is the ``event:`` field, ``""`` when the block had none (browsers call that
    ``"message"``); ``data`` the joined data lines; ``id`` the last event id seen so far in
    the stream; ``retry`` the ``retry:`` value given in this event's block, if any.
    """

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns the bytes of one ``text/event-stream`` body into events, read by read.

    Call :meth:`decode` (or :meth:`decode_data`) with each read, then :meth:`flush` (or
    :meth:`flush_data`) once at EOF. ``comments`` counts comment lines seen, ``last_event_id``
    and ``retry`` hold the stream's latest ``id`` and ``retry`` values.
    """

    __slots__ = (
        "_after_cr",
        "_bom_pending",
        "_boundary",
        "_data",
        "_event",
        "_event_retry",
        "_partial",
        "comments",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self.comments = 0
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self._partial = bytearray()  # an incomplete line (never holds CR or LF)
        self._after_cr = False  # the previous read ended in CR: skip one leading LF
        self._bom_pending = True  # a UTF-8 BOM may open the stream
        self._boundary = False  # between two events: no partial line, no pending fields
        self._event = ""
        self._event_retry: int | None = None
        self._data: list[bytes] = []

    # --- public API --------------------------------------------------------------------------

    def decode(self, data: bytes) -> list[ServerSentEvent]:
        """Return the events completed by ``data`` (possibly none)."""
        out: list[Any] = []
        if data:
            self._feed(data, out, True)
        return out

    def decode_data(self, data: bytes) -> list[str]:
        """Fast path of :meth:`decode`: only the ``data`` of each completed event."""
        out: list[Any] = []
        if (self._boundary and data[-2:] == b"\n\n" and not self._after_cr
                and _CR not in data):  # whole events: skip the line machinery
            self._whole(data, out, False)
        elif data:
            self._feed(data, out, False)
        return out

    def flush(self) -> list[ServerSentEvent]:
        """At EOF: finish an unterminated last line and dispatch a pending event with data."""
        out: list[Any] = []
        self._lines(self._eof_lines(), out, True)
        return out

    def flush_data(self) -> list[str]:
        """Fast path of :meth:`flush`: only the ``data`` of the final event, if any."""
        out: list[Any] = []
        self._lines(self._eof_lines(), out, False)
        return out

    # --- bytes to lines ----------------------------------------------------------------------

    def _feed(self, data: bytes, out: list[Any], events: bool) -> None:
        """Route one read: whole events at an event boundary take the fast path."""
        if not (self._boundary and not self._after_cr and data[-2:] == b"\n\n"
                and _CR not in data):
            if self._bom_pending:
                data = self._strip_bom(data)
                if not data:
                    return
            if self._after_cr:
                self._after_cr = False
                if data[0] == _LF:
                    data = data[1:]
                    if not data:
                        return
            if _CR in data:
                self._after_cr = data[-1] == _CR
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if not (self._boundary and data[-2:] == b"\n\n"):
                self._split(data, out, events)
                return
        self._whole(data, out, events)

    def _whole(self, data: bytes, out: list[Any], events: bool) -> None:
        """The fast path: ``data`` holds whole events and starts between two events. The
        common layouts (``data: …`` alone, or ``event: …`` then ``data: …``) are read
        directly; anything else goes through the line machinery."""
        for block in data[:-2].split(b"\n\n"):
            if block[:6] == b"data: ":
                if _LF not in block:
                    text = block[6:].decode("utf-8", "replace")
                    out.append(ServerSentEvent("", text, self.last_event_id) if events else text)
                    continue
            elif block[:7] == b"event: ":
                cut = block.find(b"\n")
                if (cut > 0 and block[cut + 1:cut + 7] == b"data: "
                        and block.find(b"\n", cut + 1) < 0):
                    text = block[cut + 7:].decode("utf-8", "replace")
                    out.append(ServerSentEvent(block[7:cut].decode("utf-8", "replace"), text,
                                               self.last_event_id) if events else text)
                    continue
            self._block(block, out, events)

    def _block(self, block: bytes, out: list[Any], events: bool) -> None:
        """Interpret one whole event block (its lines, then the blank line that ends it)."""
        lines = block.split(b"\n")
        lines.append(b"")
        self._lines(lines, out, events)

    def _split(self, data: bytes, out: list[Any], events: bool) -> None:
        """The general path: any line layout, partial lines kept for the next read."""
        lines = data.split(b"\n")
        last = lines.pop()
        partial = self._partial
        if not lines:
            partial += last
            self._boundary = False
            return
        if partial:
            partial += lines[0]
            lines[0] = bytes(partial)
            partial.clear()
        if last:
            partial += last
        self._boundary = not last and not lines[-1]
        self._lines(lines, out, events)

    def _strip_bom(self, data: bytes) -> bytes:
        """Drop a UTF-8 byte order mark at the very start of the stream (it may be split)."""
        partial = self._partial
        head = bytes(partial) + data if partial else data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            partial[:] = head
            return b""
        self._bom_pending = False
        self._boundary = True  # the start of the stream is between two events
        partial.clear()
        return head[len(_BOM):] if head.startswith(_BOM) else head

    def _eof_lines(self) -> list[bytes]:
        """The lines still pending at EOF, followed by a blank line that dispatches."""
        self._after_cr = False
        self._bom_pending = False
        self._boundary = True
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            return [line, b""]
        return [b""]

    # --- lines to events ---------------------------------------------------------------------

    def _lines(self, lines: list[bytes], out: list[Any], events: bool) -> None:
        """Interpret complete lines, appending dispatched events (or their data) to ``out``."""
        data = self._data
        for line in lines:
            if not line:  # blank line: dispatch
                if data:
                    raw = data[0] if len(data) == 1 else b"\n".join(data)
                    text = raw.decode("utf-8", "replace")
                    if events:
                        out.append(ServerSentEvent(
                            self._event, text, self.last_event_id, self._event_retry))
                    else:
                        out.append(text)
                    data.clear()
                self._event = ""
                self._event_retry = None
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] == _COLON:
                self.comments += 1
            else:
                self._field(line)

    def _field(self, line: bytes) -> None:
        """Apply a non-data field line (``event``, ``id``, ``retry``; others are ignored)."""
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\x00" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry = self._event_retry = int(value)
        elif name == b"data":  # "data" without a colon: an empty data line
            self._data.append(b"")
