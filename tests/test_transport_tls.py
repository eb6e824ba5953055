"""The asyncio transport over TLS, on real sockets on 127.0.0.1: a throwaway CA from trustme, a
trusting and the default context, and https through a CONNECT proxy (credentials on the CONNECT
only, never in an error)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trustme

from promptkit._errors import APIConnectionError, ConnectTimeout
from promptkit.testing.fake_server import FakeServer, Reply
from promptkit.transport.async_http import AsyncHTTPTransport
from test_transport import ALL, PIECES, SECRET, post
from test_transport_async import PROXY_BASIC, PROXY_SECRET, TUNNEL, fetch, hidden


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


# --- TLS and CONNECT tunnels ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test CA (and verifies as the default one does)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class Relay:
    """asyncio servers in the test's loop: a TLS front relaying to a FakeServer, and a CONNECT
    proxy tunnelling to it. ``connects`` records the proxy's request heads."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.connects: list[bytes] = []

    async def tls_front(self, ca: trustme.CA, upstream: int) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("api.example.test", "localhost", "127.0.0.1").configure_cert(context)

        return await self._serve(lambda r, w: self._relay(r, w, upstream), context)

    async def proxy(self, upstream: int, answer: bytes = TUNNEL) -> int:
        """A CONNECT proxy sending ``answer``; a 2xx then tunnels to 127.0.0.1:``upstream``."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError):
                self.connects.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(answer)
                if answer.startswith(b"HTTP/1.1 2"):
                    await self._relay(reader, writer, upstream)
            writer.close()

        return await self._serve(handle, None)

    async def _serve(self, handle: Any, context: ssl.SSLContext | None) -> int:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.tasks.add(task := asyncio.current_task())  # type: ignore[arg-type]
            self.writers.add(writer)
            try:
                await handle(reader, writer)
            except OSError:
                writer.close()
            finally:
                self.tasks.discard(task)

        server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=context)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: int) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        self.writers.add(up_writer)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def aclose(self) -> None:
        for server in self.servers:
            server.close()
        for writer in self.writers:
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    yield r
    await r.aclose()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point HTTP(S)_PROXY at a local proxy port, with credentials."""

    def use(port: int) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, f"http://user:{PROXY_SECRET}@127.0.0.1:{port}")
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)

    return use


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_tls_with_a_trusting_context(server: FakeServer, relay: Relay, ca: trustme.CA,
                                           trusting: ssl.SSLContext, host: str) -> None:
    port = await relay.tls_front(ca, server.port)
    server.enqueue(Reply(body=PIECES), Reply(body=[b"again"], chunked=False))
    async with AsyncHTTPTransport(ssl_context=trusting) as transport:
        assert await fetch(transport, f"https://{host}:{port}") == ALL
        assert await fetch(transport, f"https://{host}:{port}") == b"again"
    assert server.connections_opened == 1  # the TLS connection was kept alive and reused
    assert [r.headers["host"] for r in server.requests] == [f"{host}:{port}"] * 2
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_tls_default_context_refuses_an_unknown_ca(server: FakeServer, relay: Relay,
                                                        ca: trustme.CA) -> None:
    port = await relay.tls_front(ca, server.port)
    async with AsyncHTTPTransport() as transport:
        with pytest.raises(APIConnectionError, match="certificate verify failed") as info:
            await transport.open(post(f"https://127.0.0.1:{port}"), connect_timeout=2)
    assert not isinstance(info.value, ConnectTimeout)
    assert f"127.0.0.1:{port}" in str(info.value)
    hidden(info.value)
    assert server.requests == []


async def test_https_through_a_connect_proxy(server: FakeServer, relay: Relay, ca: trustme.CA,
                                             trusting: ssl.SSLContext, proxy_env: Any) -> None:
    proxy_port = await relay.proxy(await relay.tls_front(ca, server.port))
    proxy_env(proxy_port)
    server.enqueue(Reply(body=PIECES), Reply(body=[b"again"]))
    async with AsyncHTTPTransport(ssl_context=trusting) as transport:
        assert await fetch(transport, "https://api.example.test") == ALL
        assert await fetch(transport, "https://api.example.test", "/v2") == b"again"
    assert relay.connects == [  # one tunnel, reused; the proxy's credentials only here
        b"CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n"
        b"Proxy-Authorization: Basic " + PROXY_BASIC.encode() + b"\r\n\r\n"]
    assert [r.path for r in server.requests] == ["/v1/chat", "/v2"]
    for request in server.requests:
        assert request.headers["host"] == "api.example.test"
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        assert "proxy-authorization" not in request.headers
        assert PROXY_SECRET.encode() not in request.body


@pytest.mark.parametrize(("answer", "trust", "message"), [
    (b"", True, "(via proxy 127.0.0.1:{port}): the server closed the connection"),
    (b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n", True,
     "(via proxy 127.0.0.1:{port}): 407 Proxy Authentication Required"),
    (b"garbage\r\n\r\n", True, "invalid HTTP response"),
    (TUNNEL, False, "api.example.test:443 (via proxy 127.0.0.1:{port}): [SSL: CERTIFICATE_VERIFY"),
])
async def test_https_proxy_failures_hide_the_credentials(
        server: FakeServer, relay: Relay, ca: trustme.CA, trusting: ssl.SSLContext,
        proxy_env: Any, answer: bytes, trust: bool, message: str) -> None:
    proxy_port = await relay.proxy(await relay.tls_front(ca, server.port), answer)
    proxy_env(proxy_port)
    async with AsyncHTTPTransport(ssl_context=trusting if trust else None) as transport:
        with pytest.raises(APIConnectionError) as info:
            await transport.open(post("https://api.example.test"), connect_timeout=2)
    assert message.format(port=proxy_port) in str(info.value)
    hidden(info.value)
    assert len(relay.connects) == 1
    assert server.requests == []
