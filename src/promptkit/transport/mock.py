"""An in-process transport that answers requests with a plain function: no sockets.

``MockTransport(handler)`` implements both the sync and the async transport protocols, so the
whole pipeline (dialect, decoder, turn engine, drivers) runs exactly as against a server.
The handler receives the :class:`HTTPRequest` and returns a :class:`MockReply`.

    >>> def handler(request):
    ...     return MockReply(status=200, pieces=[b"data: [DONE]\\n\\n"])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from promptkit.engine.dialect import HTTPRequest
from promptkit.transport._base import ReadTimeout

__all__ = ["MockReply", "MockTransport"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MockReply:
    """A scripted response: status, headers and body pieces, with optional pacing.

    ``first_delay`` passes before the first piece, ``delay`` between pieces.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    pieces: Sequence[bytes] = ()
    delay: float = 0.0
    first_delay: float = 0.0


class _Body:
    """A reply being read; shared by the sync and async paths."""

    def __init__(self, reply: MockReply) -> None:
        self.status = reply.status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in reply.headers.items()}
        self._pieces = list(reply.pieces)
        self._index = 0
        self._reply = reply
        self.closed = False

    def _pause(self) -> float:
        return self._reply.first_delay if self._index == 0 else self._reply.delay

    def _next(self) -> bytes:
        if self.closed or self._index >= len(self._pieces):
            return b""
        piece = self._pieces[self._index]
        self._index += 1
        return piece

    def read(self, timeout: float | None) -> bytes:
        pause = self._pause() if self._index < len(self._pieces) else 0.0
        if pause:
            if timeout is not None and pause > timeout:
                time.sleep(max(timeout, 0.0))
                raise ReadTimeout
            time.sleep(pause)
        return self._next()

    def read_all(self, timeout: float | None, limit: int = 1 << 20) -> bytes:
        return b"".join(self._pieces[self._index:])[:limit]

    def at_eof(self) -> bool:
        return self.closed or self._index >= len(self._pieces)

    def close(self) -> None:
        self.closed = True


class _AsyncBody(_Body):
    async def read(self) -> bytes:  # type: ignore[override]
        pause = self._pause() if self._index < len(self._pieces) else 0.0
        if pause:
            import asyncio  # here, so the blocking driver never imports asyncio

            await asyncio.sleep(pause)
        return self._next()

    async def read_all(self, limit: int = 1 << 20) -> bytes:  # type: ignore[override]
        return b"".join(self._pieces[self._index:])[:limit]


class MockTransport:
    """A transport whose replies come from ``handler(request) -> MockReply``."""

    def __init__(self, handler: Callable[[HTTPRequest], MockReply]) -> None:
        self.handler = handler
        self.requests: list[HTTPRequest] = []

    def open(self, request: HTTPRequest, *, connect_timeout: float | None,
             read_timeout: float | None) -> _Body:
        self.requests.append(request)
        return _Body(self.handler(request))

    def close(self) -> None:
        return None

    async def aopen(self, request: HTTPRequest, *, connect_timeout: float | None) -> _AsyncBody:
        self.requests.append(request)
        return _AsyncBody(self.handler(request))

    async def aclose(self) -> None:
        return None

    def as_async(self) -> _AsyncMockTransport:
        return _AsyncMockTransport(self)


class _AsyncMockTransport:
    """The asyncio face of a :class:`MockTransport` (same handler, same request log)."""

    def __init__(self, sync: MockTransport) -> None:
        self._sync = sync

    async def open(self, request: HTTPRequest, *, connect_timeout: float | None) -> _AsyncBody:
        return await self._sync.aopen(request, connect_timeout=connect_timeout)

    async def aclose(self) -> None:
        return None
