"""The transport interface the two drivers use: open a request, read body bytes, close.

Transports know nothing about dialects or chunks. They raise only these errors:
:class:`~promptkit.APIConnectionError` (cannot connect, connection reset or dropped),
:class:`~promptkit.ConnectTimeout` (connecting took too long) and, for the sync transport,
:class:`ReadTimeout` (a read waited longer than asked; the driver turns it into the right
promptkit timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from promptkit.engine.dialect import HTTPRequest

__all__ = ["AsyncBody", "AsyncTransport", "ReadTimeout", "SyncBody", "SyncTransport"]


class ReadTimeout(Exception):
    """A sync read exceeded its timeout (internal; drivers map it to a promptkit error)."""


class SyncBody(Protocol):
    """An open response: status, lower-cased headers, and the body read piece by piece."""

    status: int
    headers: Mapping[str, str]

    def read(self, timeout: float | None) -> bytes:
        """Return the next bytes available (at most one network read); ``b""`` at EOF.

        Waits at most ``timeout`` seconds (``None``: no limit), else raises ReadTimeout.
        """
        ...

    def read_all(self, timeout: float | None, limit: int = 1 << 20) -> bytes:
        """Read the rest of the body (up to ``limit`` bytes), e.g. an error reply."""
        ...

    def close(self) -> None:
        """Release the connection; a body not read to its end closes the socket. Idempotent."""
        ...


class SyncTransport(Protocol):
    """Sends requests from blocking code; safe to share between threads."""

    def open(self, request: HTTPRequest, *, connect_timeout: float | None,
             read_timeout: float | None) -> SyncBody:
        """Send ``request`` and return once the status line and headers arrived."""
        ...

    def close(self) -> None: ...


class AsyncBody(Protocol):
    """The asyncio twin of :class:`SyncBody`; timeouts are enforced by the caller."""

    status: int

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers, names lower-cased."""
        ...

    async def read(self) -> bytes: ...

    async def read_all(self, limit: int = 1 << 20) -> bytes: ...

    def at_eof(self) -> bool:
        """Whether the whole body has arrived and been read (the connection can be reused)."""
        ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """Sends requests from asyncio code; one per event loop."""

    async def open(self, request: HTTPRequest, *, connect_timeout: float | None) -> AsyncBody: ...

    async def aclose(self) -> None: ...
