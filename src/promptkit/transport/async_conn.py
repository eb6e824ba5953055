"""One HTTP/1.1 connection as an ``asyncio.Protocol``, and the response body read from it.

The protocol parses what arrives as it arrives (:mod:`promptkit.transport.http11`), so a read
costs one wake-up and hands out every payload byte received since the last one. A connection
carries one exchange at a time; after a complete body it goes back to its pool. A body closed
before its end closes its connection, so the server stops generating.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol

from promptkit._errors import APIConnectionError
from promptkit.transport.http11 import (
    MAX_HEAD,
    BodyDecoder,
    FramingError,
    ResponseHead,
    parse_head,
)

__all__ = ["AsyncBody", "Connection", "Owner", "StaleConnection"]

_IDLE, _HEAD, _BODY, _CLOSED = range(4)
_HIGH_WATER = 1 << 20  # payload bytes buffered unread before the socket stops being read
_DROPPED = "connection dropped mid-stream"


class Owner(Protocol):
    """What a connection needs of its pool."""

    loop: asyncio.AbstractEventLoop

    def release(self, conn: Connection) -> None:
        """``conn`` finished an exchange cleanly and may carry another."""

    def discard(self, conn: Connection) -> None:
        """``conn`` closed (called once or more)."""


class StaleConnection(Exception):
    """The connection ended before any byte of the response: nothing was processed."""


class Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection owned by a pool (one exchange at a time)."""

    __slots__ = (
        "_buffer",
        "_decoder",
        "_head_waiter",
        "_method",
        "_paused",
        "_pool",
        "_state",
        "_unread",
        "_waiter",
        "chunks",
        "failure",
        "idle_since",
        "keep_alive",
        "key",
        "lost",
        "transport",
    )

    def __init__(self, pool: Owner, key: tuple[str, str, int]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._state = _IDLE
        self._method = "GET"
        self._buffer = b""  # the response head received so far
        self._head_waiter: asyncio.Future[ResponseHead] | None = None
        self._decoder: BodyDecoder | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._unread = 0  # payload bytes in chunks
        self.chunks: list[bytes] = []
        self.failure: str | None = None
        self.keep_alive = True
        self.lost = False
        self.idle_since = 0.0

    def __repr__(self) -> str:
        return f"<Connection {self.key[1]}:{self.key[2]} state={self._state}>"

    # -- the pool's side ---------------------------------------------------------------------

    def usable(self, max_idle: float) -> bool:
        """Whether this idle connection may carry another request."""
        transport = self.transport
        return (not self.lost and transport is not None and not transport.is_closing()
                and time.monotonic() - self.idle_since < max_idle)

    def close(self) -> None:
        """Close the socket (idempotent); the pool stops counting this connection now."""
        if self._state != _CLOSED:
            self._state = _CLOSED
            if self.transport is not None:
                self.transport.close()
            self._pool.discard(self)

    def send(self, data: bytes, method: str) -> asyncio.Future[ResponseHead]:
        """Write a request; the future resolves to the response head (raises
        :class:`StaleConnection` if the connection ends before any response byte)."""
        transport = self.transport
        assert transport is not None
        future = self._pool.loop.create_future()
        if self.lost or transport.is_closing():
            future.set_exception(StaleConnection("connection closed"))
            return future
        self._state = _HEAD
        self._method = method
        self._buffer = b""
        self._decoder = None
        self.chunks = []
        self._unread = 0
        self.failure = None
        self._head_waiter = future
        transport.write(data)
        return future

    def tunnelled(self) -> None:
        """A ``CONNECT`` succeeded: what follows belongs to the TLS layer started on top."""
        self._state = _IDLE
        self._decoder = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state == _BODY:
            decoder = self._decoder
            assert decoder is not None
            try:
                payload = decoder.feed(data)
            except FramingError as exc:
                self._fail(f"invalid response framing: {exc}")
                return
            if payload:
                self.chunks.append(payload)
                self._unread += len(payload)
                if self._unread > _HIGH_WATER and not self._paused:
                    self._paused = True
                    if self.transport is not None:
                        self.transport.pause_reading()
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif state == _HEAD:
            self._head_data(data)
        elif state == _IDLE and data:
            self.close()  # bytes nobody asked for: not a connection to reuse

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        state = self._state
        if state == _HEAD:
            waiter = self._head_waiter
            self._head_waiter = None
            if waiter is not None and not waiter.done():
                if self._buffer:
                    waiter.set_exception(APIConnectionError(
                        "the connection closed in the middle of the response head"))
                else:
                    waiter.set_exception(StaleConnection(_reason(exc)))
        elif state == _BODY:
            decoder = self._decoder
            assert decoder is not None
            try:
                if rest := decoder.finish():
                    self.chunks.append(rest)
            except FramingError:
                self.failure = _DROPPED
            reader = self._waiter
            if reader is not None and not reader.done():
                reader.set_result(None)
        self._state = _CLOSED
        self._pool.discard(self)

    # -- internals ---------------------------------------------------------------------------

    def _head_data(self, data: bytes) -> None:
        old = len(self._buffer)
        buffer = self._buffer + data if old else data
        while True:
            end = buffer.find(b"\r\n\r\n", old - 3 if old > 3 else 0)  # not again from 0
            old = 0
            if end < 0 and len(buffer) <= MAX_HEAD:
                self._buffer = buffer
                return
            if end < 0 or end > MAX_HEAD:  # also when all of it came in one read
                self._head_failed(APIConnectionError("the response head is too large"))
                return
            try:
                head = parse_head(buffer[:end])
                rest = buffer[end + 4:]
                if 100 <= head.status < 200 and head.status != 101:
                    buffer = rest  # an interim response (100 Continue): the real one follows
                    continue
                decoder = head.body_decoder(self._method)
            except FramingError as exc:
                self._head_failed(APIConnectionError(f"invalid HTTP response: {exc}"))
                return
            break
        self._buffer = b""
        self._decoder = decoder
        self.keep_alive = head.keep_alive
        self._state = _BODY
        if rest:
            try:
                payload = decoder.feed(rest)
            except FramingError as exc:
                self.failure = f"invalid response framing: {exc}"
            else:
                if payload:
                    self.chunks.append(payload)
                    self._unread += len(payload)
        waiter = self._head_waiter
        self._head_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(head)

    def _head_failed(self, error: APIConnectionError) -> None:
        waiter = self._head_waiter
        self._head_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def _fail(self, reason: str) -> None:
        self.failure = reason
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.close()

    def take(self) -> bytes:
        """Every payload byte received and not read yet."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._unread = 0
        if self._paused:
            self._paused = False
            if self.transport is not None and not self.lost:
                self.transport.resume_reading()
        return data

    def body_done(self) -> bool:
        decoder = self._decoder
        return decoder is not None and decoder.done

    async def wait(self) -> None:
        """Until more payload, the body's end or a failure."""
        waiter = self._pool.loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def finish(self) -> None:
        """The exchange's body is closed: back to the pool after a complete body, else close
        (the server then stops generating)."""
        decoder = self._decoder
        if (self._state == _BODY and decoder is not None and decoder.done and self.keep_alive
                and not decoder.surplus and self.failure is None and not self.lost):
            self._state = _IDLE
            self.chunks = []
            self._unread = 0
            self._pool.release(self)
        else:
            self.close()


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "the server closed the connection"
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


class AsyncBody:
    """An open response (an :class:`~promptkit.transport._base.AsyncBody`) owning its
    connection until :meth:`close`."""

    __slots__ = ("_closed", "_conn", "headers", "status")

    status: int
    headers: Mapping[str, str]

    def __init__(self, conn: Connection, head: ResponseHead) -> None:
        self.status = head.status
        self.headers = head.headers
        self._conn = conn
        self._closed = False

    def __repr__(self) -> str:
        return f"<AsyncBody status={self.status} closed={self._closed}>"

    async def read(self) -> bytes:
        """Return the payload bytes received since the last read; ``b""`` at the body's end."""
        if self._closed:
            raise APIConnectionError("response closed")
        conn = self._conn
        while True:
            if conn.chunks:
                return conn.take()
            if conn.failure is not None:
                raise APIConnectionError(conn.failure)
            if conn.body_done():
                return b""
            if conn.lost:
                raise APIConnectionError(_DROPPED)
            await conn.wait()

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        """Read the rest of the body, up to ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            data = await self.read()
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)[:limit]

    def at_eof(self) -> bool:
        """Whether the whole body has arrived and been read."""
        conn = self._conn
        return not self._closed and conn.body_done() and not conn.chunks

    def close(self) -> None:
        """Reuse the connection if the body ended (or its end is in flight), else close it.
        Sync, idempotent."""
        if not self._closed:
            self._closed = True
            self._conn.finish()

    async def __aenter__(self) -> AsyncBody:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
