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
    MODEL,
    PACK,
    TOOL_USER,
    USER,
    WEATHER,
    Job,
    Outcome,
    perf,
)
from clients_raw import RawAiohttp, RawAiohttpAnthropic, RawHttpClient, RawHttpx2
from clients_sdk import AnthropicSDK, OpenAISDK

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


class PromptkitAsyncGuardedTracing(_TracingOn, PromptkitAsyncGuarded):
    """Issue 16's combined case: two streaming guardrails and OpenTelemetry on together."""


class _NoopTracingOn:
    """Tracing and metrics through OpenTelemetry's no-op providers: promptkit's own observe
    work with none of the SDK's (what ``combined.py`` subtracts to show the SDK's share)."""

    _options: dict[str, Any] | None = None

    def observe_options(self) -> dict[str, Any]:
        if self._options is None:  # one pair for the process, as _TracingOn has
            from opentelemetry.metrics import NoOpMeterProvider
            from opentelemetry.trace import NoOpTracerProvider

            self._options = {"tracer_provider": NoOpTracerProvider(),
                             "meter_provider": NoOpMeterProvider()}
        return self._options


class PromptkitAsyncNoopTracing(_NoopTracingOn, PromptkitAsync):
    """Tracing with the SDK taken out."""


class PromptkitAsyncGuardedNoopTracing(_NoopTracingOn, PromptkitAsyncGuarded):
    """The combined case with the SDK taken out."""


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
    Spec("promptkit-async", PromptkitAsync, "openai"),
    Spec("promptkit-async+uvloop", PromptkitAsync, "openai", ("uvloop",), uvloop=True),
    Spec("promptkit-sync", PromptkitSync, "openai"),
    # observe/: the same clients with a handler on every event, or with OTel tracing + metrics
    Spec("promptkit-async+events", PromptkitAsyncEvents, "openai"),
    Spec("promptkit-async+tracing", PromptkitAsyncTracing, "openai",
         ("opentelemetry.sdk",)),
    Spec("promptkit-sync+events", PromptkitSyncEvents, "openai"),
    Spec("promptkit-sync+tracing", PromptkitSyncTracing, "openai", ("opentelemetry.sdk",)),
    Spec("promptkit-async+guardrails", PromptkitAsyncGuarded, "openai"),
    Spec("promptkit-sync+guardrails", PromptkitSyncGuarded, "openai"),
    Spec("promptkit-async+guardrails+tracing", PromptkitAsyncGuardedTracing, "openai",
         ("opentelemetry.sdk",)),
    Spec("promptkit-async+tracing-noop", PromptkitAsyncNoopTracing, "openai",
         ("opentelemetry",)),
    Spec("promptkit-async+guardrails+tracing-noop", PromptkitAsyncGuardedNoopTracing, "openai",
         ("opentelemetry",)),
    Spec("openai", OpenAISDK, "openai", ("openai",)),
    Spec("raw-aiohttp/anthropic", RawAiohttpAnthropic, "anthropic", ("aiohttp",)),
    Spec("promptkit-async/anthropic", PromptkitAsyncAnthropic, "anthropic"),
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
