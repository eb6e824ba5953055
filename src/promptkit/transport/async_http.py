"""The asyncio transport, on aiohttp: the only module that imports it (others import this lazily).

One ``aiohttp.ClientSession`` per event loop, created on first use, so a transport keeps working
across several ``asyncio.run`` calls; each session is closed when its loop shuts down (through an
async generator the loop finalizes) or by :meth:`AsyncHTTPTransport.aclose`. Request headers
carry API keys: they never appear in a message or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from promptkit._errors import APIConnectionError, ConnectTimeout
from promptkit.transport.sync_http import ProxyInfo, _finite, env_proxy

if TYPE_CHECKING:
    import ssl

    from promptkit.engine.dialect import HTTPRequest

__all__ = ["AsyncHTTPTransport"]

# what a pooled connection the server already closed raises before any response byte
# What a pooled connection the server had already closed looks like: a disconnect, a reset, or
# a failed write of the request ("Can not write request body", a ClientOSError). Nothing of the
# request was processed, so one retry on a fresh connection is safe.
_STALE_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionResetError,
                 aiohttp.ClientOSError)
_MID_STREAM_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)


async def _close_at_shutdown(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Parked at its ``yield`` while the session lives; the loop's shutdown finalizes it."""
    try:
        yield
    finally:
        await session.close()


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = 0
    return scheme, parts.hostname or "", port


def _label(url: str) -> str:
    _, host, port = _origin(url)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class AsyncHTTPTransport:
    """An :class:`~promptkit.transport._base.AsyncTransport` over aiohttp.

    ``limit`` caps the open connections per event loop (0: no cap), ``limit_per_host`` per
    origin (0: no cap). With ``trust_env`` the HTTP(S)_PROXY/NO_PROXY variables are honoured
    exactly as by the sync transport (loopback is never proxied).
    """

    def __init__(
        self,
        limit: int = 1000,
        limit_per_host: int = 0,
        trust_env: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._trust_env = trust_env
        self._ssl_context = ssl_context
        self._sessions: dict[
            asyncio.AbstractEventLoop,
            tuple[aiohttp.ClientSession, AsyncGenerator[None, None]],
        ] = {}
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self._proxies: dict[str, ProxyInfo | None] = {}  # by request URL

    def __repr__(self) -> str:
        return f"AsyncHTTPTransport(limit={self._limit}, limit_per_host={self._limit_per_host})"

    async def open(self, request: HTTPRequest, *, connect_timeout: float | None) -> _AsyncBody:
        """Send ``request``; return once the status line and headers arrived."""
        session = await self._session()
        timeout = self._timeouts.get(connect_timeout)
        if timeout is None:
            limit = _finite(connect_timeout)  # math.inf from a driver: no limit
            # Only establishing a new connection (TCP, and TLS) is timed here: aiohttp's
            # `connect` would also arm a timer for taking a pooled connection, on every
            # request. Waits for a free slot or for DNS are bounded by the driver's
            # first-token limit, which runs from the moment the request starts.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=limit)
            self._timeouts[connect_timeout] = timeout
        proxy = self._proxy(request.url) if self._trust_env else None  # cached per URL
        headers = request.headers
        proxy_headers = None  # for the CONNECT of an https tunnel
        proxy_auth = proxy.auth_header() if proxy is not None else None
        if proxy_auth is not None:
            if request.url[:6].lower() == "https:":
                proxy_headers = {"Proxy-Authorization": proxy_auth}
            else:  # a plain http request goes to the proxy itself
                headers = {**headers, "Proxy-Authorization": proxy_auth}
        retried = False
        while True:
            try:
                response = await session.request(
                    request.method,
                    request.url,
                    data=request.body or None,
                    headers=headers,
                    timeout=timeout,
                    proxy=proxy.url if proxy is not None else None,
                    proxy_headers=proxy_headers,
                )
            except TimeoutError:
                raise ConnectTimeout(
                    f"connecting to {_label(request.url)} timed out after {connect_timeout} s"
                ) from None
            except _STALE_ERRORS as exc:
                if not retried:
                    retried = True  # most likely a pooled connection the server had closed
                    continue
                raise APIConnectionError(
                    f"connection to {_label(request.url)} failed: {_reason(exc)}"
                ) from exc
            except aiohttp.InvalidURL:
                invalid = "invalid request URL"  # it may hold a key (Gemini's ?key=): not shown
            except aiohttp.ClientResponseError as exc:  # e.g. the proxy refused; holds headers
                raise APIConnectionError(
                    f"cannot connect to {_label(request.url)}: {exc.status} {exc.message}"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise APIConnectionError(
                    f"cannot connect to {_label(request.url)}: {_reason(exc)}"
                ) from exc
            except (ValueError, UnicodeError):
                invalid = (
                    "invalid HTTP header: a name or value holds characters that cannot be sent"
                    " (line breaks, NUL, non-Latin-1); the value is not shown"
                )
            else:
                return _AsyncBody(response)
            # raised outside the except blocks: the original error's text may hold a secret
            error = APIConnectionError(invalid)
            error.retryable = False
            raise error

    async def aclose(self) -> None:
        """Close the session of the running loop (and ask other live loops to close theirs)."""
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

    async def _session(self) -> aiohttp.ClientSession:
        """The running loop's session, created (and the stale ones forgotten) on first use."""
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is not None and not entry[0].closed:
            return entry[0]
        for owner in [owner for owner in self._sessions if owner.is_closed()]:
            del self._sessions[owner]
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            ssl=self._ssl_context if self._ssl_context is not None else True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            trust_env=False,  # proxies are resolved by env_proxy(), the same as the sync side
        )
        guard = _close_at_shutdown(session)
        self._sessions[loop] = (session, guard)
        await guard.__anext__()  # the loop now finalizes it (closing the session) at shutdown
        return session

    def _proxy(self, url: str) -> ProxyInfo | None:
        try:
            return self._proxies[url]
        except KeyError:
            pass
        proxy = env_proxy(*_origin(url))
        if len(self._proxies) >= 256:  # e.g. HTTP tools calling many URLs: keep it bounded
            self._proxies.clear()
        self._proxies[url] = proxy
        return proxy


async def _finish(guard: AsyncGenerator[None, None]) -> None:
    await guard.aclose()


class _AsyncBody:
    """An open response (an :class:`~promptkit.transport._base.AsyncBody`) that owns it."""

    __slots__ = ("_broken", "_closed", "_headers", "_readany", "_response", "status")

    status: int

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        self._headers: dict[str, str] | None = None
        self._response = response
        self._readany = response.content.readany
        self._broken = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<AsyncBody status={self.status} closed={self._closed}>"

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers, names lower-cased, repeated ones joined with ", " (built on
        first use: a successful stream never needs them)."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, value in self._response.headers.items():
                name = raw_name.lower()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    async def read(self) -> bytes:
        """Return the next bytes available; ``b""`` at EOF."""
        try:
            return await self._readany()
        except _MID_STREAM_ERRORS as exc:
            self._broken = True
            # aiohttp raises as soon as the connection is lost, even with bytes that arrived
            # before still buffered: hand those out first (private API, so only if present)
            salvage = getattr(self._response.content, "_read_nowait", None)
            with contextlib.suppress(Exception):
                if salvage is not None and (data := salvage(-1)):
                    return bytes(data)
            raise APIConnectionError("connection dropped mid-stream") from exc

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
        return self._response.content.at_eof()

    def close(self) -> None:
        """Reuse the connection if the whole body arrived, else close it. Sync, idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._broken and self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()

    async def __aenter__(self) -> _AsyncBody:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
