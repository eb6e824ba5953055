"""The asyncio transport: HTTP/1.1 on the event loop's own sockets, with a keep-alive pool.

No HTTP client library: each connection is an ``asyncio.Protocol``
(:mod:`promptkit.transport.async_conn`) parsing with the sans-I/O framing of
:mod:`promptkit.transport.http11`, which leaves a streamed chunk one wake-up and a few slices
between the socket and the SSE decoder. One pool per event loop, created on first use, so a
transport keeps working across several ``asyncio.run`` calls; each pool is closed when its loop
shuts down (through an async generator the loop finalizes) or by
:meth:`AsyncHTTPTransport.aclose`. TLS through :mod:`ssl` (the default context verifies
certificates), ``http://`` proxies from the environment as the sync transport reads them (a
``CONNECT`` tunnel for https), host names resolved once per 10 s and their addresses raced
(Happy Eyeballs: the next one 0.25 s after the last, families alternating). Request headers
carry API keys: they never appear in a message or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import time
from collections import deque
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from promptkit._errors import APIConnectionError, ConnectTimeout
from promptkit.transport.async_conn import AsyncBody, Connection, StaleConnection
from promptkit.transport.http11 import UnsendableRequest, encode_request
from promptkit.transport.sync_http import _finite, _hostport, _Route, _unsendable, route_for

if TYPE_CHECKING:
    import ssl

    from promptkit.engine.dialect import HTTPRequest

__all__ = ["AsyncHTTPTransport"]

_MAX_IDLE = 60.0  # seconds an idle pooled connection may wait before it is discarded
_DNS_TTL = 10.0  # seconds a host name's addresses are reused
_STAGGER = 0.25  # seconds before the next address is tried while one still connects
_Key = tuple[str, str, int]
_Address = tuple[int, tuple[str, int]]  # (family, (host, port))


async def _close_at_shutdown(pool: _Pool) -> AsyncGenerator[None, None]:
    """Parked at its ``yield`` while the pool lives; the loop's shutdown finalizes it."""
    try:
        yield
    finally:
        pool.close()


class _Target:
    """What a request URL resolves to: its route, the request target and the Host header."""

    __slots__ = ("host", "route", "target")

    def __init__(self, route: _Route, target: str, host: str) -> None:
        self.route = route
        self.target = target
        self.host = host


class AsyncHTTPTransport:
    """An :class:`~promptkit.transport._base.AsyncTransport` on asyncio's own sockets.

    ``limit`` caps the open connections per event loop (0: no cap), ``limit_per_host`` per
    origin (0: no cap); a request beyond them waits for a free connection. With ``trust_env``
    the HTTP(S)_PROXY/NO_PROXY variables are honoured exactly as by the sync transport
    (loopback is never proxied).
    """

    def __init__(
        self,
        limit: int = 1000,
        limit_per_host: int = 0,
        trust_env: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = max(0, limit)
        self._limit_per_host = max(0, limit_per_host)
        self._trust_env = trust_env
        self._ssl_context = ssl_context
        self._sessions: dict[asyncio.AbstractEventLoop, tuple[_Pool, AsyncGenerator[None, None]]]
        self._sessions = {}
        self._targets: dict[str, _Target] = {}  # by request URL

    def __repr__(self) -> str:
        return f"AsyncHTTPTransport(limit={self._limit}, limit_per_host={self._limit_per_host})"

    async def open(self, request: HTTPRequest, *, connect_timeout: float | None) -> AsyncBody:
        """Send ``request``; return once the status line and headers arrived."""
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        pool = entry[0] if entry is not None and not entry[0].closed else await self._pool(loop)
        target = self._targets.get(request.url) or self._target(request.url)
        route = target.route
        headers = request.headers
        if route.forward:  # plain http through a proxy that wants credentials
            headers = {**headers, **route.forward}
        try:
            data = encode_request(request.method, target.target, target.host, headers,
                                  request.body or None)
        except UnsendableRequest as exc:
            bad_url = exc.header is None
        else:
            return await self._exchange(pool, route, data, request.method, connect_timeout)
        raise _unsendable(headers if not bad_url else {}, bad_url)

    async def aclose(self) -> None:
        """Close the pool of the running loop (and ask other live loops to close theirs)."""
        loop = asyncio.get_running_loop()
        sessions, self._sessions = self._sessions, {}
        for owner, (_, guard) in sessions.items():
            if owner is loop:
                await guard.aclose()
            elif owner.is_running() and not owner.is_closed():
                asyncio.run_coroutine_threadsafe(_finish(guard), owner)

    async def __aenter__(self) -> AsyncHTTPTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals -----------------------------------------------------------------------------

    async def _exchange(self, pool: _Pool, route: _Route, data: bytes, method: str,
                        connect_timeout: float | None) -> AsyncBody:
        retried = False
        while True:
            conn, reused = await pool.acquire(route, connect_timeout)
            try:
                head = await conn.send(data, method)
            except StaleConnection as exc:
                conn.close()
                if reused and not retried:
                    retried = True  # most likely a pooled connection the server had closed
                    continue
                raise APIConnectionError(f"connection to {route.label} failed: {exc}") from None
            except APIConnectionError as exc:  # a bad or cut head: name where it came from
                conn.close()
                raise APIConnectionError(f"{exc} (from {route.label})") from None
            except BaseException:  # a cancellation (the driver's timeouts)
                conn.close()
                raise
            return AsyncBody(conn, head)

    async def _pool(self, loop: asyncio.AbstractEventLoop) -> _Pool:
        """The running loop's pool, created (and the stale ones forgotten) on first use."""
        for owner in [owner for owner in self._sessions if owner.is_closed()]:
            del self._sessions[owner]
        pool = _Pool(loop, self._limit, self._limit_per_host, self._ssl_context)
        guard = _close_at_shutdown(pool)
        self._sessions[loop] = (pool, guard)
        await guard.__anext__()  # the loop now finalizes it (closing the pool) at shutdown
        return pool

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        route = route_for(parts.scheme, parts.netloc, self._trust_env)
        scheme, host, port = route.key
        path = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
        default = port == (443 if scheme == "https" else 80)
        host_header = (f"[{host}]" if ":" in host else host) if default \
            else _hostport(host, port)
        if route.forward is not None:  # plain http through a proxy: an absolute target
            path = f"http://{host_header}{path}"
        target = _Target(route, path, host_header)
        if len(self._targets) >= 256:  # e.g. many distinct URLs: keep it bounded
            self._targets.clear()
        self._targets[url] = target
        return target


async def _finish(guard: AsyncGenerator[None, None]) -> None:
    await guard.aclose()


class _Pool:
    """One event loop's connections: idle ones per origin (newest first), the open counts
    against the limits, and the requests waiting for a free connection."""

    __slots__ = ("_idle", "_limit", "_limit_per_host", "_members", "_per_host", "_resolved",
                 "_ssl_context", "_waiters", "closed", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, limit_per_host: int,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.loop = loop
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._ssl_context = ssl_context
        self._idle: dict[_Key, dict[Connection, None]] = {}
        self._members: set[Connection] = set()
        self._per_host: dict[_Key, int] = {}
        self._waiters: deque[tuple[_Key, asyncio.Future[None]]] = deque()
        self._resolved: dict[tuple[str, int], tuple[float, list[_Address]]] = {}
        self.closed = False

    async def acquire(self, route: _Route, timeout: float | None) -> tuple[Connection, bool]:
        """An idle connection to ``route``'s origin (reused: ``True``) or a new one."""
        key = route.key
        while True:
            idle = self._idle.get(key)
            while idle:
                conn = idle.popitem()[0]
                if conn.usable(_MAX_IDLE):
                    return conn, True
                conn.close()
            if self.closed:
                raise APIConnectionError("the transport is closed")
            if self._has_room(key) or self._evict_one(key):
                break
            waiter = self.loop.create_future()
            self._waiters.append((key, waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the wake-up on to the next in line
                raise
        conn = Connection(self, key)
        self._members.add(conn)
        self._per_host[key] = self._per_host.get(key, 0) + 1
        try:
            await self._connect(conn, route, timeout)
        except BaseException:
            conn.close()
            raise
        return conn, False

    def release(self, conn: Connection) -> None:
        """``conn`` finished an exchange and may be reused."""
        if self.closed or conn not in self._members:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, {})[conn] = None
        self._wake()

    def discard(self, conn: Connection) -> None:
        """``conn`` closed: it no longer counts (idempotent)."""
        if conn in self._members:
            self._members.discard(conn)
            key = conn.key
            self._per_host[key] -= 1
            idle = self._idle.get(key)
            if idle:
                idle.pop(conn, None)
            self._wake()

    def close(self) -> None:
        """Close every idle connection; open bodies close theirs when they finish."""
        self.closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in list(conns):
                conn.close()
        while self._waiters:
            waiter = self._waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(None)

    # -- internals ---------------------------------------------------------------------------

    def _has_room(self, key: _Key) -> bool:
        return (not self._limit or len(self._members) < self._limit) and (
            not self._limit_per_host or self._per_host.get(key, 0) < self._limit_per_host)

    def _victim(self, key: _Key) -> Connection | None:
        """An idle connection to another origin whose closing makes room for ``key`` (only
        the overall limit can be lifted so, never ``key``'s own)."""
        if self._limit and len(self._members) >= self._limit and (
                not self._limit_per_host or self._per_host.get(key, 0) < self._limit_per_host):
            for conns in self._idle.values():
                if conns:
                    return next(iter(conns))
        return None

    def _evict_one(self, key: _Key) -> bool:
        """Close an idle connection to another origin to make room; whether there was one."""
        victim = self._victim(key)
        if victim is None:
            return False
        victim.close()
        return True

    def _wake(self) -> None:
        """Wake the first waiter that can now proceed: a waiter for an origin still at its
        limit must not take the turn of one whose origin has an idle connection or room."""
        waiters = self._waiters
        for index, (key, waiter) in enumerate(waiters):
            if not waiter.done() and (self._idle.get(key) or self._has_room(key)
                                      or self._victim(key) is not None):
                del waiters[index]
                waiter.set_result(None)
                return
        while waiters and waiters[0][1].done():  # cancelled ones at the front
            waiters.popleft()

    async def _connect(self, conn: Connection, route: _Route, timeout: float | None) -> None:
        scheme, host, port = route.key
        proxy = route.proxy
        peer = (host, port) if proxy is None else (proxy.host, proxy.port)
        tls = scheme == "https"
        limit = _finite(timeout)
        try:
            async with asyncio.timeout(limit):
                addresses = await self._resolve(*peer)
                await self._open_socket(conn, addresses, peer[0] if tls and proxy is None
                                        else None)
                if tls and proxy is not None:
                    await self._tunnel(conn, route)
        except TimeoutError:
            raise ConnectTimeout(
                f"connecting to {route.label} timed out after {timeout} s") from None
        except APIConnectionError:
            raise
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise APIConnectionError(
                f"cannot connect to {route.label}: {_reason(exc)}") from exc

    async def _open_socket(self, conn: Connection, addresses: list[_Address],
                           server_hostname: str | None) -> None:
        context = self._ssl() if server_hostname is not None else None
        if len(addresses) == 1:  # an IP address, or a name with one: no race to run
            family, (ip, port) = addresses[0]
            await self.loop.create_connection(lambda: conn, ip, port, family=family,
                                              ssl=context, server_hostname=server_hostname)
            return
        sock = await _first_to_connect(self.loop, _interleaved(addresses))
        await self.loop.create_connection(lambda: conn, sock=sock, ssl=context,
                                          server_hostname=server_hostname)

    async def _tunnel(self, conn: Connection, route: _Route) -> None:
        """CONNECT through the proxy, then TLS to the origin inside the tunnel."""
        _, host, port = route.key
        assert route.proxy is not None
        authority = _hostport(host, port)
        lines = [f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"]
        if (auth := route.proxy.auth_header()) is not None:
            lines.append(f"Proxy-Authorization: {auth}\r\n")
        lines.append("\r\n")
        try:
            head = await conn.send("".join(lines).encode("latin-1"), "CONNECT")
        except StaleConnection as exc:
            raise APIConnectionError(f"cannot connect to {route.label}: {exc}") from None
        except APIConnectionError as exc:  # the proxy's reply was not HTTP
            raise APIConnectionError(f"cannot connect to {route.label}: {exc}") from None
        if not 200 <= head.status < 300:
            raise APIConnectionError(
                f"cannot connect to {route.label}: {head.status} {head.reason[:80]}")
        conn.tunnelled()
        transport = conn.transport
        assert transport is not None
        tls = await self.loop.start_tls(transport, conn, self._ssl(), server_hostname=host)
        if tls is None:  # pragma: no cover - only when the loop is closing
            raise APIConnectionError(f"cannot connect to {route.label}: TLS failed")
        conn.transport = tls

    async def _resolve(self, host: str, port: int) -> list[_Address]:
        """The addresses to try for ``host``: itself if it is an IP address, else a lookup
        reused for 10 s."""
        if _is_ip(host):
            return [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
        now = time.monotonic()
        cached = self._resolved.get((host, port))
        if cached is not None and now - cached[0] < _DNS_TTL:
            return cached[1]
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[_Address] = [
            (int(family), (str(addr[0]), int(addr[1]))) for family, *_, addr in infos
            if family in (socket.AF_INET, socket.AF_INET6)]
        if not addresses:
            raise OSError(f"no address found for {host}")
        if len(self._resolved) >= 256:
            self._resolved.clear()
        self._resolved[(host, port)] = (now, addresses)
        return addresses

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            import ssl

            self._ssl_context = ssl.create_default_context()
        return self._ssl_context


def _interleaved(addresses: list[_Address]) -> list[_Address]:
    """The addresses with their families alternating, the resolver's first family first
    (RFC 8305 §4), so a broken IPv6 path costs one stagger, not every IPv6 address."""
    first = addresses[0][0]
    ours = [a for a in addresses if a[0] == first]
    other = [a for a in addresses if a[0] != first]
    mixed: list[_Address] = []
    for index in range(max(len(ours), len(other))):
        mixed += ours[index:index + 1] + other[index:index + 1]
    return mixed


async def _first_to_connect(loop: asyncio.AbstractEventLoop,
                            addresses: list[_Address]) -> socket.socket:
    """A socket connected to the first of ``addresses`` that answers: the next attempt starts
    when one fails or after 0.25 s without an answer (RFC 8305's Happy Eyeballs), the losers
    are closed. Raises the last attempt's error when none connects."""
    queue = list(addresses)
    pending: set[asyncio.Task[socket.socket]] = set()
    error: BaseException | None = None
    try:
        while queue or pending:
            if queue:
                pending.add(loop.create_task(_connect_to(loop, *queue.pop(0))))
            done, pending = await asyncio.wait(pending, timeout=_STAGGER if queue else None,
                                               return_when=asyncio.FIRST_COMPLETED)
            winner = None
            for task in done:
                if task.exception() is None:
                    if winner is None:
                        winner = task.result()
                    else:
                        task.result().close()
                else:
                    error = task.exception()
            if winner is not None:
                return winner
    finally:
        for task in pending:  # a cancelled attempt closes its own socket
            task.cancel()
    raise error if error is not None else OSError("no address to connect to")


async def _connect_to(loop: asyncio.AbstractEventLoop, family: int,
                      address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


@functools.lru_cache(maxsize=256)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    with contextlib.suppress(Exception):
        if text := str(exc):
            return text
    return type(exc).__name__
