"""Incremental newline-delimited JSON decoder (Ollama ``/api/chat``): bytes in, values out.

One JSON value per line; lines end in LF or CRLF; blank lines are skipped; the last line may
lack its newline (:meth:`NDJSONDecoder.flush` parses it at EOF). A line that is not JSON
raises :class:`~promptkit.StreamProtocolError` quoting the line.
"""

from __future__ import annotations

from typing import Any

from promptkit._errors import StreamProtocolError
from promptkit._json import loads

__all__ = ["NDJSONDecoder"]

_SNIPPET = 200


class NDJSONDecoder:
    """Turns the bytes of one NDJSON body into parsed JSON values, read by read."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = bytearray()  # an incomplete line (never holds LF)

    def decode(self, data: bytes) -> list[Any]:
        """Return the values of the lines completed by ``data`` (possibly none)."""
        lines = data.split(b"\n")
        last = lines.pop()
        partial = self._partial
        if not lines:
            partial += last
            return []
        if partial:
            partial += lines[0]
            lines[0] = bytes(partial)
            partial.clear()
        if last:
            partial += last
        return _parse(lines)

    def flush(self) -> list[Any]:
        """At EOF: parse a last line that had no newline."""
        if not self._partial:
            return []
        line = bytes(self._partial)
        self._partial.clear()
        return _parse([line])


def _parse(lines: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for line in lines:
        if not line:
            continue
        try:
            out.append(loads(line.decode("utf-8")))
        except ValueError:  # also UnicodeDecodeError
            if line.strip():
                raise _protocol_error(line) from None
    return out


def _protocol_error(line: bytes) -> StreamProtocolError:
    text = line.decode("utf-8", "replace")
    if len(text) > _SNIPPET:
        text = text[:_SNIPPET] + "…"
    return StreamProtocolError(f"expected one JSON value per line, got: {text!r}")
