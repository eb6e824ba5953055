"""The blocking transport: stdlib ``http.client`` with a small thread-safe keep-alive pool.

``http.client`` connects, sends and parses status and headers; chunked bodies are decoded here
(:class:`~promptkit.transport.http11.BodyDecoder`, shared with the async transport), all chunks
already received per read (``http.client`` returns one per call, and servers send one
SSE event per chunk). A body not read to its end closes its socket on close, so the server stops
generating. Request headers (API keys) never appear in a message or a log.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from promptkit._errors import APIConnectionError, ConnectTimeout
from promptkit.transport._base import ReadTimeout
from promptkit.transport.http11 import BodyDecoder

if TYPE_CHECKING:
    import ssl

    from promptkit.engine.dialect import HTTPRequest

__all__ = ["ProxyInfo", "SyncHTTPTransport", "env_proxy", "route_for"]

_READ_SIZE = 65536
_TIMEOUT_SLACK = 0.001  # a read timeout within 1 ms of the one set keeps the socket as it is
_FOREVER = 1e7  # longer timeouts (math.inf from the drivers included) mean "no timeout"
_MAX_IDLE = 60.0  # seconds an idle pooled connection may wait before it is discarded
_DRAIN_TIMEOUT = 0.002  # close() waits at most this long for the end of an unfinished body
_PROXY_PLATFORMS = ("darwin", "win32")  # where getproxies() also reads system settings
_Exchange = tuple[http.client.HTTPConnection, socket.socket, http.client.HTTPResponse]
# what a pooled connection the server already closed raises before any response byte
_STALE_ERRORS = (ConnectionError, http.client.BadStatusLine, http.client.NotConnected,
                 http.client.ImproperConnectionState)


# --- proxies (also used by the async transport) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """An ``http://`` proxy chosen from the environment, with the credentials of its URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The proxy URL without credentials."""
        return f"http://{_hostport(self.host, self.port)}"

    def auth_header(self) -> str | None:
        """The ``Proxy-Authorization`` value, or ``None`` without credentials."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def env_proxy(scheme: str, host: str, port: int) -> ProxyInfo | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY/ALL_PROXY (minus NO_PROXY) name for this origin.

    Never for loopback; only ``http://`` proxies (others raise). Imports ``urllib.request`` only
    when a proxy variable is set (or on macOS/Windows, whose system settings it also reads)."""
    if host in ("localhost", "::1") or host.startswith("127.") or host.endswith(".localhost"):
        return None  # loopback
    if sys.platform not in _PROXY_PLATFORMS and not any(
        name[-6:].lower() == "_proxy" for name in os.environ
    ):
        return None
    import urllib.request

    proxies = urllib.request.getproxies()
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    if urllib.request.proxy_bypass(_hostport(host, port)):
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    if not parts.hostname:
        return None
    if parts.scheme.lower() != "http":
        raise APIConnectionError(f"proxy scheme {parts.scheme!r} is not supported: use http://")
    user, password = parts.username, parts.password
    return ProxyInfo(parts.hostname, parts.port or 80,
                     None if user is None else unquote(user),
                     None if password is None else unquote(password))


# --- routes and the pool ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Route:
    """How to reach one origin: pool key, label for errors, proxy; ``forward`` holds the extra
    headers of a plain-http request sent through a proxy (``None`` when not proxied so)."""

    key: tuple[str, str, int]
    label: str
    proxy: ProxyInfo | None
    forward: dict[str, str] | None


def route_for(scheme: str, netloc: str, trust_env: bool) -> _Route:
    """How to reach the origin ``scheme://netloc`` (both transports): its pool key, its label
    for errors, and the environment's proxy for it when ``trust_env``."""
    parts = urlsplit(f"{scheme}://{netloc}")
    scheme = scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise APIConnectionError(f"unsupported URL {scheme}://{netloc}: need http(s)://host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise APIConnectionError(f"invalid port in URL {scheme}://{netloc}") from None
    host = parts.hostname
    proxy = env_proxy(scheme, host, port) if trust_env else None
    label = _hostport(host, port)
    forward = None
    if proxy is not None:
        label += f" (via proxy {proxy.host}:{proxy.port})"
        auth = proxy.auth_header()
        if scheme == "http":  # the proxy itself gets the request: these headers go with it
            forward = {"Proxy-Authorization": auth} if auth else {}
    return _Route((scheme, host, port), label, proxy, forward)


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


def _finite(timeout: float | None) -> float | None:
    """``timeout`` as a socket accepts it: ``None`` for no limit (``inf`` included)."""
    return None if timeout is None or timeout >= _FOREVER else timeout


def _is_dropped(sock: socket.socket) -> bool:
    """Whether an idle connection is unusable: readable means EOF, a reset or stray bytes."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _unsendable(headers: Mapping[str, str], bad_url: bool) -> APIConnectionError:
    """A non-retryable error for a request that cannot be sent; names a bad header, never its
    value (nor the URL, whose query may hold a key)."""
    bad = next((name for name, value in headers.items()
                if any(c in "\r\n\0" or c > "\xff" for c in f"{name}{value}")), "?")
    error = APIConnectionError(
        "invalid characters in the request URL path or query" if bad_url else
        f"invalid HTTP header {bad!r}: its name or value holds characters that cannot be sent "
        "(line breaks, NUL, non-Latin-1); the value is not shown"
    )
    error.retryable = False
    return error


class SyncHTTPTransport:
    """A :class:`~promptkit.transport._base.SyncTransport` over ``http.client``.

    ``max_connections_per_host`` bounds the idle connections kept per origin; more may be open
    at once (it never blocks), the surplus is closed on release. Proxy variables are read once
    per origin. Safe to share between threads.
    """

    def __init__(
        self,
        max_connections_per_host: int = 10,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        self._max_idle = max(0, max_connections_per_host)
        self._ssl_context = ssl_context
        self._trust_env = trust_env
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[tuple[http.client.HTTPConnection, float]]] = {}
        self._routes: dict[tuple[str, str], _Route] = {}
        self._generation = 0

    def __repr__(self) -> str:
        return f"SyncHTTPTransport(max_connections_per_host={self._max_idle})"

    def open(
        self, request: HTTPRequest, *, connect_timeout: float | None, read_timeout: float | None
    ) -> _SyncBody:
        """Send ``request``; return once the status line and headers arrived."""
        parts = urlsplit(request.url)
        route = self._route(parts.scheme, parts.netloc)
        target = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
        headers = request.headers
        if route.forward is not None:  # plain http through a proxy: absolute target
            target = f"http://{parts.netloc}{target}"
            headers = {**headers, **route.forward}
        body = request.body or None
        applied = _finite(read_timeout)
        conn = self._checkout(route.key)
        reused = conn is not None
        while True:
            if conn is None:
                conn = self._connect(route, connect_timeout)
            sock = conn.sock
            assert sock is not None
            try:
                sock.settimeout(applied)
                conn.request(request.method, target, body, headers)
                response = conn.getresponse()
            except TimeoutError:
                conn.close()
                raise ReadTimeout(f"no response from {route.label} in {read_timeout} s") from None
            except (ValueError, UnicodeError) as exc:
                # the text of ``exc`` may hold a secret (a header value, Gemini's ?key=): the
                # error is raised below, outside this block, so that nothing is chained to it
                conn.close()
                bad_url = isinstance(exc, http.client.InvalidURL)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused and isinstance(exc, _STALE_ERRORS):
                    conn, reused = None, False  # stale pooled connection: once more, fresh
                    continue
                raise APIConnectionError(
                    f"connection to {route.label} failed: {_reason(exc)}"
                ) from exc
            else:
                return _SyncBody(self, route.key, (conn, sock, response), read_timeout,
                                 self._generation)
            raise _unsendable(headers, bad_url)

    def close(self) -> None:
        """Close every idle connection; bodies still open close theirs when they finish."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn, _ in conns:
                conn.close()

    def __enter__(self) -> SyncHTTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _route(self, scheme: str, netloc: str) -> _Route:
        route = self._routes.get((scheme, netloc))
        if route is not None:
            return route
        route = route_for(scheme, netloc, self._trust_env)
        if len(self._routes) >= 256:  # e.g. HTTP tools calling many hosts: keep it bounded
            self._routes.clear()
        self._routes[(scheme, netloc)] = route
        return route

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # a race creates two equal contexts: harmless
            import ssl

            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _connect(self, route: _Route, timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = route.key
        proxy = route.proxy
        peer_host, peer_port = (host, port) if proxy is None else (proxy.host, proxy.port)
        timeout = _finite(timeout)
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                peer_host, peer_port, timeout=timeout, context=self._ssl()
            )
            if proxy is not None:
                auth = proxy.auth_header()
                conn.set_tunnel(host, port, {"Proxy-Authorization": auth} if auth else None)
        else:
            conn = http.client.HTTPConnection(peer_host, peer_port, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise ConnectTimeout(
                f"connecting to {route.label} timed out after {timeout} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise APIConnectionError(f"cannot connect to {route.label}: {_reason(exc)}") from exc
        return conn

    def _checkout(self, key: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        """An idle pooled connection that still looks alive, or ``None``."""
        stale: list[http.client.HTTPConnection] = []
        found = None
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn, since = idle.pop()
                if now - since < _MAX_IDLE and conn.sock is not None and not _is_dropped(conn.sock):
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            conn.close()
        return found

    def _release(
        self, key: tuple[str, str, int], conn: http.client.HTTPConnection, generation: int
    ) -> None:
        with self._lock:
            if generation == self._generation:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self._max_idle:
                    idle.append((conn, time.monotonic()))
                    return
        conn.close()


class _SyncBody:
    """An open response (a :class:`~promptkit.transport._base.SyncBody`) owning its connection."""

    __slots__ = ("_applied", "_chunks", "_closed", "_conn", "_eof", "_fp", "_generation", "_key",
                 "_read1", "_reading", "_response", "_reusable", "_sock", "_timeout",
                 "_transport", "headers", "status")

    status: int
    headers: Mapping[str, str]

    def __init__(self, transport: SyncHTTPTransport, key: tuple[str, str, int],
                 exchange: _Exchange, timeout: float | None, generation: int) -> None:
        conn, sock, response = exchange
        self.status = response.status
        headers: dict[str, str] = {}
        for raw_name, value in response.getheaders():
            name = raw_name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        self._transport = transport
        self._key = key
        self._conn = conn
        self._sock = sock
        self._response = response
        self._fp = response.fp
        chunked = response.chunked and response.length is None and self._fp is not None
        self._chunks = BodyDecoder(None) if chunked else None  # http.client leaves it to us
        self._read1 = self._read_chunked if chunked else response.read1
        self._timeout = timeout  # as last asked for
        self._applied = _finite(timeout)  # as set on the socket
        self._generation = generation
        self._reusable = not response.will_close
        self._eof = self._reading = self._closed = False

    def read(self, timeout: float | None) -> bytes:
        """Return the next bytes available (one network read at most); ``b""`` at EOF.

        After :class:`ReadTimeout` the body is unusable (``http.client`` refuses to read a socket
        that timed out): close it.
        """
        if timeout != self._timeout:
            self._timeout = timeout
            wanted, applied = _finite(timeout), self._applied
            if wanted != applied and (
                wanted is None or applied is None or abs(wanted - applied) > _TIMEOUT_SLACK
            ):
                self._sock.settimeout(wanted)
                self._applied = wanted
        self._reading = True
        try:
            data = self._read1(_READ_SIZE)
        except TimeoutError:
            self._reusable = False  # the buffered reader is unusable after a timeout
            raise ReadTimeout(f"no data within {timeout} s") from None
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
            # AttributeError: close() from another thread emptied the response under us
            self._reusable = False
            reason = "response closed" if self._closed else "connection dropped mid-stream"
            raise APIConnectionError(reason) from exc
        finally:
            self._reading = False
        if not data:
            if self._response.length and not self._closed:
                # the server closed before Content-Length bytes arrived
                self._reusable = False
                raise APIConnectionError("connection dropped mid-stream")
            self._eof = True
        return data

    def _read_chunked(self, size: int) -> bytes:
        """Decode the chunks already received (one network read if there are none); b"" at end."""
        decoder = self._chunks
        assert decoder is not None and self._fp is not None
        while not decoder.done:
            data = self._fp.read1(size)
            if not data:
                self._reusable = False
                raise APIConnectionError(
                    "response closed" if self._closed else "connection dropped mid-stream")
            out = decoder.feed(data)  # FramingError (a ValueError): read() reports it
            if decoder.surplus:
                self._reusable = False  # bytes after the body: not a clean connection
            if out:
                return out
        return b""

    def read_all(self, timeout: float | None, limit: int = 1 << 20) -> bytes:
        """Read the rest of the body, up to ``limit`` bytes, within ``timeout`` seconds overall."""
        deadline = None if timeout is None else time.monotonic() + timeout
        parts: list[bytes] = []
        size = 0
        while size < limit and (
            data := self.read(None if deadline is None else max(deadline - time.monotonic(), 1e-6))
        ):
            parts.append(data)
            size += len(data)
        return b"".join(parts)[:limit]

    def close(self) -> None:
        """Return the connection to the pool after a complete body, else close the socket."""
        if self._closed:
            return
        self._closed = True
        response = self._response
        if self._reusable and not self._eof and not self._reading:
            self._eof = self._drain()
        if self._reusable and self._eof:
            response.close()
            self._transport._release(self._key, self._conn, self._generation)
            return
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in another thread
        response.close()
        self._conn.close()
        self._sock.close()

    def _drain(self) -> bool:
        """Finish a body whose end has (almost) arrived, e.g. after the dialect's terminator,
        waiting 2 ms at most; whether it ended cleanly, so the connection can be reused."""
        try:
            self._sock.settimeout(_DRAIN_TIMEOUT)
            for _ in range(4):
                if not self._read1(_READ_SIZE):
                    return not self._response.length
        except Exception:  # anything unexpected: the socket will simply be closed
            pass
        return False

    def __enter__(self) -> _SyncBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
