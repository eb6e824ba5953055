"""Per-turn cost against history length: one long conversation per store, offline mock provider.

    python benchmarks/long_conversation.py [--turns 2000] [--stores memory,sqlite,redis]
                                           [--out docs/long-conversation.png]

Runs ``--turns`` turns in one conversation per store (the blocking driver, the in-process mock
provider: no network, so what is measured is promptkit plus the mock's own parsing of the
request) and prints, per store, the mean turn time over windows of history length and the
ratio the long-conversation issue sets (turns 381–400 against turns 1–20, target ≤ 1.5×). The
request itself grows with the history (every turn sends it all); the rest must not. Each
store is reported twice: the whole turn, and the turn less the mock server's time (its
parsing of the growing request is a server's work, done elsewhere with a real one). Redis
needs ``redis-server`` on the PATH (started on a free loopback port, stopped at the end).
Writes a plot with ``--out`` when matplotlib is installed (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACK = ROOT / "examples" / "hello.pack.json"


@contextmanager
def _store(kind: str, directory: Path) -> Iterator[Any]:
    from promptkit.stores import MemoryStore, RedisStore, SQLiteStore

    if kind == "memory":
        yield MemoryStore()
    elif kind == "sqlite":
        store = SQLiteStore(directory / "long.db")
        yield store
        store.close()
    elif kind == "redis":
        sys.path.insert(0, str(ROOT / "tests"))
        from redis_server import RedisServer

        (directory / "redis").mkdir()
        server = RedisServer(directory / "redis")
        server.start()
        try:
            with RedisStore(server.url, prefix="long") as store:
                yield store
        finally:
            server.stop()
    else:
        raise SystemExit(f"unknown store {kind!r}")


def measure(kind: str, turns: int) -> tuple[list[float], list[float]]:
    """Milliseconds per turn, in order: the whole turn, and the turn less the time the mock
    server spent parsing and answering the request (what a real server does elsewhere)."""
    import promptkit

    pack = promptkit.load_pack(PACK)
    with tempfile.TemporaryDirectory() as tmp, _store(kind, Path(tmp)) as store:
        conv = pack.open("chat", provider="mock", store=store, variables={"user_name": "Ada"})
        transport = conv._binding.options["transport"]
        server = transport.handler
        spent = [0.0]

        def timed(request: Any) -> Any:
            started = time.perf_counter()
            try:
                return server(request)
            finally:
                spent[0] += time.perf_counter() - started

        transport.handler = timed
        conv.send("warm up")
        times, client = [], []
        gc.collect()
        for n in range(turns):
            transport.requests.clear()  # the mock transport records requests; not ours to keep
            spent[0] = 0.0
            started = time.perf_counter()
            conv.send(f"Question {n}: what is the weather like in London today?")
            elapsed = time.perf_counter() - started
            times.append(elapsed * 1000)
            client.append((elapsed - spent[0]) * 1000)
        conv.close()
    return times, client


def summarise(times: list[float]) -> dict[str, Any]:
    first = statistics.mean(times[:20])
    window = times[380:400] if len(times) >= 400 else times[-20:]
    last = statistics.mean(window)
    curve = {str(n): round(statistics.mean(times[max(0, n - 20):n]), 3)
             for n in (20, 100, 200, 400, 800, 1200, 1600, 2000) if n <= len(times)}
    return {"turns_1_20_ms": round(first, 3), "turns_381_400_ms": round(last, 3),
            "ratio": round(last / first, 2), "curve_ms": curve}


def plot(results: dict[str, list[float]], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plot: matplotlib is not installed)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for kind, times in results.items():
        step = 20
        xs = list(range(step, len(times) + 1, step))
        ys = [statistics.mean(times[x - step:x]) for x in xs]
        ax.plot([x * 2 for x in xs], ys, label=kind)  # a turn adds two messages
    ax.set_xlabel("messages in the history")
    ax.set_ylabel("ms per turn (mean of 20)")
    ax.set_title("promptkit: per-turn time against history length\n"
                 "(offline mock provider; the mock server's own time left out)")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"plot: {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--stores", default="memory,sqlite,redis")
    parser.add_argument("--out", type=Path, default=None, help="write the plot here")
    args = parser.parse_args(argv)
    measured = {kind: measure(kind, args.turns) for kind in args.stores.split(",")}
    print(json.dumps({kind: {"whole_turn": summarise(whole), "less_mock_server": summarise(own)}
                      for kind, (whole, own) in measured.items()}, indent=2))
    if args.out is not None:
        plot({f"{kind}": own for kind, (_, own) in measured.items()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
