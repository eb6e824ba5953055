"""The cost of streaming guardrails: client CPU per chunk with two output guardrails
(``content_excludes`` + ``max_length``, both held while streaming) against the plain path,
in the same run, on the same mock upstream, alternating the clients.

    python benchmarks/guardrails.py            # 5 reps of 200 streams x 200 chunks
    python benchmarks/guardrails.py --reps 2 --streams 20 --chunks 50   # a quick look

Prints the measured loop's CPU per chunk (``time.process_time`` around the streams, after a
warm-up stream; see ``clients.py``): the best of the repetitions (other processes on the
machine can only add to a CPU time, so the minimum is the least disturbed figure) and the
median, with the overhead of each; ``--json`` for a file. The target (issue 13) is at most
+10 %.
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
    report: dict[str, Any] = {"streams": streams, "chunks": chunks, "reps": reps}
    for label, pick in (("best", min), ("median", statistics.median)):
        per_chunk: dict[str, float] = {}
        overhead: dict[str, float] = {}
        for plain, guarded in PAIRS:
            base, with_guards = pick(samples[plain]), pick(samples[guarded])
            per_chunk[plain] = round(base, 2)
            per_chunk[guarded] = round(with_guards, 2)
            overhead[plain] = round(with_guards / base - 1, 4)
        report[label] = {"us_per_chunk": per_chunk, "overhead": overhead}
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
    best, median = report["best"], report["median"]
    print(f"{'client':>28}  {'best µs/chunk':>22}  {'median µs/chunk':>22}")
    for plain, guarded in PAIRS:
        for name in (plain, guarded):
            extra = name == guarded
            cells = [f"{part['us_per_chunk'][name]:7.2f}"
                     + (f" ({part['overhead'][plain]:+.1%})" if extra else " " * 9)
                     for part in (best, median)]
            print(f"{name:>28}  {cells[0]:>22}  {cells[1]:>22}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
