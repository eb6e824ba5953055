"""Both HTTP transports against the real FakeServer: bodies, streaming reads, keep-alive, early
close, drops, stalls, connect failures, proxies, secrets in errors, event-loop changes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from promptkit._errors import APIConnectionError, ConnectTimeout
from promptkit.engine.dialect import HTTPRequest
from promptkit.testing.fake_server import FakeServer, RecordedRequest, Reply, split_body
from promptkit.transport._base import ReadTimeout
from promptkit.transport.async_http import AsyncHTTPTransport
from promptkit.transport.sync_http import SyncHTTPTransport, _SyncBody, env_proxy

SECRET = "sk-test-SECRET-0123456789"
PIECES = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]
ALL = b"".join(PIECES)


def post(url: str, path: str = "/v1/chat", auth: str = SECRET) -> HTTPRequest:
    return HTTPRequest(method="POST", url=url + path, body=b'{"model": "m", "stream": true}',
                       headers={"Authorization": f"Bearer {auth}",
                                "Content-Type": "application/json"})


def sopen(transport: SyncHTTPTransport, url: str, read_timeout: float = 2, **kw: Any) -> _SyncBody:
    return transport.open(post(url, **kw), connect_timeout=2, read_timeout=read_timeout)


async def _close_and_yield(body: Any) -> None:
    body.close()
    await asyncio.sleep(0)  # let the loop run the transport's close callbacks


class Client:
    """Drives either transport through one blocking interface, so one test checks both; the
    async one runs on a private event loop (a real one: sessions, cancellation, shutdown)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sync = SyncHTTPTransport()
        self.aio = AsyncHTTPTransport()
        self.runner = asyncio.Runner() if kind == "async" else None
        self.closed = False

    def open(self, url: str, connect_timeout: float = 2, **kw: Any) -> Any:
        if self.runner is None:
            return self.sync.open(post(url, **kw), connect_timeout=connect_timeout,
                                  read_timeout=2)
        return self.runner.run(self.aio.open(post(url, **kw), connect_timeout=connect_timeout))

    def read(self, body: Any, timeout: float = 2) -> bytes:
        if self.runner is None:
            return bytes(body.read(timeout))
        return bytes(self.runner.run(asyncio.wait_for(body.read(), timeout)))

    def read_all(self, body: Any) -> bytes:
        if self.runner is None:
            return bytes(body.read_all(2))
        return bytes(self.runner.run(body.read_all()))

    def pause(self, seconds: float) -> None:
        """Let time pass; the async transport's loop runs meanwhile, as it would in a driver."""
        self.runner.run(asyncio.sleep(seconds)) if self.runner else time.sleep(seconds)

    def release(self, body: Any) -> None:
        """``body.close()``, from inside the loop for the async body (as a driver does)."""
        self.runner.run(_close_and_yield(body)) if self.runner else body.close()

    @contextlib.contextmanager
    def stream(self, url: str, **kw: Any) -> Iterator[Any]:
        body = self.open(url, **kw)
        try:
            yield body
        finally:
            self.release(body)

    def close(self) -> None:
        self.sync.close()
        if self.runner is not None and not self.closed:
            self.runner.run(self.aio.aclose())
            self.runner.close()
        self.closed = True


def no_secret(exc: BaseException) -> None:
    """Neither the error nor anything chained to it (even suppressed context) shows the key."""
    assert SECRET not in "".join(traceback.format_exception(exc))
    pending: list[BaseException | None] = [exc]
    while pending:
        if (current := pending.pop()) is not None:
            assert SECRET not in repr(current) and SECRET not in str(current)
            pending += [current.__cause__, current.__context__]


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listening port whose accept queue is full, so a new connect hangs (never sent off-host)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(4)]
    try:
        for filler in fillers:
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        time.sleep(0.05)
        with socket.socket() as probe:
            probe.settimeout(0.1)
            with contextlib.suppress(TimeoutError):
                probe.connect(("127.0.0.1", port))
                pytest.skip("this kernel accepts connections beyond a full backlog")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextlib.contextmanager
def raw_server(pieces: list[bytes]) -> Iterator[str]:
    """A one-shot server sending ``pieces`` verbatim, one write each (the test does the framing)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                received = b""
                while b"\r\n\r\n" not in received:
                    received += conn.recv(65536)
                for piece in pieces:
                    conn.sendall(piece)
                    time.sleep(0.001)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(2)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def transport() -> Iterator[SyncHTTPTransport]:
    with SyncHTTPTransport() as tr:
        yield tr


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    c = Client(request.param)
    yield c
    c.close()


@pytest.fixture
def proxied(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """The FakeServer as HTTP(S)_PROXY with credentials: nothing leaves 127.0.0.1."""
    proxy = f"http://user:{SECRET}@127.0.0.1:{server.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return server


def test_split_body_keeps_bytes_exact() -> None:
    data = b"event: a\ndata: 1\n\ndata: 2\r\n\r\n: ping\r\rdata: 3\ndata: tail"
    pieces = split_body(data, "events")
    assert b"".join(pieces) == data
    assert pieces == [b"event: a\ndata: 1\n\n", b"data: 2\r\n\r\n", b": ping\r\r",
                      b"data: 3\ndata: tail"]
    assert split_body(data, "whole") == [data]
    assert b"".join(split_body(data, 7)) == data
    assert all(len(p) == 7 for p in split_body(data, 7)[:-1])
    assert split_body(b"a\r\nb\r\n", "events") == [b"a\r\nb\r\n"]  # CRLF is one line break


def test_fake_server_empty_queue_and_handler(transport: SyncHTTPTransport) -> None:
    with FakeServer() as srv, sopen(transport, srv.url) as body:
        assert body.status == 500
        assert b"no scripted reply for POST /v1/chat" in body.read_all(2)

    def handler(request: RecordedRequest) -> Reply:
        return Reply.json(201, {"echo": request.json, "path": request.path})

    with FakeServer(handler) as srv, sopen(transport, srv.url, path="/x?y=1") as body:
        assert body.status == 201
        assert body.read_all(2) == b'{"echo": {"model": "m", "stream": true}, "path": "/x?y=1"}'


def test_fake_server_stops_promptly_with_stalled_connections(transport: SyncHTTPTransport) -> None:
    srv = FakeServer([Reply(body=PIECES, stall_after=1)])
    with sopen(transport, srv.url) as body:
        assert body.read(2) == PIECES[0]
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2.0
        assert srv.active_connections == 0
        with pytest.raises(APIConnectionError):
            body.read(2)


# --- both transports -----------------------------------------------------------------------------


def test_status_headers_body(server: FakeServer, client: Client) -> None:
    server.enqueue(Reply.json(429, {"error": "slow"}, headers={"X-Request-ID": "r1",
                                                              "Retry-After": "2"}))
    with client.stream(server.url) as body:
        assert (body.status, body.headers["x-request-id"], body.headers["retry-after"]) == (
            429, "r1", "2")
        assert client.read_all(body) == b'{"error": "slow"}'
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat")
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.json == {"model": "m", "stream": True}


def test_reads_each_write_separately(server: FakeServer, client: Client) -> None:
    server.enqueue(Reply(body=PIECES, chunk_delay=0.02))
    with client.stream(server.url) as body:
        assert [client.read(body) for _ in PIECES] == PIECES
        assert client.read(body) == b""


@pytest.mark.parametrize("chunked", [True, False])
def test_keep_alive_reuses_the_connection(server: FakeServer, client: Client,
                                          chunked: bool) -> None:
    for _ in range(3):
        server.enqueue(Reply(body=PIECES, chunked=chunked))
        with client.stream(server.url) as body:
            assert client.read_all(body) == ALL
    assert (len(server.requests), server.connections_opened, server.active_connections) == (
        3, 1, 1)
    client.close()  # the transport's close (aclose) closes its idle connections
    assert server.wait_idle(3.0)


def test_close_after_the_last_data_still_reuses(server: FakeServer, client: Client) -> None:
    """A driver may stop at the dialect's terminator, before the HTTP body's end."""
    server.enqueue(Reply(body=[b"data: [DONE]\n\n"]), Reply(body=PIECES))
    with client.stream(server.url) as body:
        assert client.read(body) == b"data: [DONE]\n\n"
        client.pause(0.05)  # the terminating chunk arrives but is never read
    with client.stream(server.url) as body:
        assert client.read_all(body) == ALL
    assert server.connections_opened == 1


def test_early_close_closes_the_socket(server: FakeServer, client: Client) -> None:
    server.enqueue(Reply(body=[b"data: x\n\n"] * 200, chunk_delay=0.01))
    body = client.open(server.url)
    assert client.read(body) == b"data: x\n\n"
    client.release(body)
    client.release(body)  # idempotent
    assert server.wait_idle(3.0)


def test_close_of_a_stalled_stream(server: FakeServer, client: Client) -> None:
    server.enqueue(Reply(body=PIECES, stall_after=1, keepalive=b": ping\n\n",
                         keepalive_interval=0.02))
    with client.stream(server.url) as body:
        assert client.read(body) == PIECES[0]
        assert client.read(body) == b": ping\n\n"
    assert server.wait_idle(3.0)


@pytest.mark.parametrize("chunked", [True, False])
def test_drop_mid_stream(server: FakeServer, client: Client, chunked: bool) -> None:
    server.enqueue(Reply(body=PIECES, drop_after=2, chunked=chunked))
    received = b""
    with client.stream(server.url) as body, pytest.raises(
        APIConnectionError, match="connection dropped mid-stream"
    ) as info:
        while data := client.read(body):
            received += data
    assert received == PIECES[0] + PIECES[1]
    no_secret(info.value)


def test_stall_times_out_and_close_releases(server: FakeServer, client: Client) -> None:
    server.enqueue(Reply(body=PIECES, stall_after=1))
    with client.stream(server.url) as body:
        assert client.read(body) == PIECES[0]
        started = time.monotonic()
        # the sync body enforces its timeout; for the async one the caller does (cancellation)
        with pytest.raises(ReadTimeout if client.kind == "sync" else TimeoutError):
            client.read(body, timeout=0.2)
        assert 0.15 < time.monotonic() - started < 2.0
    assert server.wait_idle(3.0)


def test_closed_port(client: Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(APIConnectionError, match=re.escape(f"127.0.0.1:{port}")) as info:
        client.open(f"http://127.0.0.1:{port}")
    assert not isinstance(info.value, ConnectTimeout)
    no_secret(info.value)


def test_connect_timeout(client: Client) -> None:
    with full_backlog() as port:
        started = time.monotonic()
        with pytest.raises(ConnectTimeout) as info:
            client.open(f"http://127.0.0.1:{port}", connect_timeout=0.2)
        assert time.monotonic() - started < 2.0
        assert isinstance(info.value, TimeoutError)
        no_secret(info.value)


def test_invalid_header_value_is_not_shown(server: FakeServer, client: Client) -> None:
    server.enqueue(Reply(body=b"unexpected"))
    with pytest.raises(APIConnectionError, match="invalid HTTP header") as info:
        client.open(server.url, auth=SECRET + "\r\nX-Evil: 1")
    assert info.value.retryable is False
    assert client.kind == "async" or "'Authorization'" in str(info.value)
    no_secret(info.value)


def test_stale_pooled_connection_is_replaced(server: FakeServer, client: Client) -> None:
    # the server closes the idle connection after the first reply, without saying so
    server.enqueue(Reply(body=PIECES, close_connection=True), Reply(body=[b"second"]))
    with client.stream(server.url) as body:
        assert client.read_all(body) == ALL
    assert server.wait_idle(3.0)
    with client.stream(server.url) as body:
        assert client.read_all(body) == b"second"
    assert server.connections_opened == 2


def test_request_on_a_dying_connection_is_retried_once(server: FakeServer,
                                                       client: Client) -> None:
    # the pooled connection looks alive, but the server hangs up on the next request
    server.enqueue(Reply(body=[b"first"]), Reply(hang_up=True), Reply(body=[b"third"]))
    for expected in (b"first", b"third"):
        with client.stream(server.url) as body:
            assert client.read_all(body) == expected
    assert len(server.requests) == 3
    assert server.connections_opened == 2


def test_through_http_proxy(proxied: FakeServer, client: Client) -> None:
    proxied.enqueue(Reply(body=PIECES))
    with client.stream("http://api.example.test") as body:
        assert client.read_all(body) == ALL
    [request] = proxied.requests
    assert request.path == "http://api.example.test/v1/chat"
    assert request.headers["proxy-authorization"].startswith("Basic ")
    assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_https_tunnel_refused(proxied: FakeServer, client: Client) -> None:
    proxied.enqueue(Reply.json(407, {"error": "proxy auth"}))
    with pytest.raises(APIConnectionError, match="407") as info:
        client.open("https://api.example.test")
    [request] = proxied.requests
    assert (request.method, request.path) == ("CONNECT", "api.example.test:443")
    assert request.headers["proxy-authorization"].startswith("Basic ")
    no_secret(info.value)


# --- sync transport only -------------------------------------------------------------------------


def test_sync_chunked_framing_split_anywhere(transport: SyncHTTPTransport) -> None:
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
             b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    for size in (1, 3, 7, len(reply)):
        with raw_server(split_body(reply, size)) as url, sopen(transport, url) as body:
            assert body.read_all(2) == b"hello world"
    with raw_server([reply.replace(b"6\r\n", b"zz\r\n")]) as url, sopen(
        transport, url
    ) as body, pytest.raises(APIConnectionError):
        body.read_all(2)


def test_sync_open_errors(server: FakeServer, transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, header_delay=1.0), Reply(hang_up=True))
    with pytest.raises(ReadTimeout):
        sopen(transport, server.url, read_timeout=0.2)
    with pytest.raises(APIConnectionError, match=re.escape("127.0.0.1:")) as info:
        sopen(transport, server.url)  # a fresh connection hanging up is not retried
    no_secret(info.value)
    assert len(server.requests) == 2
    assert server.wait_idle(3.0)


def test_sync_infinite_timeouts_mean_none(server: FakeServer,
                                          transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, chunk_delay=0.01))
    inf = float("inf")
    with transport.open(post(server.url), connect_timeout=inf, read_timeout=inf) as body:
        assert b"".join(body.read(timeout) for timeout in (inf, 1e12, None, inf)) == ALL


def test_sync_get_without_body_and_read_all_limit(server: FakeServer,
                                                  transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=[b"x" * 100] * 5, chunked=False))
    request = HTTPRequest(method="GET", url=server.url + "/health", headers={})
    with transport.open(request, connect_timeout=2, read_timeout=2) as body:
        assert body.read_all(2, limit=250) == b"x" * 250
    assert server.requests[0].method == "GET"
    assert "content-length" not in server.requests[0].headers


def test_sync_transport_is_thread_safe(transport: SyncHTTPTransport) -> None:
    def echo(request: RecordedRequest) -> Reply:
        return Reply(body=[request.path.encode()] * 3, chunk_delay=0.002)

    def worker(srv: FakeServer, n: int) -> list[bytes]:
        out = []
        for i in range(5):
            with sopen(transport, srv.url, path=f"/{n}/{i}") as body:
                out.append(body.read_all(2))
        return out

    with FakeServer(echo) as srv, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, [srv] * 8, range(8)))
        assert results == [[f"/{n}/{i}".encode() * 3 for i in range(5)] for n in range(8)]
        assert srv.connections_opened <= 8


def test_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:p%40ss@proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "skip.example")
    proxy = env_proxy("https", "api.example", 443)
    assert proxy is not None
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        "proxy.internal", 3128, "user", "p@ss")
    assert "p@ss" not in repr(proxy)
    assert proxy.url == "http://proxy.internal:3128"
    assert env_proxy("https", "skip.example", 443) is None
    assert env_proxy("https", "127.0.0.1", 443) is None  # loopback is never proxied


# --- async transport only ------------------------------------------------------------------------


async def test_async_in_the_test_loop_with_cancellation(server: FakeServer) -> None:
    server.enqueue(Reply(body=PIECES, stall_after=1))
    async with AsyncHTTPTransport() as transport:
        body = await transport.open(post(server.url), connect_timeout=2)
        assert await body.read() == PIECES[0]
        reader = asyncio.create_task(body.read())
        await asyncio.sleep(0.05)
        reader.cancel()
        try:
            with pytest.raises(asyncio.CancelledError):
                await reader
        finally:
            body.close()  # sync: callable from a finally while being cancelled
        assert await asyncio.to_thread(server.wait_idle, 3.0)


def test_async_transport_survives_successive_event_loops(server: FakeServer) -> None:
    transport = AsyncHTTPTransport()

    async def once(text: bytes) -> bytes:
        server.enqueue(Reply(body=[text]))
        async with await transport.open(post(server.url), connect_timeout=2) as body:
            return await body.read_all()

    assert asyncio.run(once(b"first")) == b"first"
    assert server.wait_idle(3.0)  # the loop's shutdown closed its session and connection
    assert asyncio.run(once(b"second")) == b"second"
    assert asyncio.run(once(b"third")) == b"third"
    assert len(transport._sessions) == 1  # sessions of finished loops are forgotten
    gc.collect()  # an unclosed session or connector would warn (an error here) now
    assert server.wait_idle(3.0)
