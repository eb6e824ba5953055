"""The benchmarks' mock upstream: OpenAI Chat Completions and Anthropic Messages as SSE.

A separate process, written on raw ``asyncio.Protocol`` (uvloop when installed) so that it
stays far from being the bottleneck; ``GET /stats`` reports its own CPU time, which the runner
turns into a CPU share per workload.

    python benchmarks/upstream.py --port 8000 [--chunks 30 --first 0.2 --gap 0.03]

Routes (``POST``; any path prefix, matched on the end of the path):

- ``…/chat/completions``: OpenAI Chat Completions chunks (``include_usage`` style: every
  chunk carries ``"usage":null``, a trailing usage chunk, then ``data: [DONE]``);
- ``…/messages``: Anthropic Messages events (``message_start`` … ``message_stop``).

Every SSE event is its own ``transport.write`` and its own HTTP chunk (chunked transfer
encoding, keep-alive). The response headers go out at once; the first event after ``first``
seconds, the next content events ``gap`` seconds apart (on an absolute schedule, so a busy
server does not stretch a stream), the closing events right after the last content event.

Per-request settings override the CLI defaults, from (later wins) a path segment
``cfg/chunks=30,first=0.2,gap=0.03,tools=1`` anywhere before the route (so an SDK's
``base_url`` can carry it), the query string, or ``x-mock-chunks`` / ``x-mock-first`` /
``x-mock-gap`` / ``x-mock-tools`` headers. ``ascii=1`` leaves the non-ASCII words out of the
answers (the memory workload uses it: one emoji makes a Python ``str`` 4 bytes a character).

Tools mode (``tools=1``): a request whose body holds no tool result gets a tool call
(``get_weather``, arguments in three fragments, 5 events paced like text); a request holding a
tool result (OpenAI ``"tool_call_id"``, Anthropic ``"tool_result"``) gets the text answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import time
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote

_HEAD_OK = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
            b"x-request-id: req_mock\r\nconnection: keep-alive\r\n\r\n")
_LAST_CHUNK = b"0\r\n\r\n"
_WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ",",
          " and", " then", " it", " runs", " away", " again", ".", " Streaming", " tokens",
          " look", " like", " this", ":", " short", " pieces", " of", " text", " ü", " 😀", "\n")
_ASCII_WORDS = tuple(w if w.isascii() else " u" for w in _WORDS)
_MODEL = "gpt-4o-mini-2024-07-18"
_CLAUDE = "claude-sonnet-4-5-20250929"
_TOOL_ARGS = ('{"city":', ' "London",', ' "country": "UK"}')


def _frame(event: bytes) -> bytes:
    """One SSE event as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(event), event)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --- OpenAI Chat Completions ------------------------------------------------------------------


def _oa_event(choices: list[Any], **extra: Any) -> bytes:
    obj = {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion.chunk",
           "created": 1741569952, "model": _MODEL, "service_tier": "default",
           "system_fingerprint": "fp_06737a9306", "choices": choices, "usage": None}
    obj.update(extra)
    return f"data: {_dumps(obj)}\n\n".encode()


def _oa_choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]


_OA_USAGE = {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0,
                                           "rejected_prediction_tokens": 0}}


def _oa_tail(finish: str) -> list[bytes]:
    return [_oa_event(_oa_choice({}, finish)),
            _oa_event([], usage=_OA_USAGE),
            b"data: [DONE]\n\n"]


Slots = tuple[tuple[bytes, ...], ...]  # events written back to back at one moment


@lru_cache(maxsize=64)
def openai_text(chunks: int, ascii_only: bool = False) -> tuple[Slots, tuple[bytes, ...]]:
    """(paced slots, closing events) of a text answer of ``chunks`` content chunks."""
    words = _ASCII_WORDS if ascii_only else _WORDS
    slots = [(_oa_event(_oa_choice({"content": words[i % len(words)]})),)
             for i in range(chunks)]
    if slots:
        slots[0] = (_oa_event(_oa_choice({"role": "assistant", "content": "", "refusal": None})),
                    *slots[0])
    return tuple(slots), tuple(_oa_tail("stop"))


@lru_cache(maxsize=4)
def openai_tool_call() -> tuple[Slots, tuple[bytes, ...]]:
    first = _oa_choice({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
        {"index": 0, "id": "call_kZ3aLb0Wn2ZqGk8p", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}]})
    slots = [(_oa_event(first),)]
    slots += [(_oa_event(_oa_choice({"tool_calls": [{"index": 0, "function": {"arguments": a}}]})),)
              for a in _TOOL_ARGS]
    slots.append((_oa_event(_oa_choice({}, "tool_calls")),))
    return tuple(slots), tuple(_oa_tail("tool_calls")[1:])


# --- Anthropic Messages -----------------------------------------------------------------------


def _an_event(obj: dict[str, Any]) -> bytes:
    return f"event: {obj['type']}\ndata: {_dumps(obj)}\n\n".encode()


def _an_start() -> bytes:
    return _an_event({"type": "message_start", "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": _CLAUDE, "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1}}})


def _an_tail(stop_reason: str) -> list[bytes]:
    return [_an_event({"type": "content_block_stop", "index": 0}),
            _an_event({"type": "message_delta",
                       "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                       "usage": {"output_tokens": 15}}),
            _an_event({"type": "message_stop"})]


@lru_cache(maxsize=64)
def anthropic_text(chunks: int, ascii_only: bool = False) -> tuple[Slots, tuple[bytes, ...]]:
    words = _ASCII_WORDS if ascii_only else _WORDS
    slots = [(_an_event({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": words[i % len(words)]}}),)
             for i in range(chunks)]
    if slots:
        slots[0] = (_an_start(),
                    _an_event({"type": "content_block_start", "index": 0,
                               "content_block": {"type": "text", "text": ""}}),
                    _an_event({"type": "ping"}), *slots[0])
    return tuple(slots), tuple(_an_tail("end_turn"))


@lru_cache(maxsize=4)
def anthropic_tool_call() -> tuple[Slots, tuple[bytes, ...]]:
    slots: list[tuple[bytes, ...]] = [(_an_start(), _an_event({
        "type": "content_block_start", "index": 0,
        "content_block": {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
                          "name": "get_weather", "input": {}}}))]
    slots += [(_an_event({"type": "content_block_delta", "index": 0,
                          "delta": {"type": "input_json_delta", "partial_json": a}}),)
              for a in ("", *_TOOL_ARGS)]
    return tuple(slots), tuple(_an_tail("tool_use"))


# --- the server -------------------------------------------------------------------------------


class Settings:
    __slots__ = ("ascii", "chunks", "first", "gap", "tools")

    def __init__(self, chunks: int, first: float, gap: float, tools: bool,
                 ascii_only: bool = False) -> None:
        self.chunks, self.first, self.gap, self.tools = chunks, first, gap, tools
        self.ascii = ascii_only

    def updated(self, pairs: list[tuple[str, str]]) -> Settings:
        s = Settings(self.chunks, self.first, self.gap, self.tools, self.ascii)
        for raw_key, value in pairs:
            key = raw_key.lower().removeprefix("x-mock-")
            if key == "chunks":
                s.chunks = int(value)
            elif key == "first":
                s.first = float(value)
            elif key == "gap":
                s.gap = float(value)
            elif key == "tools":
                s.tools = value.lower() in ("1", "true", "yes")
            elif key == "ascii":
                s.ascii = value.lower() in ("1", "true", "yes")
        return s


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.streams_done = 0
        self.aborted = 0
        self.bad = 0
        self.open_conns = 0
        self.peak_conns = 0


STATS = Stats()


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are handled one after the other."""

    def __init__(self, defaults: Settings) -> None:
        self.defaults = defaults
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.plan: list[tuple[float, bytes]] = []
        self.pos = 0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        STATS.open_conns += 1
        STATS.peak_conns = max(STATS.peak_conns, STATS.open_conns)

    def connection_lost(self, exc: Exception | None) -> None:
        STATS.open_conns -= 1
        if self.busy:
            STATS.aborted += 1
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.busy and self.timer is None:
            self.pump()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.next_request()

    def next_request(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            self.fail(400)
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = self.buf[end + 4:]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, consumed = _dechunk(rest)
            if body is None:
                return  # wait for more
            self.buf = rest[consumed:]
        else:
            length = int(headers.get("content-length", "0") or 0)
            if len(rest) < length:
                return
            body, self.buf = rest[:length], rest[length:]
        self.handle(method, target, headers, body)

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        STATS.requests += 1
        path, _, query = target.partition("?")
        if method == "GET" and path.endswith("/stats"):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            payload = _dumps({"cpu": usage.ru_utime + usage.ru_stime, "time": time.monotonic(),
                              "maxrss_kb": usage.ru_maxrss, "requests": STATS.requests,
                              "streams_done": STATS.streams_done, "aborted": STATS.aborted,
                              "bad": STATS.bad, "open_conns": STATS.open_conns,
                              "peak_conns": STATS.peak_conns}).encode()
            self.reply(200, payload, "application/json")
            return
        if method != "POST":
            self.fail(405)
            return
        pairs: list[tuple[str, str]] = []
        for segment in unquote(path).split("/"):
            if "=" in segment:
                pairs += [tuple(kv.split("=", 1)) for kv in segment.split(",")  # type: ignore[misc]
                          if "=" in kv]
        pairs += parse_qsl(query)
        pairs += [(k, v) for k, v in headers.items() if k.startswith("x-mock-")]
        try:
            settings = self.defaults.updated(pairs)
        except ValueError:
            self.fail(400)
            return
        if path.endswith("/chat/completions"):
            tool_phase = settings.tools and b'"tool_call_id"' not in body
            slots, tail = (openai_tool_call() if tool_phase
                           else openai_text(settings.chunks, settings.ascii))
        elif path.endswith("/messages"):
            tool_phase = settings.tools and b'"tool_result"' not in body
            slots, tail = (anthropic_tool_call() if tool_phase
                           else anthropic_text(settings.chunks, settings.ascii))
        else:
            self.fail(404)
            return
        self.start_stream(settings, slots, tail)

    def start_stream(self, settings: Settings, slots: Slots, tail: tuple[bytes, ...]) -> None:
        assert self.transport is not None
        self.transport.write(_HEAD_OK)
        start = self.loop.time()
        paced = settings.first > 0 or settings.gap > 0
        plan: list[tuple[float, bytes]] = []
        for i, slot in enumerate(slots):
            due = start + settings.first + i * settings.gap if paced else 0.0
            for n, event in enumerate(slot):
                plan.append((due if n == 0 else 0.0, _frame(event)))
        plan += [(0.0, _frame(e)) for e in tail]
        plan.append((0.0, _LAST_CHUNK))
        self.plan, self.pos, self.busy = plan, 0, True
        self.pump()

    def pump(self) -> None:
        """Write the events that are due, then sleep until the next one (or until drained)."""
        self.timer = None
        transport = self.transport
        if transport is None:
            return
        plan, pos, n = self.plan, self.pos, len(self.plan)
        write = transport.write
        now = 0.0
        while pos < n:
            due, frame = plan[pos]
            if due:
                if not now:
                    now = self.loop.time()
                if due > now:
                    self.pos = pos
                    self.timer = self.loop.call_at(due, self.pump)
                    return
            write(frame)
            pos += 1
            if self.paused:
                self.pos = pos
                return
        self.pos, self.plan, self.busy = pos, [], False
        STATS.streams_done += 1
        if self.buf:
            self.next_request()

    def reply(self, status: int, payload: bytes, ctype: str = "text/plain") -> None:
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 %d X\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, ctype.encode(), len(payload), payload))
        if self.buf:
            self.next_request()

    def fail(self, status: int) -> None:
        STATS.bad += 1
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 %d X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                                 % status)
            self.transport.close()


def _dechunk(data: bytes) -> tuple[bytes | None, int]:
    """A chunked request body: (body, bytes consumed), or (None, 0) if incomplete."""
    out, pos = [], 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = data.find(b"\r\n", pos)
            return (b"".join(out), end + 2) if end >= 0 else (None, 0)
        if len(data) < pos + size + 2:
            return None, 0
        out.append(data[pos:pos + size])
        pos += size + 2


async def serve(host: str, port: int, defaults: Settings) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(defaults), host, port, backlog=4096,
                                      reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY port={bound} loop={type(loop).__module__}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=30, help="content chunks per answer")
    parser.add_argument("--first", type=float, default=0.2, help="seconds to the first event")
    parser.add_argument("--gap", type=float, default=0.03, help="seconds between content events")
    parser.add_argument("--tools", action="store_true", help="tool call first, answer after")
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    args = parser.parse_args(argv)
    nice = int(os.environ.get("PROMPTKIT_BENCH_NICE") or 0)  # set by run.py --nice
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    defaults = Settings(args.chunks, args.first, args.gap, args.tools)
    runner: Any = asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(args.host, args.port, defaults))


if __name__ == "__main__":
    main()
