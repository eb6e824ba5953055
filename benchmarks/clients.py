"""The benchmark clients: one small class per client, and the measuring loop around them.

Run by ``run.py``, one subprocess per measurement, so that each client's CPU time and peak RSS
are its own:

    python benchmarks/clients.py '{"client": "promptkit-async", "mode": "cpu", ...}'

prints one JSON line. Modes: ``cpu`` (streams one after the other after a warm-up stream;
``time.process_time`` around the loop, and the whole process's rusage), ``idle`` (the same
set-up, no stream: what ``cpu`` minus ``idle`` subtracts), ``conc`` (``concurrency`` workers,
each streaming ``rounds`` streams back to back; asyncio tasks, or threads for sync clients).

Every client asks for the same stream (system + user message, ``include_usage`` for OpenAI),
counts the TEXT pieces it receives and, in tools mode, answers the tool call with a second
request carrying the tool result. A stream whose text count differs from the server's is an
error. ``ttft`` is from the start of the stream's first request to its first answer text.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from bench_common import (
    CLAUDE,
    H_ANTHROPIC,
    H_OPENAI,
    MODEL,
    PACK,
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
from clients_sdk import AnthropicSDK, OpenAISDK

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


# --- promptkit ---------------------------------------------------------------------------------


async def _async_weather(args: dict[str, Any]) -> dict[str, Any]:
    return WEATHER


def _sync_weather(args: dict[str, Any]) -> dict[str, Any]:
    return WEATHER


# Two output guardrails that hold while streaming (banned words, a length limit), for
# benchmarks/guardrails.py: the words never occur in the upstream's text, so every chunk
# still reaches the client and the counts check as usual.
GUARDRAILS = ({"type": "content_excludes", "params": {"words": ["forbidden", "classified"]}},
              {"type": "max_length", "params": {"max_characters": 100_000_000}})


class PromptkitAsync:
    """A fresh ``pack.open_async(...)`` conversation per stream (as the issue's harness does)."""

    provider = "openai"
    suffix = "/v1"
    options: dict[str, Any] = {}  # noqa: RUF012  (read only)

    async def setup(self, job: Job) -> None:
        import promptkit

        self.pack = promptkit.load_pack(PACK)
        self.text = promptkit.ChunkType.TEXT
        self.error = promptkit.ChunkType.ERROR
        if self.provider != "openai":
            conv = self.pack.open_async("chat", provider=self.provider,
                                        base_url=job.base + self.suffix, api_key="x")
            if type(conv._binding.dialect).__name__ != "AnthropicDialect":
                raise Skip("promptkit's anthropic preset does not use a native Anthropic "
                           "dialect yet (it reaches the OpenAI-compatible endpoint)")

    async def stream(self, prefix: str, tools: bool) -> Outcome:
        out = Outcome()
        conv = self.pack.open_async("tools" if tools else "chat", provider=self.provider,
                                    model=MODEL if self.provider == "openai" else CLAUDE,
                                    base_url=prefix + self.suffix, api_key="x",
                                    **self.observe_options(), **self.options)
        self.observe(conv)
        if tools:
            conv.on_tool("get_weather", _async_weather)
        text, error = self.text, self.error
        started = perf()
        async with conv.stream(TOOL_USER if tools else USER) as stream:
            async for chunk in stream:
                kind = chunk.type
                if kind is text:
                    if out.ttft is None:
                        out.ttft = perf() - started
                    out.n += 1
                elif kind is error:
                    raise chunk.error  # type: ignore[misc]
        return out

    async def close(self) -> None:
        pass

    def observe_options(self) -> dict[str, Any]:
        return {}

    def observe(self, conv: Any) -> None:
        pass


class _EventsOn:
    """A handler for every event (observe/): what events cost when someone listens."""

    def observe(self, conv: Any) -> None:
        conv.on("*", _ignore_event)


class _TracingOn:
    """OpenTelemetry SDK tracing and metrics as an application would set them up: a batch
    span processor (its exporter drops the spans) and a metric reader."""

    _options: dict[str, Any] | None = None

    def observe_options(self) -> dict[str, Any]:
        if self._options is None:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                SpanExporter,
                SpanExportResult,
            )

            class Drop(SpanExporter):
                def export(self, spans: Any) -> SpanExportResult:
                    return SpanExportResult.SUCCESS

            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
            meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            self._options = {"tracer_provider": tracer_provider,
                             "meter_provider": meter_provider}
        return self._options


def _ignore_event(event: Any) -> None:
    pass


class PromptkitAsyncEvents(_EventsOn, PromptkitAsync):
    pass


class PromptkitAsyncTracing(_TracingOn, PromptkitAsync):
    pass


class PromptkitAsyncAnthropic(PromptkitAsync):
    provider = "anthropic"
    suffix = ""


class PromptkitAsyncGuarded(PromptkitAsync):
    options = {"guardrails": GUARDRAILS}  # noqa: RUF012


class PromptkitSync:
    """A fresh ``pack.open(...)`` conversation per stream; threads for concurrency."""

    sync = True
    options: dict[str, Any] = {}  # noqa: RUF012  (read only)

    def setup(self, job: Job) -> None:
        import promptkit

        self.pack = promptkit.load_pack(PACK)
        self.text = promptkit.ChunkType.TEXT
        self.error = promptkit.ChunkType.ERROR

    def stream(self, prefix: str, tools: bool) -> Outcome:
        out = Outcome()
        conv = self.pack.open("tools" if tools else "chat", provider="openai", model=MODEL,
                              base_url=prefix + "/v1", api_key="x", **self.observe_options(),
                              **self.options)
        self.observe(conv)
        if tools:
            conv.on_tool("get_weather", _sync_weather)
        text, error = self.text, self.error
        started = perf()
        with conv.stream(TOOL_USER if tools else USER) as stream:
            for chunk in stream:
                kind = chunk.type
                if kind is text:
                    if out.ttft is None:
                        out.ttft = perf() - started
                    out.n += 1
                elif kind is error:
                    raise chunk.error  # type: ignore[misc]
        return out

    def close(self) -> None:
        pass

    def observe_options(self) -> dict[str, Any]:
        return {}

    def observe(self, conv: Any) -> None:
        pass


class PromptkitSyncEvents(_EventsOn, PromptkitSync):
    pass


class PromptkitSyncTracing(_TracingOn, PromptkitSync):
    pass


class PromptkitSyncGuarded(PromptkitSync):
    options = {"guardrails": GUARDRAILS}  # noqa: RUF012


# --- the official SDKs ---------------------------------------------------------------------------


class Skip(Exception):
    """This client cannot run here (a package or a feature is missing)."""


@dataclass(frozen=True)
class Spec:
    name: str
    factory: Callable[[], Any]
    endpoint: str  # "openai" | "anthropic": the dialect it streams
    requires: tuple[str, ...] = ()
    uvloop: bool = False
    note: str = ""


CLIENTS: dict[str, Spec] = {s.name: s for s in (
    Spec("raw-aiohttp", RawAiohttp, "openai", ("aiohttp",)),
    Spec("raw-aiohttp+uvloop", RawAiohttp, "openai", ("aiohttp", "uvloop"), uvloop=True),
    Spec("raw-httpx2", RawHttpx2, "openai", ("httpx2",)),
    Spec("raw-http.client", RawHttpClient, "openai"),
    Spec("promptkit-async", PromptkitAsync, "openai", ("aiohttp",)),
    Spec("promptkit-async+uvloop", PromptkitAsync, "openai", ("aiohttp", "uvloop"), uvloop=True),
    Spec("promptkit-sync", PromptkitSync, "openai"),
    # observe/: the same clients with a handler on every event, or with OTel tracing + metrics
    Spec("promptkit-async+events", PromptkitAsyncEvents, "openai", ("aiohttp",)),
    Spec("promptkit-async+tracing", PromptkitAsyncTracing, "openai",
         ("aiohttp", "opentelemetry.sdk")),
    Spec("promptkit-sync+events", PromptkitSyncEvents, "openai"),
    Spec("promptkit-sync+tracing", PromptkitSyncTracing, "openai", ("opentelemetry.sdk",)),
    Spec("promptkit-async+guardrails", PromptkitAsyncGuarded, "openai", ("aiohttp",)),
    Spec("promptkit-sync+guardrails", PromptkitSyncGuarded, "openai"),
    Spec("openai", OpenAISDK, "openai", ("openai",)),
    Spec("raw-aiohttp/anthropic", RawAiohttpAnthropic, "anthropic", ("aiohttp",)),
    Spec("promptkit-async/anthropic", PromptkitAsyncAnthropic, "anthropic", ("aiohttp",)),
    Spec("anthropic", AnthropicSDK, "anthropic", ("anthropic",)),
)}


def missing(spec: Spec) -> list[str]:
    return [name for name in spec.requires if find_spec(name) is None]


# --- the measuring loop --------------------------------------------------------------------------


def _rusage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _check(out: Outcome, job: Job, chunks: int) -> None:
    if out.n != chunks:
        raise RuntimeError(f"got {out.n} text chunks, expected {chunks}")


async def _run_async(client: Any, job: Job) -> dict[str, Any]:
    await client.setup(job)
    result: dict[str, Any] = {}
    try:
        if job.mode == "idle":
            return result
        warm = job.prefix(chunks=5, first=0.0, gap=0.0)
        _check(await client.stream(warm, job.tools), job, 5)  # lazy imports, first connection
        prefix = job.prefix()
        if job.mode == "cpu":

            async def measured_loop() -> None:  # the name marks its samples in profile.py
                for _ in range(job.streams):
                    _check(await client.stream(prefix, job.tools), job, job.chunks)

            gc.collect()
            t0, c0 = perf(), time.process_time()
            await measured_loop()
            result.update(loop_cpu=time.process_time() - c0, wall=perf() - t0)
            return result
        ttfts: list[float] = []
        errors: list[str] = []

        async def measured_worker() -> None:
            for _ in range(job.rounds):
                try:
                    out = await client.stream(prefix, job.tools)
                    _check(out, job, job.chunks)
                    ttfts.append(out.ttft or 0.0)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

        t0, c0 = perf(), time.process_time()
        await asyncio.gather(*(measured_worker() for _ in range(job.concurrency)))
        result.update(loop_cpu=time.process_time() - c0, wall=perf() - t0, ttfts=ttfts,
                      errors=len(errors), error_samples=sorted(set(errors))[:3])
        return result
    finally:
        await client.close()


def _run_sync(client: Any, job: Job) -> dict[str, Any]:
    client.setup(job)
    result: dict[str, Any] = {}
    try:
        if job.mode == "idle":
            return result
        warm = job.prefix(chunks=5, first=0.0, gap=0.0)
        _check(client.stream(warm, job.tools), job, 5)
        prefix = job.prefix()
        if job.mode == "cpu":

            def measured_loop() -> None:
                for _ in range(job.streams):
                    _check(client.stream(prefix, job.tools), job, job.chunks)

            gc.collect()
            t0, c0 = perf(), time.process_time()
            measured_loop()
            result.update(loop_cpu=time.process_time() - c0, wall=perf() - t0)
            return result
        ttfts: list[float] = []
        errors: list[str] = []
        barrier = threading.Barrier(job.concurrency + 1)

        def measured_worker() -> None:
            barrier.wait()
            for _ in range(job.rounds):
                try:
                    out = client.stream(prefix, job.tools)
                    _check(out, job, job.chunks)
                    ttfts.append(out.ttft or 0.0)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

        threads = [threading.Thread(target=measured_worker, daemon=True)
                   for _ in range(job.concurrency)]
        for thread in threads:
            thread.start()
        t0, c0 = perf(), time.process_time()
        barrier.wait()
        for thread in threads:
            thread.join()
        result.update(loop_cpu=time.process_time() - c0, wall=perf() - t0, ttfts=ttfts,
                      errors=len(errors), error_samples=sorted(set(errors))[:3])
        return result
    finally:
        client.close()


def _run(spec: Spec, client: Any, job: Job) -> dict[str, Any]:
    if getattr(client, "sync", False):
        return _run_sync(client, job)
    if spec.uvloop:
        import uvloop

        return uvloop.run(_run_async(client, job))  # type: ignore[no-any-return]
    return asyncio.run(_run_async(client, job))


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job``; mode ``check`` (``--quick``) runs cpu, conc and tools in one process."""
    spec = CLIENTS[job.client]
    absent = missing(spec)
    if absent:
        return {"skipped": f"not installed: {', '.join(absent)}"}
    client = spec.factory()
    try:
        if job.mode != "check":
            result = _run(spec, client, job)
            cpu, maxrss = _rusage()
            result.update(cpu_total=cpu, maxrss_kb=maxrss)
            return result
        result = {}
        for name, mode, tools in (("cpu", "cpu", False), ("conc", "conc", False),
                                  ("tools", "conc", True)):
            sub = Job(**{**job.__dict__, "mode": mode, "tools": tools})
            if mode == "cpu":
                sub.first = sub.gap = 0.0
            result[name] = _run(spec, client, sub)
            cpu, maxrss = _rusage()
            result[name].update(cpu_total=cpu, maxrss_kb=maxrss)
        return result
    except Skip as skip:
        return {"skipped": str(skip)}


def apply_nice() -> None:
    """Run at the niceness ``run.py --nice`` asked for (PROMPTKIT_BENCH_NICE), if allowed."""
    nice = int(os.environ.get("PROMPTKIT_BENCH_NICE") or 0)
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)


def main() -> None:
    apply_nice()
    warnings.simplefilter("ignore")  # SDK deprecation notices about the mock's model names
    job = Job(**json.loads(sys.argv[1]))
    result = run_job(job)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (1,000 idle threads, SDK finalizers)


if __name__ == "__main__":
    main()
