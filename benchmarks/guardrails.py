"""The cost of streaming guardrails: client CPU per chunk with two output guardrails
(``content_excludes`` + ``max_length``, both held while streaming) against the plain path,
in the same run, on the same mock upstream, alternating the clients.

    python benchmarks/guardrails.py            # 5 reps of 200 streams x 200 chunks
    python benchmarks/guardrails.py --reps 2 --streams 20 --chunks 50   # a quick look

Prints the medians of the measured loop's CPU per chunk (``time.process_time`` around the
streams, after a warm-up stream; see ``clients.py``) and the overhead; ``--json`` for a file.
The target (issue 13) is at most +10 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Upstream, run_client  # noqa: E402

PAIRS = (("promptkit-async", "promptkit-async+guardrails"),
         ("promptkit-sync", "promptkit-sync+guardrails"))


def measure(reps: int, streams: int, chunks: int) -> dict[str, Any]:
    upstream = Upstream()
    samples: dict[str, list[float]] = {name: [] for pair in PAIRS for name in pair}
    try:
        for rep in range(reps):
            for plain, guarded in PAIRS:
                order = (plain, guarded) if rep % 2 == 0 else (guarded, plain)
                for name in order:
                    result = run_client(upstream, {"client": name, "mode": "cpu",
                                                   "streams": streams, "chunks": chunks})
                    if "loop_cpu" not in result:
                        raise RuntimeError(f"{name}: {result.get('failed') or result}")
                    samples[name].append(result["loop_cpu"] / (streams * chunks) * 1e6)
    finally:
        upstream.stop()
    report: dict[str, Any] = {"streams": streams, "chunks": chunks, "reps": reps,
                              "us_per_chunk": {}, "overhead": {}}
    for plain, guarded in PAIRS:
        base = statistics.median(samples[plain])
        with_guards = statistics.median(samples[guarded])
        report["us_per_chunk"][plain] = round(base, 2)
        report["us_per_chunk"][guarded] = round(with_guards, 2)
        report["overhead"][plain] = round(with_guards / base - 1, 4)
    report["samples"] = {k: [round(v, 2) for v in vs] for k, vs in samples.items()}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--json", metavar="FILE", help="also write the report here")
    args = parser.parse_args(argv)
    report = measure(args.reps, args.streams, args.chunks)
    for plain, guarded in PAIRS:
        print(f"{plain:>28}: {report['us_per_chunk'][plain]:7.2f} µs/chunk")
        print(f"{guarded:>28}: {report['us_per_chunk'][guarded]:7.2f} µs/chunk "
              f"({report['overhead'][plain]:+.1%})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
