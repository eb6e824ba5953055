"""The asyncio transport on real sockets on 127.0.0.1: the pool's limits and waiters, 'localhost',
the DNS cache and racing addresses, and response framing the FakeServer cannot produce (raw
scripted servers). TLS and CONNECT tunnels: test_transport_tls.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from promptkit._errors import APIConnectionError
from promptkit.testing.fake_server import FakeServer, Reply, split_body
from promptkit.transport.async_conn import AsyncBody, Connection
from promptkit.transport.async_http import AsyncHTTPTransport
from test_transport import ALL, PIECES, SECRET, full_backlog, post

PROXY_SECRET = "proxy-PASSWORD-9876"
PROXY_BASIC = base64.b64encode(f"user:{PROXY_SECRET}".encode()).decode()
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
TUNNEL = b"HTTP/1.1 200 Tunnel established\r\n\r\n"

Piece = bytes | float  # a write, or a pause of that many seconds; b"" closes the connection


def hidden(exc: BaseException) -> None:
    """No secret in the error, its traceback, or anything chained to it (even suppressed)."""
    text = "".join(traceback.format_exception(exc))
    pending: list[BaseException | None] = [exc]
    while pending:
        if (error := pending.pop()) is not None:
            text += repr(error) + str(error)
            pending += [error.__cause__, error.__context__]
    assert not any(secret in text for secret in (SECRET, PROXY_SECRET, PROXY_BASIC))


class Script:
    """A raw HTTP server on 127.0.0.1: the n-th connection answers its requests with the n-th
    script's replies in turn (each a list of pieces), then closes. Records request heads."""

    def __init__(self, *connections: list[list[Piece]]) -> None:
        self._scripts = deque(connections)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self.requests: list[bytes] = []
        self._spawn(self._accept)

    def __enter__(self) -> Script:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(2)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._spawn(self._serve, conn, self._scripts.popleft() if self._scripts else [])

    def _serve(self, conn: socket.socket, replies: list[list[Piece]]) -> None:
        with conn, contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
            for reply in replies:
                while b"\r\n\r\n" not in buffer:
                    if not (data := conn.recv(65536)):
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.requests.append(head)
                for piece in reply:
                    if isinstance(piece, float):
                        if self._stop.wait(piece):
                            return
                    elif not piece:
                        return
                    else:
                        conn.sendall(piece)


async def fetch(transport: AsyncHTTPTransport, url: str, path: str = "/v1/chat") -> bytes:
    async with await transport.open(post(url, path), connect_timeout=2) as body:
        return await body.read_all()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


# --- the pool: limits, waiters, eviction --------------------------------------------------------


async def settle() -> None:
    await asyncio.sleep(0.05)  # let the loop run what was started


@pytest.mark.parametrize("complete", [True, False])
async def test_limit_one_second_open_waits_for_the_first_body(server: FakeServer,
                                                              complete: bool) -> None:
    """Closed at its end, the first body's connection is then reused; closed mid-body, it is
    closed and the waiter opens a new one."""
    server.enqueue(Reply(body=PIECES, stall_after=None if complete else 1),
                   Reply(body=[b"second"]))
    async with AsyncHTTPTransport(limit=1) as transport:
        first = await transport.open(post(server.url), connect_timeout=2)
        second = asyncio.create_task(fetch(transport, server.url))
        await settle()
        assert not second.done() and len(server.requests) == 1  # no room: waits, sends nothing
        if complete:
            assert await first.read_all() == ALL
        first.close()
        assert await asyncio.wait_for(second, 2) == b"second"
    assert server.connections_opened == (1 if complete else 2)


async def test_cancelled_waiter_leaves_the_pool_usable(server: FakeServer) -> None:
    server.enqueue(Reply(body=[b"one"]), Reply(body=[b"two"]))
    async with AsyncHTTPTransport(limit=1) as transport:
        first = await transport.open(post(server.url), connect_timeout=2)
        waiter = asyncio.create_task(transport.open(post(server.url), connect_timeout=2))
        await settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await first.read_all() == b"one"
        first.close()
        assert await asyncio.wait_for(fetch(transport, server.url), 2) == b"two"
    assert (len(server.requests), server.connections_opened) == (2, 1)


async def test_woken_waiter_cancelled_passes_the_turn_on(server: FakeServer) -> None:
    server.enqueue(Reply(body=[b"one"]), Reply(body=[b"three"]))
    async with AsyncHTTPTransport(limit=1) as transport:
        first = await transport.open(post(server.url), connect_timeout=2)
        second = asyncio.create_task(fetch(transport, server.url))
        await settle()
        third = asyncio.create_task(fetch(transport, server.url))
        await settle()
        assert await first.read_all() == b"one"
        first.close()  # wakes the second ...
        second.cancel()  # ... which is cancelled before it runs: the third must get the turn
        assert await asyncio.wait_for(third, 2) == b"three"
        assert second.cancelled()
    assert server.connections_opened == 1


async def test_limit_per_host() -> None:
    with FakeServer() as a, FakeServer() as b:
        for srv in (a, b):
            srv.enqueue(Reply(body=PIECES, first_delay=0.2), Reply(body=[b"next"]))
        async with AsyncHTTPTransport(limit_per_host=1) as transport:
            bodies = [await transport.open(post(srv.url), connect_timeout=2) for srv in (a, b)]
            waiting = [asyncio.create_task(fetch(transport, srv.url)) for srv in (a, b)]
            await settle()
            assert not any(task.done() for task in waiting)  # each origin at its limit
            # b's first body ends (its connection goes idle): b's waiter must get it, even
            # though a's waiter queued first and a's connection is still busy
            assert await bodies[1].read_all() == ALL
            bodies[1].close()
            assert await asyncio.wait_for(waiting[1], 2) == b"next"
            assert not waiting[0].done()
            assert await bodies[0].read_all() == ALL
            bodies[0].close()
            assert await asyncio.wait_for(waiting[0], 2) == b"next"
        assert (a.connections_opened, b.connections_opened) == (1, 1)


async def test_idle_connection_to_another_origin_is_evicted_at_the_limit() -> None:
    with FakeServer() as a, FakeServer() as b:
        a.enqueue(Reply(body=[b"from a"]))
        b.enqueue(Reply(body=[b"from b"]))
        async with AsyncHTTPTransport(limit=1) as transport:
            assert await fetch(transport, a.url) == b"from a"
            assert a.active_connections == 1  # idle in the pool
            assert await asyncio.wait_for(fetch(transport, b.url), 2) == b"from b"
            assert await asyncio.to_thread(a.wait_idle, 2.0)  # evicted to make room
            assert b.active_connections == 1


# --- 'localhost' and the DNS cache ------------------------------------------------------------


async def test_localhost_falls_through_an_unreachable_ipv6_address(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server listens on 127.0.0.1 only: a resolver answering ::1 first must not fail the
    request. The answer is reused (no second lookup for a new connection within 10 s)."""
    loop = asyncio.get_running_loop()
    lookups: list[tuple[Any, ...]] = []

    async def getaddrinfo(host: str, port: int, **kw: Any) -> list[Any]:
        lookups.append((host, port))
        assert host == "localhost"
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    server.enqueue(Reply(body=PIECES, stall_after=1), Reply(body=[b"again"]))
    async with AsyncHTTPTransport() as transport:
        body = await transport.open(post(f"http://localhost:{server.port}"), connect_timeout=2)
        assert await body.read() == PIECES[0]
        body.close()  # before its end: the connection closes, the next request needs a new one
        assert await fetch(transport, f"http://localhost:{server.port}") == b"again"
    assert lookups == [("localhost", server.port)]
    assert server.connections_opened == 2
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"


async def test_eviction_never_exceeds_limit_per_host() -> None:
    with FakeServer() as a, FakeServer() as b:
        a.enqueue(Reply(body=PIECES), Reply(body=[b"a again"]))
        b.enqueue(Reply(body=[b"from b"]))
        async with AsyncHTTPTransport(limit=2, limit_per_host=1) as transport:
            assert await fetch(transport, b.url) == b"from b"  # idle in the pool
            busy = await transport.open(post(a.url), connect_timeout=2)
            waiting = asyncio.create_task(fetch(transport, a.url))
            await settle()
            # both limits reached: closing b's idle connection would not make room for a
            assert not waiting.done()
            assert (a.connections_opened, b.active_connections) == (1, 1)
            assert await busy.read_all() == ALL
            busy.close()
            assert await asyncio.wait_for(waiting, 2) == b"a again"
        assert a.connections_opened == 1


# --- response framing on raw sockets ----------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False])
async def test_gzip_reply_is_decoded(server: FakeServer, chunked: bool) -> None:
    data = b"data: compressed\n\n" * 500
    server.enqueue(Reply(headers={"Content-Encoding": "gzip"}, chunked=chunked,
                         body=split_body(gzip.compress(data), 100)), Reply(body=[b"plain"]))
    async with AsyncHTTPTransport() as transport:
        assert await fetch(transport, server.url) == data
        assert await fetch(transport, server.url) == b"plain"
    assert server.connections_opened == 1
    assert server.requests[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("first", [
    [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"part one, ", 0.02, b"part two",
     b""],  # no Content-Length: the body ends with the connection
    [b"HTTP/1.0 200 OK\r\nContent-Length: 18\r\n\r\npart one, part two", 0.5],  # 1.0: no reuse
    [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 18\r\n\r\npart one, part two",
     0.5],
])
async def test_connection_not_reused_after_a_closing_reply(first: list[Piece]) -> None:
    with Script([first, [OK]], [[OK]]) as srv:
        async with AsyncHTTPTransport() as transport:
            async with await transport.open(post(srv.url), connect_timeout=2) as body:
                assert await body.read_all() == b"part one, part two"
                assert body.at_eof()
            assert await fetch(transport, srv.url) == b"ok"
        assert (srv.accepted, len(srv.requests)) == (2, 2)


FINAL = b"HTTP/1.1 201 Created\r\nX-Final: 1\r\nContent-Length: 4\r\n\r\ndone"


@pytest.mark.parametrize("pieces", [
    [b"HTTP/1.1 100 Continue\r\n\r\n", 0.02, FINAL],
    [b"HTTP/1.1 100 Continue\r\n\r\n" + FINAL],
    [b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n", FINAL],
])
async def test_interim_responses_are_skipped(pieces: list[Piece]) -> None:
    with Script([pieces, [OK]]) as srv:
        async with AsyncHTTPTransport() as transport:
            async with await transport.open(post(srv.url), connect_timeout=2) as body:
                assert (body.status, body.headers) == (201, {"x-final": "1",
                                                             "content-length": "4"})
                assert await body.read_all() == b"done"
            assert await fetch(transport, srv.url) == b"ok"
        assert srv.accepted == 1


@pytest.mark.parametrize("first", [[OK + b"JUNK"], [OK, 0.1, b"JUNK"]])
async def test_bytes_after_a_complete_body_prevent_reuse(first: list[Piece]) -> None:
    """Extra bytes with the body, or arriving while the connection is idle in the pool."""
    with Script([first, [OK]], [[OK]]) as srv:
        async with AsyncHTTPTransport() as transport:
            assert await fetch(transport, srv.url) == b"ok"
            await asyncio.sleep(0.3)
            assert await fetch(transport, srv.url) == b"ok"
        assert (srv.accepted, len(srv.requests)) == (2, 2)


@pytest.mark.parametrize("reply", [
    b"HTTP/2 200 OK\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 200 OK\r\nbad\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nok",
])
async def test_invalid_response_head(reply: bytes) -> None:
    with Script([[reply, 0.5]], [[OK]]) as srv:
        async with AsyncHTTPTransport() as transport:
            with pytest.raises(APIConnectionError, match="invalid HTTP response") as info:
                await transport.open(post(srv.url), connect_timeout=2)
        hidden(info.value)
        assert srv.url.removeprefix("http://") in str(info.value)  # says where it came from
        assert srv.accepted == 1  # not retried


BIG = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\nok"
JUST_UNDER = BIG.replace(b"a" * 70000, b"a" * 65000)


@pytest.mark.parametrize("pieces", [[BIG], [BIG[:40000], 0.05, BIG[40000:]], [BIG[:-8], 2.0],
                                    [JUST_UNDER]])
async def test_response_head_over_64_kib(pieces: list[Piece]) -> None:
    """Refused however it arrives, and without waiting for a head that never ends."""
    with Script([pieces]) as srv:
        async with AsyncHTTPTransport() as transport:
            started = time.monotonic()
            if pieces == [JUST_UNDER]:
                async with await transport.open(post(srv.url), connect_timeout=2) as body:
                    assert body.headers["x-big"] == "a" * 65000
                    assert await body.read_all() == b"ok"
                return
            with pytest.raises(APIConnectionError, match="the response head is too large"):
                await transport.open(post(srv.url), connect_timeout=2)
            assert time.monotonic() - started < 1.5


async def test_drop_inside_the_head_is_not_retried_as_stale() -> None:
    """The server started answering: the request was processed, so it must not be resent
    (whereas a pooled connection closing before any byte is retried once)."""
    partial: list[Piece] = [b"HTTP/1.1 200 OK\r\nContent-Le", 0.02, b""]
    with Script([[OK], partial], [[OK]]) as srv:
        async with AsyncHTTPTransport() as transport:
            assert await fetch(transport, srv.url) == b"ok"
            with pytest.raises(APIConnectionError,
                               match="closed in the middle of the response head") as info:
                await transport.open(post(srv.url), connect_timeout=2)
        hidden(info.value)
        assert (srv.accepted, len(srv.requests)) == (1, 2)
    with Script([[OK], [b""]], [[OK]]) as srv:  # nothing sent back: stale, retried once
        async with AsyncHTTPTransport() as transport:
            assert await fetch(transport, srv.url) == b"ok"
            assert await fetch(transport, srv.url) == b"ok"
        assert (srv.accepted, len(srv.requests)) == (2, 3)


async def test_large_body_read_slowly_pauses_and_resumes_the_socket() -> None:
    size = 6 << 20
    payload = bytes(range(256)) * (size // 256)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode()
    writes: list[Piece] = [payload[i:i + 65536] for i in range(0, size, 65536)]
    with Script([[head, *writes], [OK]]) as srv:
        async with AsyncHTTPTransport() as transport:
            body = await transport.open(post(srv.url), connect_timeout=2)
            conn: Connection = body._conn
            assert conn.transport is not None
            for _ in range(200):  # the reader is busy: the socket must stop being read
                if not conn.transport.is_reading():
                    break
                await asyncio.sleep(0.01)
            assert not conn.transport.is_reading()
            buffered = sum(map(len, conn.chunks))
            assert (1 << 20) < buffered <= (1 << 20) + (256 << 10)  # high water + one read
            received = [await body.read()]
            assert conn.transport.is_reading()  # a read resumes it
            while data := await body.read():
                received.append(data)
                await asyncio.sleep(0.001)
            assert b"".join(received) == payload
            body.close()
            assert await fetch(transport, srv.url) == b"ok"
        assert srv.accepted == 1


# --- AsyncBody ----------------------------------------------------------------------------------


async def test_read_after_close_and_at_eof(server: FakeServer) -> None:
    server.enqueue(Reply(body=[b"abc"], chunked=False), Reply(body=PIECES, stall_after=1))
    async with AsyncHTTPTransport() as transport:
        body: AsyncBody = await transport.open(post(server.url), connect_timeout=2)
        await settle()  # the whole body has arrived ...
        assert not body.at_eof()  # ... but is not read yet
        assert await body.read() == b"abc"
        assert body.at_eof()
        assert await body.read() == b""
        assert await body.read_all() == b""
        body.close()
        assert not body.at_eof()
        for read in (body.read, body.read_all):
            with pytest.raises(APIConnectionError, match="response closed"):
                await read()
        body.close()  # idempotent
        assert repr(body) == "<AsyncBody status=200 closed=True>"
        async with await transport.open(post(server.url), connect_timeout=2) as body:
            assert await body.read() == PIECES[0]
            assert not body.at_eof()  # more to come
        with pytest.raises(APIConnectionError, match="response closed"):
            await body.read()
        assert await asyncio.to_thread(server.wait_idle, 2.0)  # closed mid-body: not kept
    assert server.connections_opened == 1


async def test_an_address_that_never_answers_does_not_stall_the_connect(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Happy Eyeballs: the first address hangs (a full accept queue), the second answers; the
    request goes through after the 0.25 s stagger, far inside the connect timeout."""
    loop = asyncio.get_running_loop()
    with full_backlog() as stuck:

        async def getaddrinfo(host: str, port: int, **kw: Any) -> list[Any]:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", stuck)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
        server.enqueue(Reply(body=[b"through"]))
        started = time.monotonic()
        async with AsyncHTTPTransport() as transport:
            assert await fetch(transport, f"http://api.example.test:{server.port}") == b"through"
        assert time.monotonic() - started < 1.5  # not the 2 s connect timeout
    assert server.connections_opened == 1
