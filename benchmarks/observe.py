"""What observability costs (issue 14): client CPU per streamed chunk and per turn, plain vs a
handler on every event vs OpenTelemetry tracing + metrics, at 200 streams × 200 chunks.

    python benchmarks/observe.py [--reps 3] [--streams 200] [--chunks 200] [--tools]

Each measurement is one client process of ``clients.py`` (mode ``cpu``: streams one after the
other, no pacing, a fresh conversation per stream) against the mock upstream of ``run.py``;
the clients alternate, and the medians of ``--reps`` runs are reported. ``loop`` is the CPU of
the measured loop alone; per-turn overhead is the difference of ``loop`` over the streams.
Writes ``benchmarks/results/observe.json`` and prints a markdown table.
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

import run  # noqa: E402  (benchmarks/ is not a package)

GROUPS = {
    "async": ["promptkit-async", "promptkit-async+events", "promptkit-async+tracing"],
    "sync": ["promptkit-sync", "promptkit-sync+events", "promptkit-sync+tracing"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--tools", action="store_true", help="a tool round trip per stream")
    parser.add_argument("--out", default=str(HERE / "results" / "observe.json"))
    args = parser.parse_args(argv)
    notes: dict[str, str] = {}
    names = run._available([n for group in GROUPS.values() for n in group], notes)
    upstream = run.Upstream()
    raw: dict[str, list[dict[str, Any]]] = {}
    try:
        jobs = []
        for rep in range(args.reps):
            for name in run._rotated(names, rep):
                jobs.append(("cpu", {"client": name, "mode": "cpu", "streams": args.streams,
                                     "chunks": args.chunks, "tools": args.tools}))
        run._execute(jobs, upstream, 1, raw, notes, progress=True)
    finally:
        upstream.stop()
    chunks = args.streams * args.chunks
    rows: dict[str, dict[str, float]] = {}
    for name in names:
        runs = [r for r in raw.get(f"cpu|{name}", []) if "loop_cpu" in r]
        if not runs:
            continue
        loop = statistics.median(r["loop_cpu"] for r in runs)
        rows[name] = {"loop_cpu_s": loop, "us_per_chunk": loop / chunks * 1e6,
                      "us_per_turn": loop / args.streams * 1e6,
                      "foreign_cores": statistics.median(r.get("foreign_cores", 0.0)
                                                         for r in runs)}
    lines = [f"{args.streams} streams × {args.chunks} chunks"
             f"{' with a tool round trip each' if args.tools else ''}, medians of {args.reps}",
             "", "| client | µs CPU / chunk | vs plain | overhead / turn (µs) |",
             "|---|---|---|---|"]
    for group in GROUPS.values():
        base = rows.get(group[0])
        for name in group:
            row = rows.get(name)
            if row is None or base is None:
                continue
            ratio = row["us_per_chunk"] / base["us_per_chunk"] - 1
            per_turn = row["us_per_turn"] - base["us_per_turn"]
            row.update(overhead=ratio, overhead_us_per_turn=per_turn)
            lines.append(f"| {name} | {row['us_per_chunk']:.2f} | {ratio:+.1%} | "
                         f"{per_turn:+.0f} |")
    print("\n".join(lines))
    for key, note in notes.items():
        print(f"note: {key}: {note}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "notes": notes,
                               "machine": run.machine()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
