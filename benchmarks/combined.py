"""Issue 16's combined case: two streaming output guardrails and OpenTelemetry tracing on.

    python benchmarks/combined.py [--reps 5] [--concurrency 1000]

CPU per chunk (200 streams × 200 chunks, no pacing; the loop's CPU) of ``promptkit-async``
plain, with the guardrails, with tracing + metrics, and with both, against the plain path; and
streams/s at ``--concurrency`` concurrent streams (the realistic profile) of the combined
client against raw aiohttp. Clients alternate, one fresh process per measurement, medians.
Then the OpenTelemetry SDK's own share: in place (the combined client against the same client
with OpenTelemetry's no-op providers, so promptkit's observe and guardrail code still runs) and
in a tight loop (``otel_floor.py``: only the SDK calls a traced turn makes), each as the bound it
puts on the ratios (what tracing costs even if promptkit's part were free).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from otel_floor import sdk_turn_us  # noqa: E402
from run import Upstream, run_client  # noqa: E402

BOTH = "promptkit-async+guardrails+tracing"
NO_SDK = "promptkit-async+guardrails+tracing-noop"  # the same, through no-op OTel providers
CPU_CLIENTS = ("promptkit-async", "promptkit-async+guardrails", "promptkit-async+tracing",
               "promptkit-async+tracing-noop", BOTH, NO_SDK)
CONC_CLIENTS = ("raw-aiohttp", "promptkit-async", BOTH, NO_SDK)


def _job(upstream: Upstream, client: str, **job: object) -> dict[str, object]:
    result = run_client(upstream, {"client": client, **job})
    if "failed" in result:
        raise RuntimeError(f"{client}: {result['failed']}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1000)
    args = parser.parse_args(argv)
    upstream = Upstream()
    cpu: dict[str, list[float]] = {c: [] for c in CPU_CLIENTS}
    conc: dict[str, list[float]] = {c: [] for c in CONC_CLIENTS}
    conc_cpu: list[float] = []  # the plain client's CPU seconds per stream at concurrency
    errors = 0
    try:
        for _ in range(args.reps):
            for client in CPU_CLIENTS:
                result = _job(upstream, client, mode="cpu", streams=200, chunks=200,
                              first=0.0, gap=0.0)
                cpu[client].append(float(result["loop_cpu"]) / 40_000 * 1e6)  # type: ignore[arg-type]
            for client in CONC_CLIENTS:
                result = _job(upstream, client, mode="conc",
                              concurrency=args.concurrency, rounds=1, chunks=30, first=0.2,
                              gap=0.03)
                conc[client].append(args.concurrency / float(result["wall"]))  # type: ignore[arg-type]
                if client == "promptkit-async":
                    conc_cpu.append(float(result["cpu_total"]) / args.concurrency)  # type: ignore[arg-type]
                errors += int(result["errors"])  # type: ignore[call-overload]
    finally:
        upstream.stop()
    plain = statistics.median(cpu["promptkit-async"])
    print("CPU per chunk, 200 x 200 (loop, median µs):")
    for client, values in cpu.items():
        print(f"  {client:36s} {statistics.median(values):6.2f}  "
              f"x plain {statistics.median(values) / plain:.3f}")
    floor = statistics.median(conc["raw-aiohttp"])
    print(f"{args.concurrency} concurrent streams (median streams/s):")
    for client, values in conc.items():
        print(f"  {client:36s} {statistics.median(values):6.0f}  "
              f"x raw aiohttp {statistics.median(values) / floor:.3f}")
    print(f"errors: {errors}")
    cpu_ratio = statistics.median(cpu[BOTH]) / plain
    conc_ratio = statistics.median(conc[BOTH]) / floor
    plain_ratio = statistics.median(conc["promptkit-async"]) / floor
    # the SDK's share in place: the combined client against itself with no-op providers
    sdk_cpu = statistics.median(cpu[BOTH]) / statistics.median(cpu[NO_SDK])
    sdk_conc = statistics.median(conc[BOTH]) / statistics.median(conc[NO_SDK])
    print(f"the OpenTelemetry SDK's own share, in place ({BOTH} against {NO_SDK}):")
    print(f"  CPU/chunk x{sdk_cpu:.3f}; streams/s x{sdk_conc:.3f}: were promptkit's guardrails "
          f"and observe code free, streams/s could reach {plain_ratio * sdk_conc:.3f}x raw "
          "aiohttp at most")
    sdk = sdk_turn_us()  # in this process, after the clients: nothing else runs meanwhile
    turn_cpu = plain * 200  # µs of CPU of a plain 200-chunk turn (the loop)
    stream_cpu = statistics.median(conc_cpu) * 1e6  # µs of CPU per plain 30-chunk stream
    print(f"the OpenTelemetry SDK alone (otel_floor.py): {sdk:.0f} µs CPU per traced turn")
    print(f"  = {sdk / turn_cpu:.1%} of a plain 200-chunk turn: with tracing, CPU/chunk cannot"
          f" go below {1 + sdk / turn_cpu:.3f}x plain")
    print(f"  = {sdk / stream_cpu:.1%} of a plain stream's CPU at {args.concurrency} concurrent"
          f" ({stream_cpu:.0f} µs, whole process): with tracing, throughput cannot go above "
          f"about {plain_ratio / (1 + sdk / stream_cpu):.3f}x raw aiohttp")
    print("issue 16 targets:")
    print(f"  CPU/chunk with both / plain {cpu_ratio:.3f} (<= 1.1: "
          f"{'met' if cpu_ratio <= 1.1 else 'SHORT'})")
    print(f"  streams/s with both / raw aiohttp {conc_ratio:.3f} (>= 0.9: "
          f"{'met' if conc_ratio >= 0.9 else 'SHORT'}); errors {errors} "
          f"({'met' if errors == 0 else 'SHORT'})")


if __name__ == "__main__":
    main()
