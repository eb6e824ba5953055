"""SSE keep-alive of ``promptkit serve``'s streams (``server.http.EventStream``), driven as an
ASGI app: a ``: ping`` comment after each silent interval, none while events flow, none after
the end, and the timer gone when the stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from promptkit.server.http import KEEPALIVE, EventStream


async def drive(stream: EventStream) -> list[bytes]:
    """Run the response; what it wrote, write by write (its end excluded)."""
    writes: list[bytes] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()  # the client stays
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("more_body"):
            writes.append(message["body"])

    await stream({"type": "http"}, receive, send)
    return writes


async def events(*plan: tuple[float, bytes]) -> AsyncIterator[bytes]:
    for pause, event in plan:
        await asyncio.sleep(pause)
        yield event


async def test_a_silent_wait_is_filled_with_pings() -> None:
    writes = await drive(EventStream(events((0.35, b"data: late\n\n")), keepalive=0.1))
    assert writes[-1] == b"data: late\n\n"
    assert 2 <= writes[:-1].count(b": ping\n\n") == len(writes) - 1 <= 4


async def test_no_ping_while_events_come_often_enough() -> None:
    plan = [(0.03, b"data: %d\n\n" % n) for n in range(10)]  # 0.3 s, never 0.1 s silent
    writes = await drive(EventStream(events(*plan), keepalive=0.1))
    assert b": ping\n\n" not in writes
    assert b"".join(writes) == b"".join(event for _, event in plan)


async def test_keepalive_off_and_no_timer_left_behind() -> None:
    loop = asyncio.get_running_loop()
    writes = await drive(EventStream(events((0.25, b"data: x\n\n")), keepalive=None))
    assert writes == [b"data: x\n\n"]
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    await drive(EventStream(events((0.0, b"data: y\n\n")), keepalive=0.05))
    await asyncio.sleep(0.12)
    assert len(loop._scheduled) <= before  # type: ignore[attr-defined]  # the tick was cancelled


def test_the_default_interval_is_under_common_proxy_timeouts() -> None:
    assert EventStream(events()).keepalive == KEEPALIVE and 0 < KEEPALIVE <= 30  # nginx: 60 s
