"""HTTP/1.1 client framing without I/O: the request head, the response head, the body decoder.

The asyncio transport feeds received bytes in and writes what comes out; nothing here touches a
socket or an event loop. Only what a client of JSON/SSE APIs needs: ``Content-Length``,
``chunked`` and read-until-close bodies, ``gzip``/``deflate`` content codings, keep-alive per
RFC 9112 §9.3. Header values (API keys) never appear in an error message.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

__all__ = ["MAX_HEAD", "BodyDecoder", "FramingError", "ResponseHead", "encode_request",
           "parse_head"]

MAX_HEAD = 65536  # bytes of status line + headers accepted before giving up
_MAX_LINE = 8192  # a chunk-size or trailer line longer than this is not HTTP
_FORBIDDEN = ("\r", "\n", "\0")
_HEX = b"0123456789abcdefABCDEF"
# chunked-decoder states (a positive count means "inside a chunk, n bytes left")
_SIZE, _CRLF, _TRAILER, _END = 0, -1, -2, -3
_UNTIL_CLOSE = -1  # BodyDecoder length: the body ends when the connection does


class FramingError(ValueError):
    """The server's bytes are not valid HTTP/1.1 framing (the message never holds header
    values)."""


class UnsendableRequest(ValueError):
    """A request that cannot be put on the wire; ``header`` names the bad header, if any."""

    def __init__(self, header: str | None) -> None:
        super().__init__(header or "request target")
        self.header = header


def encode_request(method: str, target: str, host: str, headers: Mapping[str, str],
                   body: bytes | None) -> bytes:
    """The request as bytes: request line, ``Host``, the headers, ``Content-Length``, body.

    Adds ``Accept-Encoding: identity`` unless given (streams must not be buffered by a coder).
    Raises :class:`UnsendableRequest` for a line break, NUL or non-Latin-1 character in the
    target or a header (naming the header, never its value)."""
    if any(c in target for c in (" ", *_FORBIDDEN)):
        raise UnsendableRequest(None)
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    identity = True
    for name, value in headers.items():
        if any(c in name or c in value for c in _FORBIDDEN) or ":" in name:
            raise UnsendableRequest(name)
        if identity and name.lower() == "accept-encoding":
            identity = False
        lines.append(f"{name}: {value}\r\n")
    if identity:
        lines.append("Accept-Encoding: identity\r\n")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body) if body else 0}\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    try:
        head = text.encode("latin-1")
    except UnicodeEncodeError:
        bad = next((name for name, value in headers.items()
                    if not (name + value).isascii() and max(name + value) > "\xff"), None)
        raise UnsendableRequest(bad) from None
    return head + body if body else head


class ResponseHead:
    """A parsed status line and header block; ``headers`` lower-cased, repeats joined by ", "."""

    __slots__ = ("headers", "keep_alive", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str],
                 keep_alive: bool) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        return f"<ResponseHead {self.status} {self.reason}>"

    def body_decoder(self, method: str) -> BodyDecoder:
        """How this response's body is framed (RFC 9112 §6.3), as a decoder."""
        status = self.status
        if method == "HEAD" or status < 200 or status in (204, 304) or (
                method == "CONNECT" and status < 300):
            return BodyDecoder(0)
        headers = self.headers
        coding = headers.get("content-encoding", "identity").strip().lower()
        coder = None if coding in ("identity", "") else _decompressor(coding)
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.rsplit(",", 1)[-1].strip().lower() != "chunked":
                self.keep_alive = False  # only the connection's end delimits it
                return BodyDecoder(_UNTIL_CLOSE, coder)
            return BodyDecoder(None, coder)
        length = headers.get("content-length")
        if length is None:
            self.keep_alive = False
            return BodyDecoder(_UNTIL_CLOSE, coder)
        values = {part.strip() for part in length.split(",")}
        if len(values) != 1 or not (value := values.pop()).isascii() or not value.isdigit():
            raise FramingError("invalid Content-Length")
        return BodyDecoder(int(value), coder)


def parse_head(block: bytes) -> ResponseHead:
    """Parse the bytes before the blank line ending a response head."""
    try:
        text = block.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise FramingError("undecodable response head") from None
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise FramingError("not an HTTP/1.x status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if line[:1] in (" ", "\t"):  # obs-fold, even when the continuation holds a colon
            raise FramingError("folded header lines are not accepted")
        if not colon or not name or name[-1] in " \t":
            raise FramingError("malformed header line")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        keep_alive = "keep-alive" in connection
    else:
        keep_alive = "close" not in connection
    return ResponseHead(int(code), reason, headers, keep_alive)


def _decompressor(coding: str) -> zlib._Decompress:
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return zlib.decompressobj()
    raise FramingError(f"unsupported content coding {coding[:40]!r}")


class BodyDecoder:
    """Turns received body bytes into payload bytes, however they are split.

    ``length``: ``None`` for chunked, ``-1`` until the connection closes, else the byte count.
    After :attr:`done`, :attr:`surplus` says whether bytes followed the body (the connection is
    then not reusable)."""

    __slots__ = ("_coder", "_left", "_raw", "_state", "done", "surplus")

    def __init__(self, length: int | None, coder: zlib._Decompress | None = None) -> None:
        self._coder = coder
        self._raw = b""
        self._state = _SIZE
        self._left = length  # bytes still expected (None: chunked; -1: until close)
        self.done = length == 0
        self.surplus = False

    @property
    def until_close(self) -> bool:
        """Whether only the connection's end can finish this body."""
        return self._left == _UNTIL_CLOSE

    def feed(self, data: bytes) -> bytes:
        """The payload in ``data`` (maybe ``b""``); raises :class:`FramingError`."""
        if self.done:
            if data:
                self.surplus = True
            return b""
        left = self._left
        if left is None:
            out = self._chunked(data)
        elif left == _UNTIL_CLOSE:
            out = data
        elif len(data) < left:
            self._left = left - len(data)
            out = data
        else:
            if len(data) > left:
                self.surplus = True
                data = data[:left]
            self._left = 0
            self.done = True
            out = data
        coder = self._coder
        if coder is not None and out:
            try:
                out = coder.decompress(out)
            except zlib.error:
                raise FramingError("corrupt compressed body") from None
        return out

    def finish(self) -> bytes:
        """The connection ended: the rest of an until-close body; raises if one was cut short."""
        if self._left == _UNTIL_CLOSE:
            self.done = True
            return self._coder.flush() if self._coder is not None else b""
        if not self.done:
            raise FramingError("connection closed before the body ended")
        return b""

    def _chunked(self, data: bytes) -> bytes:
        raw = self._raw + data if self._raw else data
        state = self._state
        pos, end = 0, len(raw)
        out: list[bytes] = []
        while pos < end:
            if state > 0:  # inside a chunk
                stop = pos + state
                stop = min(stop, end)
                out.append(raw[pos:stop])
                state -= stop - pos
                pos = stop
                if not state:
                    state = _CRLF
                continue
            newline = raw.find(b"\n", pos)
            if newline < 0:
                break
            if newline - pos > _MAX_LINE:  # however the line arrived
                raise FramingError("chunk size or trailer line too long")
            line = raw[pos:newline]
            pos = newline + 1
            if state == _SIZE:
                size = line.split(b";", 1)[0].rstrip(b" \t\r")
                if not size or size.strip(_HEX):  # int() would also take 0x, _, +, spaces
                    raise FramingError("invalid chunk size")
                state = int(size, 16)
                if not state:
                    state = _TRAILER
            elif state == _CRLF:
                if line not in (b"", b"\r"):
                    raise FramingError("no CRLF after a chunk")
                state = _SIZE
            elif line in (b"", b"\r"):  # the blank line ending the trailer
                self.done = True
                self.surplus = pos < end
                pos = end
                break
        rest = raw[pos:] if pos < end else b""
        if len(rest) > _MAX_LINE:
            raise FramingError("chunk size or trailer line too long")
        self._raw = rest
        self._state = state
        return out[0] if len(out) == 1 else b"".join(out)
