"""The raw-HTTP floors the benchmarks compare against: the HTTP library, an SSE split on
``b"\n\n"`` and ``json.loads``, nothing else (aiohttp, httpx2, http.client), for the OpenAI
Chat and Anthropic streams. Used by ``clients.py``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from bench_common import (
    CLAUDE,
    H_ANTHROPIC,
    H_OPENAI,
    MODEL,
    SYSTEM,
    TOOL_USER,
    TOOLS_ANTHROPIC,
    TOOLS_OPENAI,
    USER,
    WEATHER,
    Job,
    Outcome,
    perf,
)

# --- the floors: SSE split on b"\n\n" + json.loads, nothing else -----------------------------


class OpenAIFloor:
    """Counts text deltas; collects one tool call's arguments. The floor's whole parser."""

    __slots__ = ("args", "buf", "call_id", "done", "out", "started")

    def __init__(self, out: Outcome, started: float) -> None:
        self.buf = b""
        self.done = False
        self.out = out
        self.started = started
        self.call_id = ""
        self.args: list[str] = []

    def feed(self, data: bytes) -> None:
        parts = (self.buf + data).split(b"\n\n") if self.buf else data.split(b"\n\n")
        self.buf = parts.pop()
        for event in parts:
            if event[:6] != b"data: ":
                continue
            payload = event[6:]
            if payload == b"[DONE]":
                self.done = True
                return
            choices = json.loads(payload)["choices"]
            if choices:
                delta = choices[0]["delta"]
                if delta.get("content"):
                    out = self.out
                    if out.ttft is None:
                        out.ttft = perf() - self.started
                    out.n += 1
                elif delta.get("tool_calls"):
                    call = delta["tool_calls"][0]
                    self.call_id = call.get("id") or self.call_id
                    self.args.append(call["function"].get("arguments") or "")


class AnthropicFloor:
    __slots__ = ("args", "buf", "call_id", "done", "out", "started")

    def __init__(self, out: Outcome, started: float) -> None:
        self.buf = b""
        self.done = False
        self.out = out
        self.started = started
        self.call_id = ""
        self.args: list[str] = []

    def feed(self, data: bytes) -> None:
        parts = (self.buf + data).split(b"\n\n") if self.buf else data.split(b"\n\n")
        self.buf = parts.pop()
        for event in parts:
            start = event.find(b"data: ")
            if start < 0:
                continue
            obj = json.loads(event[start + 6:])
            kind = obj["type"]
            if kind == "content_block_delta":
                delta = obj["delta"]
                if delta["type"] == "text_delta":
                    out = self.out
                    if out.ttft is None:
                        out.ttft = perf() - self.started
                    out.n += 1
                else:
                    self.args.append(delta.get("partial_json", ""))
            elif kind == "content_block_start" and obj["content_block"]["type"] == "tool_use":
                self.call_id = obj["content_block"]["id"]
            elif kind == "message_stop":
                self.done = True


def openai_body(tools: bool, call_id: str = "", args: str = "") -> bytes:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": TOOL_USER if tools else USER}]
    if call_id:
        messages += [{"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "get_weather", "arguments": args}}]},
            {"role": "tool", "tool_call_id": call_id, "content": json.dumps(WEATHER)}]
    body: dict[str, Any] = {"model": MODEL, "messages": messages, "stream": True,
                            "stream_options": {"include_usage": True}}
    if tools:
        body["tools"] = TOOLS_OPENAI
    return json.dumps(body).encode()


def anthropic_body(tools: bool, call_id: str = "", args: str = "") -> bytes:
    messages: list[dict[str, Any]] = [{"role": "user", "content": TOOL_USER if tools else USER}]
    if call_id:
        messages += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": call_id,
                                               "name": "get_weather", "input": json.loads(args)}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id,
                                          "content": json.dumps(WEATHER)}]}]
    body: dict[str, Any] = {"model": CLAUDE, "max_tokens": 1024, "system": SYSTEM,
                            "messages": messages, "stream": True}
    if tools:
        body["tools"] = TOOLS_ANTHROPIC
    return json.dumps(body).encode()


_DIALECTS: dict[str, tuple[str, dict[str, str], Any, Callable[..., bytes]]] = {
    "openai": ("/v1/chat/completions", H_OPENAI, OpenAIFloor, openai_body),
    "anthropic": ("/v1/messages", H_ANTHROPIC, AnthropicFloor, anthropic_body),
}


class RawAiohttp:
    """aiohttp + split + json.loads: the async floor."""

    dialect = "openai"

    async def setup(self, job: Job) -> None:
        import aiohttp

        self.route, self.headers, self.floor, self.body = _DIALECTS[self.dialect]
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None))

    async def stream(self, prefix: str, tools: bool) -> Outcome:
        out = Outcome()
        started = perf()
        url = prefix + self.route
        floor = await self._one(url, self.body(tools), out, started)
        if tools:
            await self._one(url, self.body(True, floor.call_id, "".join(floor.args)), out, started)
        return out

    async def _one(self, url: str, body: bytes, out: Outcome, started: float) -> Any:
        floor = self.floor(out, started)
        async with self.session.post(url, data=body, headers=self.headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            read = resp.content.readany
            while not floor.done:
                data = await read()
                if not data:
                    break
                floor.feed(data)
        return floor

    async def close(self) -> None:
        await self.session.close()


class RawAiohttpAnthropic(RawAiohttp):
    dialect = "anthropic"


class RawHttpx2:
    """httpx2 + split + json.loads: the floor of the stack the official SDKs sit on."""

    dialect = "openai"

    async def setup(self, job: Job) -> None:
        import httpx2

        self.route, self.headers, self.floor, self.body = _DIALECTS[self.dialect]
        self.client = httpx2.AsyncClient(
            timeout=None, limits=httpx2.Limits(max_connections=None,
                                               max_keepalive_connections=None))

    async def stream(self, prefix: str, tools: bool) -> Outcome:
        out = Outcome()
        started = perf()
        url = prefix + self.route
        floor = await self._one(url, self.body(tools), out, started)
        if tools:
            await self._one(url, self.body(True, floor.call_id, "".join(floor.args)), out, started)
        return out

    async def _one(self, url: str, body: bytes, out: Outcome, started: float) -> Any:
        floor = self.floor(out, started)
        async with self.client.stream("POST", url, content=body, headers=self.headers) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            async for data in resp.aiter_raw():
                floor.feed(data)
                if floor.done:
                    break
        return floor

    async def close(self) -> None:
        await self.client.aclose()


class RawHttpClient:
    """Blocking floor: stdlib http.client (one keep-alive connection per thread) + split +
    json.loads; ``read1`` returns one HTTP chunk per call."""

    dialect = "openai"
    sync = True

    def setup(self, job: Job) -> None:
        from urllib.parse import urlsplit

        self.route, self.headers, self.floor, self.body = _DIALECTS[self.dialect]
        parts = urlsplit(job.base)
        self.host, self.port = parts.hostname, parts.port
        self.local = threading.local()

    def _conn(self) -> Any:
        import http.client

        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port)
        return conn

    def stream(self, prefix: str, tools: bool) -> Outcome:
        out = Outcome()
        started = perf()
        path = prefix.split("/", 3)[3] if prefix.count("/") >= 3 else ""
        target = "/" + path + self.route
        floor = self._one(target, self.body(tools), out, started)
        if tools:
            self._one(target, self.body(True, floor.call_id, "".join(floor.args)), out, started)
        return out

    def _one(self, target: str, body: bytes, out: Outcome, started: float) -> Any:
        floor = self.floor(out, started)
        conn = self._conn()
        conn.request("POST", target, body, self.headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        read1 = resp.read1
        while not floor.done:
            data = read1(65536)
            if not data:
                break
            floor.feed(data)
        resp.read()  # the terminating chunk, so the connection is reusable
        return floor

    def close(self) -> None:
        pass
