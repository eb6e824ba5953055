"""The load benchmark's floor: a minimal Starlette relay that forwards the upstream's SSE.

``POST /v1/chat/completions`` sends the request body to ``$RELAY_UPSTREAM/chat/completions``
with aiohttp and streams the upstream's bytes back unchanged: no parsing, no state, no
checks. Anything that does real work per request (promptkit serve, LiteLLM) is measured
against it.

    RELAY_UPSTREAM=http://127.0.0.1:9000/v1 uvicorn serve_relay:app --app-dir benchmarks
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("RELAY_UPSTREAM", "http://127.0.0.1:9000/v1")
_session: dict[str, aiohttp.ClientSession] = {}


def session() -> aiohttp.ClientSession:
    if "s" not in _session:
        _session["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    return _session["s"]


async def relay(request: Request) -> StreamingResponse:
    body = await request.body()
    upstream = await session().post(UPSTREAM + "/chat/completions", data=body,
                                    headers={"content-type": "application/json"})

    async def forward() -> AsyncIterator[bytes]:
        try:
            async for piece in upstream.content.iter_any():
                yield piece
        finally:
            upstream.release()

    return StreamingResponse(forward(), status_code=upstream.status,
                             media_type="text/event-stream")


app: Any = Starlette(routes=[Route("/v1/chat/completions", relay, methods=["POST"])])
