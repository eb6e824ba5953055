"""HTTP plumbing shared by the endpoints: JSON errors, bounded JSON bodies, and SSE responses
that notice a client leaving at once (not only at the next write) and cancel the turn."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from promptkit._json import encode
from promptkit._redact import redact

__all__ = ["ApiError", "EventStream", "json_error", "read_json", "sse_event"]

logger = logging.getLogger("promptkit.server")


class ApiError(Exception):
    """A request the server refuses: HTTP ``status``, a short ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_error(status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"error": {"type": code, "message": message}}`` (the OpenAI error shape, so OpenAI
    clients show the message)."""
    return JSONResponse({"error": {"type": code, "message": message}}, status_code=status,
                        headers=headers)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, refusing more than ``limit`` bytes (413) before
    reading them when the length is declared, and while reading when it is not."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "request_too_large", f"the request body is over {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise ApiError(413, "request_too_large", f"the request body is over {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return data


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One SSE event; ``data`` as compact JSON on one line."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + encode(data) + b"\n\n"


KEEPALIVE = 15.0  # seconds without a write before an SSE comment keeps proxies from timing out
_PING = b": ping\n\n"


class EventStream:
    """An ASGI response streaming ``events`` (bytes) as ``text/event-stream``.

    While it streams it also waits for the client's ``http.disconnect``: a client that leaves
    cancels the producer at once (closing the upstream model call), even while the producer
    is waiting for the model's first token and nothing is being written. After ``keepalive``
    seconds without a write (a slow first token, a long tool call) it writes an SSE comment
    (``: ping``), which clients ignore and proxies count as traffic (nginx closes a silent
    upstream after 60 s); ``None`` turns that off. One timer per stream, re-armed from the last
    write, not one per event.
    """

    def __init__(self, events: AsyncIterator[bytes], *, headers: dict[str, str] | None = None,
                 keepalive: float | None = KEEPALIVE) -> None:
        self.events = events
        self.keepalive = keepalive
        self.headers = {"content-type": "text/event-stream; charset=utf-8",
                        "cache-control": "no-cache", "x-accel-buffering": "no",
                        **(headers or {})}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in self.headers.items()]})
        # The producer runs the turn into ``buffer``; this coroutine writes what it finds there,
        # coalescing the events produced together (the chunks one network read of the model's
        # stream gave) into one write, since each write costs far more than a chunk.
        buffer: list[bytes] = []
        ready = asyncio.Event()
        done = {"finished": False, "gone": False}

        async def produce() -> None:
            events = self.events
            try:
                async for piece in events:
                    buffer.append(piece)
                    ready.set()
            finally:
                done["finished"] = True
                ready.set()
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()

        async def watch() -> None:
            await _wait_for_disconnect(receive)
            done["gone"] = True
            producer.cancel()  # closes the model call now, even mid-wait for a token
            ready.set()

        loop = asyncio.get_running_loop()
        interval = self.keepalive
        last_write = loop.time()
        timer: asyncio.TimerHandle | None = None

        def tick() -> None:  # a ping is due if nothing was written for a whole interval
            nonlocal timer
            assert interval is not None
            idle = loop.time() - last_write
            if idle >= interval:
                done["ping"] = True
                ready.set()
                idle = 0.0
            timer = loop.call_later(interval - idle, tick)

        if interval is not None:
            timer = loop.call_later(interval, tick)
        producer = asyncio.ensure_future(produce())
        watcher = asyncio.ensure_future(watch())
        try:
            while (buffer or not done["finished"]) and not done["gone"]:
                if not buffer:
                    if done.pop("ping", False):
                        await send({"type": "http.response.body", "body": _PING,
                                    "more_body": True})
                        last_write = loop.time()
                        continue
                    await ready.wait()
                    ready.clear()
                    continue
                data = b"".join(buffer) if len(buffer) > 1 else buffer[0]
                buffer.clear()
                await send({"type": "http.response.body", "body": data, "more_body": True})
                if interval is not None:
                    last_write = loop.time()
                    done.pop("ping", None)  # this write was traffic enough
            if not done["gone"]:
                await producer  # its failure, if any, is this stream's
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        except asyncio.CancelledError:
            if not done["gone"]:
                raise
        except Exception as exc:
            logger.error("stream failed: %s: %s", type(exc).__name__, redact(str(exc)))
        finally:
            if timer is not None:
                timer.cancel()
            for task in (producer, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
