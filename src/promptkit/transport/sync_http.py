"""The blocking transport: stdlib ``http.client`` with a small thread-safe keep-alive pool.

One pool per ``(scheme, host, port)``. A response body is read with one ``read1`` per call, the
socket timeout is only touched when the caller's timeout changes, and a body not read to its end
closes its socket on :meth:`close`, so the server stops generating. Nothing here ever puts request
headers (they carry API keys) into a message or a log.
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
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from promptkit._errors import APIConnectionError, ConnectTimeout
from promptkit.transport._base import ReadTimeout

if TYPE_CHECKING:
    import ssl

    from promptkit.providers._base import HTTPRequest

__all__ = ["ProxyInfo", "SyncHTTPTransport", "env_proxy"]

_READ_SIZE = 65536
_TIMEOUT_SLACK = 0.001  # a read timeout within 1 ms of the one set keeps the socket as it is
_FOREVER = 1e7  # longer timeouts (math.inf from the drivers included) mean "no timeout"
_MAX_IDLE = 60.0  # seconds an idle pooled connection may wait before it is discarded
_DRAIN_TIMEOUT = 0.002  # close() waits at most this long for the end of an unfinished body
_DRAIN_READS = 4
_PROXY_PLATFORMS = ("darwin", "win32")  # where getproxies() also reads system settings
# states of the chunked-body decoder (a positive count means "inside a chunk, n bytes left")
_SIZE, _CRLF, _TRAILER, _END = 0, -1, -2, -3
# what a pooled connection the server already closed raises before any response byte
_STALE_ERRORS = (
    ConnectionError,
    http.client.BadStatusLine,
    http.client.NotConnected,
    http.client.ImproperConnectionState,
)


# --- proxies (also used by the async transport) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """An HTTP proxy chosen from the environment; credentials come from its URL."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The proxy URL without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def auth_header(self) -> str | None:
        """The ``Proxy-Authorization`` value, or ``None`` without credentials."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:  # never show the password
        return f"ProxyInfo({self.url!r}, auth={'set' if self.username is not None else 'none'})"


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.") or host.endswith(".localhost")


def env_proxy(scheme: str, host: str, port: int) -> ProxyInfo | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY/ALL_PROXY (minus NO_PROXY) name for this origin.

    Loopback hosts are never proxied. ``urllib.request`` is imported only when some proxy
    variable is set (or on macOS/Windows, whose system settings it also reads).
    """
    if _is_loopback(host):
        return None
    if sys.platform not in _PROXY_PLATFORMS and not any(
        name[-6:].lower() == "_proxy" for name in os.environ
    ):
        return None
    import urllib.request

    proxies = urllib.request.getproxies()
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if urllib.request.proxy_bypass(netloc):
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    if not parts.hostname:
        return None
    proxy_scheme = parts.scheme.lower()
    default_port = 443 if proxy_scheme == "https" else 80
    return ProxyInfo(
        proxy_scheme,
        parts.hostname,
        parts.port or default_port,
        unquote(parts.username) if parts.username is not None else None,
        unquote(parts.password) if parts.password is not None else None,
    )


# --- routes and the pool ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Route:
    """How to reach one origin: the pool key, the label used in errors, the proxy if any."""

    key: tuple[str, str, int]
    label: str
    proxy: ProxyInfo | None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


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


def _invalid_header_error(headers: Mapping[str, str]) -> APIConnectionError:
    """An error naming the header whose name or value cannot be sent (never the value)."""
    bad = "?"
    for name, value in headers.items():
        text = f"{name}{value}"
        if any(c in text for c in "\r\n\0") or max(map(ord, text), default=0) > 0xFF:
            bad = name
            break
    return APIConnectionError(
        f"invalid HTTP header {bad!r}: its name or value holds characters that cannot be sent "
        "(line breaks, NUL, non-Latin-1); the value is not shown"
    )


class SyncHTTPTransport:
    """A :class:`~promptkit.transport._base.SyncTransport` over ``http.client``.

    ``max_connections_per_host`` bounds the idle connections kept per origin; more may be open
    at once (it never blocks), the surplus is closed on release. Safe to share between threads.
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

    # -- public --------------------------------------------------------------------------------

    def open(
        self, request: HTTPRequest, *, connect_timeout: float | None, read_timeout: float | None
    ) -> _SyncBody:
        """Send ``request``; return once the status line and headers arrived."""
        parts = urlsplit(request.url)
        route = self._route(parts.scheme, parts.netloc)
        scheme = route.key[0]
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        if route.proxy is not None and scheme == "http":
            target = f"http://{parts.netloc}{target}"  # absolute form through a plain proxy
        headers = request.headers
        proxy_auth = route.proxy.auth_header() if route.proxy is not None else None
        if proxy_auth is not None and scheme == "http":
            headers = {**headers, "Proxy-Authorization": proxy_auth}
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
                raise ReadTimeout(
                    f"no response from {route.label} within {read_timeout} s"
                ) from None
            except (ValueError, UnicodeError) as exc:
                # a bad header, or URL (Gemini puts the key in its query): the text of ``exc``
                # may hold a secret, so the error is raised outside this block, unchained
                conn.close()
                invalid = isinstance(exc, http.client.InvalidURL)
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
            error = (
                APIConnectionError("invalid characters in the request URL path or query")
                if invalid
                else _invalid_header_error(headers)
            )
            error.retryable = False
            raise error

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

    # -- internals -----------------------------------------------------------------------------

    def _route(self, scheme: str, netloc: str) -> _Route:
        route = self._routes.get((scheme, netloc))
        if route is not None:
            return route
        parts = urlsplit(f"{scheme}://{netloc}")
        scheme = scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise APIConnectionError(f"unsupported URL {scheme}://{netloc}: need http(s)://host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise APIConnectionError(f"invalid port in URL {scheme}://{netloc}") from None
        host = parts.hostname
        proxy = env_proxy(scheme, host, port) if self._trust_env else None
        if proxy is not None and proxy.scheme != "http":
            raise APIConnectionError(
                f"proxy {proxy.url} is not supported: only http:// proxies are"
            )
        label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if proxy is not None:
            label += f" (via proxy {proxy.host}:{proxy.port})"
        route = _Route((scheme, host, port), label, proxy)
        self._routes[(scheme, netloc)] = route
        return route

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            import ssl

            context = ssl.create_default_context()
            with self._lock:
                if self._ssl_context is None:
                    self._ssl_context = context
        assert self._ssl_context is not None
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

    __slots__ = (
        "_applied",
        "_chunk",
        "_closed",
        "_conn",
        "_eof",
        "_fp",
        "_generation",
        "_key",
        "_raw",
        "_read1",
        "_reading",
        "_response",
        "_reusable",
        "_sock",
        "_timeout",
        "_transport",
        "headers",
        "status",
    )

    status: int
    headers: Mapping[str, str]

    def __init__(
        self,
        transport: SyncHTTPTransport,
        key: tuple[str, str, int],
        exchange: tuple[http.client.HTTPConnection, socket.socket, http.client.HTTPResponse],
        timeout: float | None,
        generation: int,
    ) -> None:
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
        self._raw = b""  # chunked framing bytes received but not decoded yet
        self._chunk = _SIZE
        # http.client decodes one chunk per call, in Python; servers send one SSE event per
        # chunk, so a chunked body is decoded here instead, every chunk already received at once
        chunked = response.chunked and response.length is None and self._fp is not None
        self._read1 = self._read_chunked if chunked else response.read1
        self._timeout = timeout  # as last asked for
        self._applied = _finite(timeout)  # as set on the socket
        self._generation = generation
        self._eof = False
        self._reusable = not response.will_close
        self._reading = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<SyncBody status={self.status} closed={self._closed}>"

    def read(self, timeout: float | None) -> bytes:
        """Return the next bytes available (one network read at most); ``b""`` at EOF."""
        if timeout != self._timeout:
            self._timeout = timeout
            wanted = _finite(timeout)
            applied = self._applied
            if wanted is None or applied is None:
                if wanted is not applied:
                    self._sock.settimeout(wanted)
                    self._applied = wanted
            elif abs(wanted - applied) > _TIMEOUT_SLACK:
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
        out: list[bytes] = []
        raw = self._raw
        state = self._chunk
        while True:
            pos, end = 0, len(raw)
            while pos < end:
                if state > 0:  # chunk data
                    stop = min(end, pos + state)
                    out.append(raw[pos:stop])
                    state -= stop - pos
                    pos = stop
                    if not state:
                        state = _CRLF
                    continue
                if state == _END:
                    self._reusable = False  # bytes after the body: not a clean connection
                    break
                newline = raw.find(b"\n", pos)
                if newline < 0:
                    break
                line = raw[pos:newline]
                pos = newline + 1
                if state == _CRLF:
                    if line not in (b"", b"\r"):
                        return self._bad_framing()
                    state = _SIZE
                elif state == _SIZE:
                    try:
                        state = int(line.split(b";", 1)[0], 16)
                    except ValueError:
                        return self._bad_framing()
                    if state < 0:
                        return self._bad_framing()
                    if not state:
                        state = _TRAILER
                elif line in (b"", b"\r"):  # the blank line ending the trailer
                    state = _END
            raw = raw[pos:] if pos else raw
            if out or state == _END:
                self._raw, self._chunk = raw, state
                return b"".join(out)
            if len(raw) > _READ_SIZE:  # a size or trailer line this long is not HTTP
                return self._bad_framing()
            assert self._fp is not None
            data = self._fp.read1(size)
            if not data:
                self._reusable = False
                raise APIConnectionError("connection dropped mid-stream")
            raw = raw + data if raw else data

    def _bad_framing(self) -> bytes:
        self._reusable = False
        raise APIConnectionError("invalid chunked encoding in the response body")

    def read_all(self, timeout: float | None, limit: int = 1 << 20) -> bytes:
        """Read the rest of the body, up to ``limit`` bytes, within ``timeout`` seconds overall."""
        deadline = None if timeout is None else time.monotonic() + timeout
        parts: list[bytes] = []
        size = 0
        while size < limit:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._reusable = False
                raise ReadTimeout(f"body not complete within {timeout} s")
            data = self.read(remaining)
            if not data:
                break
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
        """Finish the body if its end has (almost) arrived, e.g. after the dialect's terminator.

        Waits at most a couple of milliseconds; ``True`` when the body ended cleanly so the
        connection can be reused.
        """
        try:
            self._sock.settimeout(_DRAIN_TIMEOUT)
            for _ in range(_DRAIN_READS):
                if not self._read1(_READ_SIZE):
                    return not self._response.length
        except Exception:  # anything unexpected: the socket will simply be closed
            pass
        return False

    def __enter__(self) -> _SyncBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
