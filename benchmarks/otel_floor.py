"""What the OpenTelemetry SDK alone costs per traced turn: the floor under tracing's overhead.

    python benchmarks/otel_floor.py [--turns 20000] [--reps 5]

Makes exactly the SDK calls one traced plain turn of promptkit makes (``observe/otel.py``,
``observe/watch.py``): the ``invoke_agent`` span with its 8 start attributes, the ``chat`` client
span under it with 5, the chat span's 6 closing attributes and end, one duration and two token
histogram records (attribute sets built once, as promptkit shares them), the turn span's 5
closing attributes and end; with the providers the benchmark clients use (``clients.py``: a
``BatchSpanProcessor`` whose exporter drops spans, an in-memory metric reader). No promptkit
code runs: µs per turn (``time.process_time``, the median of ``--reps``) is what any
instrumentation emitting these spans and metrics pays, so promptkit's tracing overhead cannot
go below it. ``combined.py`` prints it next to its ratios.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from clients import _TracingOn  # noqa: E402


def sdk_turn_us(turns: int = 20_000, reps: int = 5) -> float:
    """Median µs of CPU per turn for the SDK calls of one traced turn."""
    from opentelemetry import trace

    options = _TracingOn().observe_options()
    tracer = options["tracer_provider"].get_tracer("promptkit", "0")
    meter = options["meter_provider"].get_meter("promptkit", "0")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    start: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "chat",
        "gen_ai.conversation.id": "a05ddfcc0a6f4a59b297bc7fc0afa813",
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "promptkit.pack.id": "benchmarks", "promptkit.pack.version": "1.0.0",
        "promptkit.prompt.name": "chat"}
    call: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "server.address": "127.0.0.1",
        "server.port": 8080}
    metric = {**call, "gen_ai.response.model": "gpt-4o-mini-2024-07-18"}
    metric_in = {**metric, "gen_ai.token.type": "input"}
    metric_out = {**metric, "gen_ai.token.type": "output"}
    internal, client = trace.SpanKind.INTERNAL, trace.SpanKind.CLIENT

    def one() -> None:
        turn = tracer.start_span("invoke_agent chat", context=None, kind=internal,
                                 attributes=dict(start), start_time=time.time_ns())
        chat = tracer.start_span("chat gpt-4o-mini", context=trace.set_span_in_context(turn),
                                 kind=client, attributes=dict(call), start_time=time.time_ns())
        chat.set_attributes({"gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                             "gen_ai.response.finish_reasons": ("stop",),
                             "gen_ai.usage.input_tokens": 19,
                             "gen_ai.usage.output_tokens": 200,
                             "gen_ai.response.time_to_first_chunk": 0.0012})
        chat.end()
        duration.record(0.25, metric)
        tokens.record(19, metric_in)
        tokens.record(200, metric_out)
        turn.set_attributes({"gen_ai.usage.input_tokens": 19, "gen_ai.usage.output_tokens": 200,
                             "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                             "gen_ai.response.finish_reasons": ("stop",),
                             "promptkit.time_to_first_token": 0.0015})
        turn.end()

    for _ in range(1000):  # warm up
        one()
    runs = []
    for _ in range(reps):
        gc.collect()
        began = time.process_time()
        for _ in range(turns):
            one()
        runs.append((time.process_time() - began) / turns * 1e6)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"OpenTelemetry SDK calls of one traced turn: {sdk_turn_us(args.turns, args.reps):.1f}"
          " µs CPU per turn")


if __name__ == "__main__":
    main()
