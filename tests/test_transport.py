"""Both HTTP transports against the real FakeServer: bodies, streaming reads, keep-alive, early
close, drops, stalls, connect failures, secrets in errors, event-loop changes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import socket
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from promptkit._errors import APIConnectionError, ConnectTimeout
from promptkit._fake_server import FakeServer, RecordedRequest, Reply, split_body
from promptkit.providers._base import HTTPRequest
from promptkit.transport._base import ReadTimeout
from promptkit.transport.async_http import AsyncHTTPTransport
from promptkit.transport.sync_http import SyncHTTPTransport, env_proxy

SECRET = "sk-test-SECRET-0123456789"
PIECES = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]


def post(url: str, path: str = "/v1/chat", auth: str = SECRET, **headers: str) -> HTTPRequest:
    return HTTPRequest(
        method="POST",
        url=url + path,
        headers={"Authorization": f"Bearer {auth}", "Content-Type": "application/json", **headers},
        body=b'{"model": "m", "stream": true}',
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_secret(exc: BaseException) -> None:
    """Neither the error nor anything chained to it (even suppressed context) shows the key."""
    assert SECRET not in "".join(traceback.format_exception(exc))
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        assert SECRET not in repr(current) and SECRET not in str(current)
        pending += [current.__cause__, current.__context__]


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listening port whose accept queue is full, so a new connect hangs (never sent off-host)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        probe = socket.socket()
        probe.settimeout(0.1)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            pass
        else:
            pytest.skip("this kernel accepts connections beyond a full backlog")
        finally:
            probe.close()
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def transport() -> Iterator[SyncHTTPTransport]:
    with SyncHTTPTransport() as tr:
        yield tr


@pytest.fixture
async def atransport() -> AsyncIterator[AsyncHTTPTransport]:
    tr = AsyncHTTPTransport()
    yield tr
    await tr.aclose()


# --- FakeServer itself ---------------------------------------------------------------------------


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
    with FakeServer() as srv:
        body = transport.open(post(srv.url), connect_timeout=2, read_timeout=2)
        assert body.status == 500
        assert b"no scripted reply for POST /v1/chat" in body.read_all(2)
        body.close()

    def handler(request: RecordedRequest) -> Reply:
        return Reply.json(201, {"echo": request.json, "path": request.path})

    with FakeServer(handler) as srv:
        body = transport.open(post(srv.url, "/x?y=1"), connect_timeout=2, read_timeout=2)
        assert body.status == 201
        assert body.read_all(2) == b'{"echo": {"model": "m", "stream": true}, "path": "/x?y=1"}'
        body.close()


def test_fake_server_stops_promptly_with_stalled_connections(transport: SyncHTTPTransport) -> None:
    srv = FakeServer([Reply(body=PIECES, stall_after=1)])
    body = transport.open(post(srv.url), connect_timeout=2, read_timeout=2)
    assert body.read(2) == PIECES[0]
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2.0
    assert srv.active_connections == 0
    with pytest.raises(APIConnectionError):
        body.read(2)
    body.close()


# --- sync transport ------------------------------------------------------------------------------


def test_sync_status_headers_body(server: FakeServer, transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply.json(429, {"error": "slow down"}, headers={"X-Request-ID": "req-1",
                                                                   "Retry-After": "2"}))
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    assert body.status == 429
    assert body.headers["x-request-id"] == "req-1"
    assert body.headers["retry-after"] == "2"
    assert body.read_all(2) == b'{"error": "slow down"}'
    body.close()
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat")
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.json == {"model": "m", "stream": True}


def test_sync_reads_each_write_separately(server: FakeServer,
                                          transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, chunk_delay=0.02))
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    assert [body.read(2) for _ in PIECES] == PIECES
    assert body.read(2) == b""
    body.close()


def test_sync_read_all_limit(server: FakeServer, transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=[b"x" * 100] * 5))
    with transport.open(post(server.url), connect_timeout=2, read_timeout=2) as body:
        assert body.read_all(2, limit=250) == b"x" * 250


@pytest.mark.parametrize("chunked", [True, False])
def test_sync_keep_alive_reuses_the_connection(server: FakeServer, transport: SyncHTTPTransport,
                                              chunked: bool) -> None:
    for _ in range(3):
        server.enqueue(Reply(body=PIECES, chunked=chunked))
        body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
        assert body.read_all(2) == b"".join(PIECES)
        body.close()
    assert len(server.requests) == 3
    assert server.connections_opened == 1


def test_sync_close_after_the_last_data_still_reuses(server: FakeServer,
                                                    transport: SyncHTTPTransport) -> None:
    """A driver may stop at the dialect's terminator, before the HTTP body's end."""
    server.enqueue(Reply(body=[b"data: [DONE]\n\n"]), Reply(body=PIECES))
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    assert body.read(2) == b"data: [DONE]\n\n"
    time.sleep(0.05)  # the terminating chunk arrives but is never read
    body.close()
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    assert body.read_all(2) == b"".join(PIECES)
    body.close()
    assert server.connections_opened == 1


def test_sync_early_close_closes_the_socket(server: FakeServer,
                                            transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=[b"data: x\n\n"] * 200, chunk_delay=0.01))
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    assert body.read(2) == b"data: x\n\n"
    body.close()
    body.close()  # idempotent
    assert server.wait_idle(3.0)
    assert transport._idle.get(("http", "127.0.0.1", server.port), []) == []


def test_sync_close_of_a_stalled_stream(server: FakeServer,
                                        transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, stall_after=1, keepalive=b": ping\n\n",
                         keepalive_interval=0.02))
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    assert body.read(2) == PIECES[0]
    assert body.read(2) == b": ping\n\n"
    body.close()
    assert server.wait_idle(3.0)


@pytest.mark.parametrize("chunked", [True, False])
def test_sync_drop_mid_stream(server: FakeServer, transport: SyncHTTPTransport,
                              chunked: bool) -> None:
    server.enqueue(Reply(body=PIECES, drop_after=2, chunked=chunked))
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    received = b""
    with pytest.raises(APIConnectionError, match="connection dropped mid-stream") as info:
        while data := body.read(2):
            received += data
    assert received == PIECES[0] + PIECES[1]
    no_secret(info.value)
    body.close()


def test_sync_stall_raises_read_timeout(server: FakeServer,
                                        transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, stall_after=1))
    body = transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    assert body.read(2) == PIECES[0]
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        body.read(0.2)
    assert 0.15 < time.monotonic() - started < 2.0
    body.close()
    assert server.wait_idle(3.0)


def test_sync_slow_headers_raise_read_timeout(server: FakeServer,
                                              transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, header_delay=1.0))
    with pytest.raises(ReadTimeout):
        transport.open(post(server.url), connect_timeout=2, read_timeout=0.2)
    assert server.wait_idle(3.0)


def test_sync_infinite_timeouts_mean_none(server: FakeServer,
                                          transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES))
    inf = float("inf")
    body = transport.open(post(server.url), connect_timeout=inf, read_timeout=inf)
    received = b""
    for timeout in (inf, 1e12, None, inf):
        received += body.read(timeout)
    assert received == b"".join(PIECES)
    body.close()


def test_sync_closed_port(transport: SyncHTTPTransport) -> None:
    port = free_port()
    with pytest.raises(APIConnectionError, match=re.escape(f"127.0.0.1:{port}")) as info:
        transport.open(post(f"http://127.0.0.1:{port}"), connect_timeout=2, read_timeout=2)
    assert not isinstance(info.value, ConnectTimeout)
    no_secret(info.value)


def test_sync_connect_timeout(transport: SyncHTTPTransport) -> None:
    with full_backlog() as port:
        started = time.monotonic()
        with pytest.raises(ConnectTimeout) as info:
            transport.open(post(f"http://127.0.0.1:{port}"), connect_timeout=0.2,
                           read_timeout=2)
        assert time.monotonic() - started < 2.0
        assert isinstance(info.value, TimeoutError)
        no_secret(info.value)


def test_sync_invalid_header_value_is_not_shown(server: FakeServer,
                                                transport: SyncHTTPTransport) -> None:
    with pytest.raises(APIConnectionError, match="'Authorization'") as info:
        transport.open(post(server.url, auth=SECRET + "\n"), connect_timeout=2, read_timeout=2)
    assert info.value.retryable is False
    no_secret(info.value)


def test_sync_stale_pooled_connection_is_replaced(server: FakeServer,
                                                  transport: SyncHTTPTransport) -> None:
    # the server closes the idle connection after the first reply, without saying so
    server.enqueue(Reply(body=PIECES, close_connection=True), Reply(body=[b"second"]))
    with transport.open(post(server.url), connect_timeout=2, read_timeout=2) as body:
        assert body.read_all(2) == b"".join(PIECES)
    assert server.wait_idle(3.0)
    with transport.open(post(server.url), connect_timeout=2, read_timeout=2) as body:
        assert body.read_all(2) == b"second"
    assert server.connections_opened == 2


def test_sync_request_on_a_dying_connection_is_retried_once(
    server: FakeServer, transport: SyncHTTPTransport
) -> None:
    # the pooled connection looks alive, but the server hangs up on the next request
    server.enqueue(Reply(body=[b"first"]), Reply(hang_up=True), Reply(body=[b"third"]))
    with transport.open(post(server.url), connect_timeout=2, read_timeout=2) as body:
        assert body.read_all(2) == b"first"
    with transport.open(post(server.url), connect_timeout=2, read_timeout=2) as body:
        assert body.read_all(2) == b"third"
    assert len(server.requests) == 3
    assert server.connections_opened == 2


def test_sync_fresh_connection_hang_up_is_an_error(server: FakeServer,
                                                   transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(hang_up=True), Reply(body=[b"unused"]))
    with pytest.raises(APIConnectionError, match=re.escape("127.0.0.1:")) as info:
        transport.open(post(server.url), connect_timeout=2, read_timeout=2)
    no_secret(info.value)
    assert len(server.requests) == 1


def test_sync_transport_close_closes_idle_connections(server: FakeServer) -> None:
    transport = SyncHTTPTransport()
    server.enqueue(Reply(body=PIECES))
    with transport.open(post(server.url), connect_timeout=2, read_timeout=2) as body:
        body.read_all(2)
    assert server.active_connections == 1
    transport.close()
    assert server.wait_idle(3.0)


def test_sync_get_without_body(server: FakeServer, transport: SyncHTTPTransport) -> None:
    server.enqueue(Reply(body=b"ok", chunked=False))
    request = HTTPRequest(method="GET", url=server.url + "/health", headers={})
    with transport.open(request, connect_timeout=2, read_timeout=2) as body:
        assert body.read_all(2) == b"ok"
    assert server.requests[0].method == "GET"
    assert "content-length" not in server.requests[0].headers


def test_sync_transport_is_thread_safe(transport: SyncHTTPTransport) -> None:
    def echo(request: RecordedRequest) -> Reply:
        return Reply(body=[request.path.encode()] * 3, chunk_delay=0.002)

    with FakeServer(echo) as srv:

        def worker(n: int) -> list[bytes]:
            out = []
            for i in range(5):
                path = f"/{n}/{i}"
                with transport.open(post(srv.url, path), connect_timeout=2,
                                    read_timeout=2) as body:
                    out.append(body.read_all(2))
            return out

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(worker, range(8)))
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
    assert env_proxy("https", "skip.example", 443) is None
    assert env_proxy("https", "127.0.0.1", 443) is None  # loopback is never proxied


# --- async transport -----------------------------------------------------------------------------


async def test_async_status_headers_body(server: FakeServer,
                                         atransport: AsyncHTTPTransport) -> None:
    server.enqueue(Reply.json(503, {"error": "busy"}, headers={"X-Request-ID": "req-2"}))
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert body.status == 503
    assert body.headers["x-request-id"] == "req-2"
    assert await body.read_all() == b'{"error": "busy"}'
    body.close()
    [request] = server.requests
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.json == {"model": "m", "stream": True}


async def test_async_reads_each_write_separately(server: FakeServer,
                                                 atransport: AsyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, chunk_delay=0.02))
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert [await body.read() for _ in PIECES] == PIECES
    assert await body.read() == b""
    body.close()


async def test_async_keep_alive_and_close_after_last_data(
    server: FakeServer, atransport: AsyncHTTPTransport
) -> None:
    server.enqueue(Reply(body=PIECES), Reply(body=[b"data: [DONE]\n\n"]), Reply(body=PIECES))
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert await body.read_all() == b"".join(PIECES)
    body.close()
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert await body.read() == b"data: [DONE]\n\n"
    await asyncio.sleep(0.05)  # the terminating chunk arrives but is never read
    body.close()
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert await body.read_all() == b"".join(PIECES)
    body.close()
    assert server.connections_opened == 1


async def test_async_early_close_closes_the_socket(server: FakeServer,
                                                   atransport: AsyncHTTPTransport) -> None:
    server.enqueue(Reply(body=[b"data: x\n\n"] * 200, chunk_delay=0.01))
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert await body.read() == b"data: x\n\n"
    body.close()
    body.close()
    assert await asyncio.to_thread(server.wait_idle, 3.0)


async def test_async_drop_mid_stream(server: FakeServer, atransport: AsyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, drop_after=2))
    body = await atransport.open(post(server.url), connect_timeout=2)
    received = b""
    with pytest.raises(APIConnectionError, match="connection dropped mid-stream") as info:
        while data := await body.read():
            received += data
    assert received == PIECES[0] + PIECES[1]
    no_secret(info.value)
    body.close()


async def test_async_stall_then_cancel_closes(server: FakeServer,
                                              atransport: AsyncHTTPTransport) -> None:
    server.enqueue(Reply(body=PIECES, stall_after=1))
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert await body.read() == PIECES[0]
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await body.read()
    finally:
        body.close()
    assert await asyncio.to_thread(server.wait_idle, 3.0)


async def test_async_closed_port(atransport: AsyncHTTPTransport) -> None:
    port = free_port()
    with pytest.raises(APIConnectionError, match=re.escape(f"127.0.0.1:{port}")) as info:
        await atransport.open(post(f"http://127.0.0.1:{port}"), connect_timeout=2)
    assert not isinstance(info.value, ConnectTimeout)
    no_secret(info.value)


async def test_async_connect_timeout(atransport: AsyncHTTPTransport) -> None:
    with full_backlog() as port:
        started = time.monotonic()
        with pytest.raises(ConnectTimeout) as info:
            await atransport.open(post(f"http://127.0.0.1:{port}"), connect_timeout=0.2)
        assert time.monotonic() - started < 2.0
        no_secret(info.value)


async def test_async_invalid_header_value_is_not_shown(server: FakeServer,
                                                       atransport: AsyncHTTPTransport) -> None:
    server.enqueue(Reply(body=b"unexpected"))
    with pytest.raises(APIConnectionError) as info:
        await atransport.open(post(server.url, auth=SECRET + "\r\nX-Evil: 1"), connect_timeout=2)
    assert info.value.retryable is False
    no_secret(info.value)


async def test_async_request_on_a_dying_connection_is_retried_once(
    server: FakeServer, atransport: AsyncHTTPTransport
) -> None:
    server.enqueue(Reply(body=[b"first"]), Reply(hang_up=True), Reply(body=[b"third"]))
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert await body.read_all() == b"first"
    body.close()
    body = await atransport.open(post(server.url), connect_timeout=2)
    assert await body.read_all() == b"third"
    body.close()
    assert len(server.requests) == 3


def test_async_transport_survives_successive_event_loops(server: FakeServer) -> None:
    transport = AsyncHTTPTransport()

    async def once(text: bytes) -> bytes:
        server.enqueue(Reply(body=[text]))
        body = await transport.open(post(server.url), connect_timeout=2)
        try:
            return await body.read_all()
        finally:
            body.close()

    assert asyncio.run(once(b"first")) == b"first"
    assert server.wait_idle(3.0)  # the loop's shutdown closed its session and connection
    assert asyncio.run(once(b"second")) == b"second"
    assert asyncio.run(once(b"third")) == b"third"
    assert len(transport._sessions) == 1  # sessions of finished loops are forgotten
    gc.collect()  # an unclosed session or connector would warn (an error here) now
    assert server.wait_idle(3.0)


# --- proxies (the FakeServer plays the proxy; nothing leaves 127.0.0.1) --------------------------


@pytest.fixture
def proxied(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    proxy = f"http://user:{SECRET}@127.0.0.1:{server.port}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return server


def test_sync_through_http_proxy(proxied: FakeServer) -> None:
    proxied.enqueue(Reply(body=PIECES))
    with SyncHTTPTransport() as transport, transport.open(
        post("http://api.example.test"), connect_timeout=2, read_timeout=2
    ) as body:
        assert body.read_all(2) == b"".join(PIECES)
    [request] = proxied.requests
    assert request.path == "http://api.example.test/v1/chat"
    assert request.headers["proxy-authorization"].startswith("Basic ")
    assert request.headers["authorization"] == f"Bearer {SECRET}"


async def test_async_through_http_proxy(proxied: FakeServer) -> None:
    proxied.enqueue(Reply(body=PIECES))
    async with AsyncHTTPTransport() as transport:
        body = await transport.open(post("http://api.example.test"), connect_timeout=2)
        assert await body.read_all() == b"".join(PIECES)
        body.close()
    [request] = proxied.requests
    assert request.path == "http://api.example.test/v1/chat"
    assert request.headers["proxy-authorization"].startswith("Basic ")


def test_sync_https_tunnel_refused(proxied: FakeServer) -> None:
    proxied.enqueue(Reply.json(407, {"error": "proxy auth"}))
    with SyncHTTPTransport() as transport, pytest.raises(APIConnectionError, match="407") as info:
        transport.open(post("https://api.example.test"), connect_timeout=2, read_timeout=2)
    assert proxied.requests[0].method == "CONNECT"
    assert proxied.requests[0].path == "api.example.test:443"
    assert proxied.requests[0].headers["proxy-authorization"].startswith("Basic ")
    no_secret(info.value)


async def test_async_https_tunnel_refused(proxied: FakeServer) -> None:
    proxied.enqueue(Reply.json(407, {"error": "proxy auth"}))
    async with AsyncHTTPTransport() as transport:
        with pytest.raises(APIConnectionError, match="407") as info:
            await transport.open(post("https://api.example.test"), connect_timeout=2)
    assert proxied.requests[0].method == "CONNECT"
    assert proxied.requests[0].headers["proxy-authorization"].startswith("Basic ")
    no_secret(info.value)
