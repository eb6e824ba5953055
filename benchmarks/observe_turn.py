"""What tracing, metrics and streaming guardrails add to one async turn, in process.

    python benchmarks/observe_turn.py [--turns 2000] [--chunks 200] [--batch 1] [--reps 3]
                                      [--only NAME] [--profile]

No sockets: the shared async transport is replaced by a fake that answers every request with
the same canned OpenAI Chat stream (``upstream.openai_text``), ``--batch`` SSE events per read
(1: the paced case, one event per network read; larger: the unpaced case). Each variant opens
a fresh conversation per turn, as ``clients.py`` does, and streams it to the end; the CPU time
(``time.process_time``) of the loop over ``--turns`` turns is reported as µs per turn and per
chunk (``noop``: tracing and metrics through OpenTelemetry's no-op providers, i.e. what
promptkit itself does for them), the median (``--best``: the fastest) of ``--reps``
alternating runs, with the difference to ``plain``. Use ``--only NAME --profile`` under py-spy
or cProfile to look at one variant.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import MODEL, PACK, USER  # noqa: E402
from clients import GUARDRAILS, _TracingOn  # noqa: E402
from upstream import openai_text  # noqa: E402

VARIANTS = ("plain", "guardrails", "tracing", "both", "noop")


class _Body:
    """One canned reply being read."""

    status = 200
    headers: dict[str, str] = {"content-type": "text/event-stream"}  # noqa: RUF012

    def __init__(self, pieces: tuple[bytes, ...]) -> None:
        self._pieces = pieces
        self._index = 0

    async def read(self) -> bytes:
        index = self._index
        if index >= len(self._pieces):
            return b""
        self._index = index + 1
        return self._pieces[index]

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        return b"".join(self._pieces[self._index:])[:limit]

    def at_eof(self) -> bool:
        return self._index >= len(self._pieces)

    def close(self) -> None:
        self._index = len(self._pieces)


class FakeTransport:
    """The async transport protocol, answering every request with the same pieces."""

    def __init__(self, pieces: tuple[bytes, ...]) -> None:
        self.pieces = pieces

    async def open(self, request: Any, *, connect_timeout: float | None) -> _Body:
        return _Body(self.pieces)

    async def aclose(self) -> None:
        return None


def canned(chunks: int, batch: int) -> tuple[bytes, ...]:
    """The stream of ``chunks`` content chunks, ``batch`` events per read."""
    slots, tail = openai_text(chunks)
    events = [event for slot in slots for event in slot] + list(tail)
    return tuple(b"".join(events[i:i + batch]) for i in range(0, len(events), batch))


def install(chunks: int, batch: int) -> None:
    """Make every conversation opened from now on read the canned stream."""
    from promptkit.providers import _select

    _select._async_transport = FakeTransport(canned(chunks, batch))  # type: ignore[assignment]


def options_of(variant: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if variant in ("guardrails", "both"):
        options["guardrails"] = GUARDRAILS
    if variant in ("tracing", "both"):
        options.update(_TracingOn().observe_options())
    if variant == "noop":  # promptkit's own side of tracing: the API's no-op providers
        from opentelemetry import metrics, trace

        options.update(tracer_provider=trace.NoOpTracerProvider(),
                       meter_provider=metrics.NoOpMeterProvider())
    return options


async def turns(pack: Any, options: dict[str, Any], n: int, chunks: int) -> float:
    """CPU seconds of ``n`` turns, a fresh conversation each."""
    import promptkit

    text = promptkit.ChunkType.TEXT
    started = time.process_time()
    for _ in range(n):
        conv = pack.open_async("chat", provider="openai", model=MODEL,
                               base_url="http://127.0.0.1:9/v1", api_key="x", **options)
        seen = 0
        async with conv.stream(USER) as stream:
            async for chunk in stream:
                if chunk.type is text:
                    seen += 1
        if seen != chunks:
            raise RuntimeError(f"{seen} text chunks, expected {chunks}")
    return time.process_time() - started


async def main_async(args: argparse.Namespace) -> None:
    import promptkit

    install(args.chunks, args.batch)
    pack = promptkit.load_pack(PACK)
    variants = [args.only] if args.only else list(VARIANTS)
    options = {v: options_of(v) for v in variants}
    for v in variants:  # warm up: imports, caches, the SDK's first instruments
        await turns(pack, options[v], 20, args.chunks)
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(args.reps):
        for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:
            gc.collect()
            samples[v].append(await turns(pack, options[v], args.turns, args.chunks))
    pick = min if args.best else statistics.median
    per_turn = {v: pick(s) / args.turns * 1e6 for v, s in samples.items()}
    base = per_turn.get("plain")
    print(f"{args.turns} turns x {args.chunks} chunks, {args.batch} event(s) per read, "
          f"{'best' if args.best else 'median'} of {args.reps}")
    if args.verbose:
        for v, s in samples.items():
            print(f"  {v:10s} " + " ".join(f"{x / args.turns * 1e6:7.1f}" for x in s))
    for v, us in per_turn.items():
        extra = "" if base is None or v == "plain" else \
            f"  +{us - base:6.1f} µs/turn  +{(us - base) / args.chunks:5.3f} µs/chunk" \
            f"  x{us / base:.3f}"
        print(f"  {v:10s} {us:8.1f} µs/turn  {us / args.chunks:6.3f} µs/chunk{extra}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=VARIANTS)
    parser.add_argument("--best", action="store_true",
                        help="the fastest rep, not the median (on a noisy machine)")
    parser.add_argument("--verbose", action="store_true", help="every rep's µs/turn")
    parser.add_argument("--profile", action="store_true", help="(with --only) one rep")
    args = parser.parse_args(argv)
    if args.profile:
        args.reps = 1
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
