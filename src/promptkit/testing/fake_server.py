"""A real HTTP/1.1 server on 127.0.0.1 for tests: scripted replies, recorded requests.

``FakeServer`` runs in background threads and speaks just enough HTTP/1.1 (keep-alive, chunked
replies, Content-Length request bodies) to drive both transports over real sockets. Every body
piece of a :class:`Reply` is one write (one chunk when chunked), optionally paced, dropped
mid-stream or stalled, so streaming, timeouts and early close can be tested end to end::

    with FakeServer([Reply.sse(b"data: hi\\n\\n", split="events")]) as srv:
        ...  # point a client at srv.url
        assert srv.requests[0].json == {...}
"""

from __future__ import annotations

import contextlib
import http
import json as _json
import os
import re
import select
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

__all__ = ["FakeServer", "RecordedRequest", "Reply"]

_MAX_LINE = 65536
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n){2}")  # a blank line ends an SSE event
_STOP_JOIN = 2.0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received: ``headers`` lower-cased, ``json`` the decoded body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: Any = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted reply and how to deliver it.

    ``body`` is one write (bytes) or one write per item (a list). ``first_delay`` waits before
    the first body piece, ``chunk_delay`` before each later one, ``header_delay`` before the
    status line. ``drop_after=n`` closes the socket after n pieces (no terminating chunk);
    ``stall_after=n`` stops after n pieces and holds the connection open (sending
    ``keepalive`` every ``keepalive_interval`` s if given) until the client leaves or the server
    stops. ``chunked=False`` sends a Content-Length instead. ``close_connection`` closes the
    connection after the reply without announcing it (a server's idle timeout firing);
    ``hang_up`` closes it right after reading the request, sending nothing. Framing headers
    (Content-Length, Transfer-Encoding, Connection) are set by the server.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | Sequence[bytes] | None = None
    chunk_delay: float = 0.0
    first_delay: float = 0.0
    header_delay: float = 0.0
    drop_after: int | None = None
    stall_after: int | None = None
    keepalive: bytes | None = None
    keepalive_interval: float = 0.05
    chunked: bool = True
    close_connection: bool = False
    hang_up: bool = False

    @property
    def pieces(self) -> list[bytes]:
        """The body as the list of writes the server makes."""
        if self.body is None:
            return []
        if isinstance(self.body, bytes | bytearray | memoryview):
            return [bytes(self.body)]
        return [bytes(piece) for piece in self.body]

    @classmethod
    def sse(
        cls,
        source: bytes | str | os.PathLike[str],
        split: Literal["events", "whole"] | int = "events",
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Reply:
        """An SSE reply from bytes or a fixture file, one write per event (or per ``split`` bytes).

        The pieces joined are exactly the source bytes.
        """
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        return cls(
            status,
            {"content-type": "text/event-stream", **(headers or {})},
            split_body(data, split),
            **options,
        )

    @classmethod
    def json(
        cls, status: int, obj: Any, *, headers: Mapping[str, str] | None = None, **options: Any
    ) -> Reply:
        """A JSON reply (e.g. a provider's error body) sent with a Content-Length."""
        options.setdefault("chunked", False)
        return cls(
            status,
            {"content-type": "application/json", **(headers or {})},
            _json.dumps(obj).encode(),
            **options,
        )


def split_body(data: bytes, split: Literal["events", "whole"] | int) -> list[bytes]:
    """Cut ``data`` into writes: after each SSE event, every ``split`` bytes, or not at all."""
    if split == "whole":
        return [data] if data else []
    if isinstance(split, int):
        if split <= 0:
            raise ValueError("split size must be positive")
        return [data[i : i + split] for i in range(0, len(data), split)]
    if split != "events":
        raise ValueError(f"split must be 'events', 'whole' or a size, not {split!r}")
    pieces: list[bytes] = []
    start = 0
    for match in _EVENT_END.finditer(data):
        pieces.append(data[start : match.end()])
        start = match.end()
    if start < len(data):
        pieces.append(data[start:])
    return pieces


def _error_reply(message: str) -> Reply:
    return Reply.json(500, {"error": {"type": "fake_server_error", "message": message}})


class _Gone(Exception):
    """The client went away or the server is stopping."""


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False  # FakeServer.stop() joins its handler threads with a time limit
    request_queue_size = 128
    fake: FakeServer


class _Handler(socketserver.BaseRequestHandler):
    """Serves one connection: requests in a keep-alive loop, replies as scripted."""

    server: _TCPServer
    request: socket.socket

    def handle(self) -> None:
        fake = self.server.fake
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fake._connection_started(sock)
        rfile = sock.makefile("rb")
        try:
            while not fake._stopping.is_set():
                received = _read_request(sock, rfile)
                if received is None:
                    break
                request, keep_open = received
                reply = fake._reply_for(request)
                if reply.hang_up or not self._send(fake, sock, reply, keep_open):
                    break
        except (OSError, ValueError, _Gone):
            pass
        finally:
            rfile.close()
            fake._connection_ended(sock)

    def _send(self, fake: FakeServer, sock: socket.socket, reply: Reply, keep_open: bool) -> bool:
        """Deliver ``reply``; whether the connection may serve another request."""
        pieces = reply.pieces
        keep_open = keep_open and not reply.close_connection
        if reply.header_delay:
            fake._wait(sock, reply.header_delay)
        try:
            phrase = http.HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {reply.status} {phrase}", "Server: promptkit-fake"]
        skip = ("content-length", "transfer-encoding", "connection")
        lines += [f"{k}: {v}" for k, v in reply.headers.items() if k.lower() not in skip]
        if reply.chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {sum(len(p) for p in pieces)}")
        if not keep_open and not reply.close_connection:
            lines.append("Connection: close")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for index, piece in enumerate(pieces):
            if reply.drop_after is not None and index >= reply.drop_after:
                return False
            if reply.stall_after is not None and index >= reply.stall_after:
                self._stall(fake, sock, reply)
                return False
            delay = reply.first_delay if index == 0 else reply.chunk_delay
            if delay:
                fake._wait(sock, delay)
            if piece:
                sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece) if reply.chunked else piece)
        if reply.drop_after is not None and reply.drop_after <= len(pieces):
            return False
        if reply.stall_after is not None and reply.stall_after <= len(pieces):
            self._stall(fake, sock, reply)
            return False
        if not pieces and reply.first_delay:
            fake._wait(sock, reply.first_delay)
        if reply.chunked:
            sock.sendall(b"0\r\n\r\n")
        return keep_open

    def _stall(self, fake: FakeServer, sock: socket.socket, reply: Reply) -> None:
        """Hold the connection open, sending keep-alives if asked, until the client leaves."""
        while True:
            fake._wait(sock, reply.keepalive_interval if reply.keepalive else None)
            if reply.keepalive:
                data = reply.keepalive
                sock.sendall(b"%x\r\n%b\r\n" % (len(data), data) if reply.chunked else data)


def _read_request(sock: socket.socket, rfile: BinaryIO) -> tuple[RecordedRequest, bool] | None:
    """Read one request and whether the client allows keep-alive; ``None`` at a clean EOF."""
    line = rfile.readline(_MAX_LINE)
    while line in (b"\r\n", b"\n"):
        line = rfile.readline(_MAX_LINE)
    if not line:
        return None
    method, target, version = line.decode("latin-1").split()
    headers: dict[str, str] = {}
    while True:
        raw = rfile.readline(_MAX_LINE)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if headers.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while size := int(rfile.readline(_MAX_LINE).split(b";")[0], 16):
            parts.append(rfile.read(size))
            rfile.readline(_MAX_LINE)
        while rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
            pass
        body = b"".join(parts)
    else:
        body = rfile.read(int(headers.get("content-length") or 0))
    try:
        decoded = _json.loads(body) if body else None
    except ValueError:
        decoded = None
    keep_open = version != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
    return RecordedRequest(method, target, headers, body, decoded), keep_open


class FakeServer:
    """A real HTTP/1.1 server on 127.0.0.1 replying from a queue of :class:`Reply` or a function.

    ``replies`` is an iterable of replies (served in order; more with :meth:`enqueue`) or a
    function ``(RecordedRequest) -> Reply``. With nothing left to serve it answers 500 with a
    JSON error so tests fail loudly. ``requests`` records every request; ``connections_opened``
    and ``active_connections`` count TCP connections. Use as a context manager or call
    :meth:`stop`; stopping closes stalled connections too.
    """

    def __init__(
        self, replies: Iterable[Reply] | Callable[[RecordedRequest], Reply] | None = None
    ) -> None:
        self.requests: list[RecordedRequest] = []
        self.handler: Callable[[RecordedRequest], Reply] | None = None
        self._queue: deque[Reply] = deque()
        if callable(replies):
            self.handler = replies
        elif replies is not None:
            self._queue.extend(replies)
        self._lock = threading.Condition()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._opened = 0
        self._stopping = threading.Event()
        self._server = _TCPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        address = self._server.socket.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"FakeServer:{self.port}", daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted so far."""
        with self._lock:
            return self._opened

    @property
    def active_connections(self) -> int:
        """TCP connections currently open."""
        with self._lock:
            return len(self._sockets)

    def enqueue(self, *replies: Reply) -> None:
        """Add replies to the end of the queue."""
        with self._lock:
            self._queue.extend(replies)

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no connection is open; whether that happened within ``timeout``."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._sockets, timeout)

    def stop(self) -> None:
        """Stop serving and close every connection, stalled ones included. Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _STOP_JOIN
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server.server_close()
        self._thread.join(_STOP_JOIN)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeServer({self.url!r}, requests={len(self.requests)})"

    # -- used by the handler threads -----------------------------------------------------------

    def _connection_started(self, sock: socket.socket) -> None:
        with self._lock:
            self._opened += 1
            self._sockets.add(sock)
            self._threads.add(threading.current_thread())

    def _connection_ended(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
            self._threads.discard(threading.current_thread())
            self._lock.notify_all()

    def _reply_for(self, request: RecordedRequest) -> Reply:
        """Record ``request`` and pick its reply: the queue first, then the handler."""
        with self._lock:
            self.requests.append(request)
            reply = self._queue.popleft() if self._queue else None
            handler = self.handler
        if reply is None and handler is not None:
            try:
                reply = handler(request)
            except Exception as exc:
                reply = _error_reply(f"FakeServer handler raised {type(exc).__name__}: {exc}")
        if reply is None:
            reply = _error_reply(
                f"FakeServer: no scripted reply for {request.method} {request.path}"
            )
        return reply

    def _wait(self, sock: socket.socket, seconds: float | None) -> None:
        """Sleep ``seconds`` (``None``: forever); raise :class:`_Gone` if the client leaves."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            readable = select.select([sock], [], [], remaining)[0]
            if readable:
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        raise _Gone
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    raise _Gone from None
                # bytes of a pipelined request: keep them, just sleep without watching
                time.sleep(min(remaining if remaining is not None else 0.01, 0.01))
        raise _Gone
