"""Workload (d): what an idle conversation holds beyond its messages' text, at scale.

    python benchmarks/memory.py BASE_URL [--conversations 10000 --sample 100 --turns 20
                                          --chunks 30 --top 0]

For each driver, from one loaded pack against the mock upstream (``upstream.py``):

1. *At scale*: opens ``--conversations`` conversations and runs ``--turns`` turns in each,
   untraced (10,000 conversations take a few minutes, not the hour ``tracemalloc`` would make
   of them), and reads the bytes in use before and after them as the allocators count them:
   CPython's small-block allocator (``sys._debugmallocstats``: blocks rounded up to 16 bytes)
   plus glibc's ``malloc`` for larger blocks (``mallinfo2``, chunk headers included). That is
   what the process really pays; left out where those cannot be read.
2. *Traced*, with those conversations still alive: ``tracemalloc`` over ``--sample`` more
   conversations, empty and then after their turns: the bytes they hold (as Python asked for
   them) and the source lines that allocated them, grouped by the innermost promptkit frame
   (``held_by``; ``--top N`` prints the largest N with their source line to stderr). Blocks
   that CPython's free lists hand on keep their first traceback (a store's dict-keys table
   shows up at the ``open`` line), and the async figures include the cancelled watchdog
   timers asyncio keeps in a loop's heap until it purges them (at most about 100 a loop, so
   they vanish at scale).

Both are per conversation, after ``gc.collect()``, against the UTF-8 bytes of its messages'
text (ASCII replies). Imports, the pack, the shared transport and its pooled connection are
allocated by a warm-up conversation first, so they are not counted. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import linecache
import os
import re
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACK = HERE / "bench.pack.json"
FRAMES = 6  # enough to reach a promptkit frame from inside the standard library


def _user(i: int) -> str:
    return (f"Question {i}: what do you think about the weather in London today, and should "
            "I take an umbrella?")


def _text_bytes(conv: Any) -> int:
    return sum(len(m.text.encode()) for m in conv.messages)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _allocator() -> Callable[[], int] | None:
    """The bytes in use, as the allocators count them (CPython's pymalloc for small blocks,
    glibc's malloc for the rest), or None where that cannot be read."""
    debug = getattr(sys, "_debugmallocstats", None)
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    if debug is None:
        return None
    mallinfo2.restype = _MallInfo2

    def small() -> int:
        with tempfile.TemporaryFile() as tmp:  # it writes to the C-level stderr
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(tmp.fileno(), 2)
            try:
                debug()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            found = re.search(rb"# bytes in allocated blocks\s*=\s*([\d,]+)", tmp.read())
        return int(found.group(1).replace(b",", b"")) if found else 0

    def in_use() -> int:
        info = mallinfo2()
        return small() + int(info.uordblks + info.hblkhd)

    return in_use


class Driver:
    """Opening conversations and running their turns with one driver (the async one on an
    event loop of its own, kept for the whole measurement: the shared HTTP session is bound to
    it)."""

    def __init__(self, pack: Any, base: str, name: str) -> None:
        self.name = name
        self.options = {"provider": "openai", "model": "gpt-4o-mini", "base_url": base,
                        "api_key": "x"}
        self.pack = pack
        self.loop = asyncio.new_event_loop() if name == "async" else None

    def fill(self, count: int, turns: int) -> list[Any]:
        """``count`` new conversations, each after ``turns`` turns."""
        if self.loop is not None:
            return self.loop.run_until_complete(self._fill_async(count, turns))
        convs = []
        for _ in range(count):
            conv = self.pack.open("chat", **self.options)
            for i in range(turns):
                conv.send(_user(i))
            convs.append(conv)
        return convs

    async def _fill_async(self, count: int, turns: int) -> list[Any]:
        convs = []
        for _ in range(count):
            conv = self.pack.open_async("chat", **self.options)
            for i in range(turns):
                await conv.send(_user(i))
            convs.append(conv)
        return convs

    def close(self) -> None:
        if self.loop is not None:  # shutting the generators down closes the HTTP session
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


def _site(trace: tracemalloc.Traceback) -> str:
    """The innermost promptkit (else benchmark) frame of an allocation, as ``file:line``."""
    for frame in reversed(trace):
        name = frame.filename.replace("\\", "/")
        if "/promptkit/" in name and "/benchmarks/" not in name:
            return f"{name.rsplit('/promptkit/', 1)[1]}:{frame.lineno}"
    frame = trace[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _held_by(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, count: int
             ) -> list[tuple[str, float]]:
    sites: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        site = _site(stat.traceback)
        sites[site] = sites.get(site, 0) + stat.size_diff
    ranked = sorted(sites.items(), key=lambda kv: -abs(kv[1]))
    return [(site, round(size / count, 1)) for site, size in ranked if abs(size) >= count]


def _traced(driver: Driver, sample: int, turns: int
            ) -> tuple[float, float, list[Any], list[tuple[str, float]]]:
    """Bytes held per empty conversation and per conversation after its turns (tracemalloc),
    the conversations, and what held them."""
    gc.collect()
    tracemalloc.start(FRAMES)
    try:
        before = tracemalloc.get_traced_memory()[0]
        empty = driver.fill(sample, 0)
        gc.collect()
        empty_bytes = (tracemalloc.get_traced_memory()[0] - before) / sample
        del empty
        gc.collect()
        start = tracemalloc.take_snapshot()
        before = tracemalloc.get_traced_memory()[0]
        convs = driver.fill(sample, turns)
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - before) / sample
        end = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return held, empty_bytes, convs, _held_by(start, end, sample)


def measure(driver: Driver, conversations: int, sample: int, turns: int) -> dict[str, Any]:
    driver.fill(1, 1)  # warm: imports, the shared transport, its pooled connection
    in_use = _allocator()
    started = time.perf_counter()
    scale: dict[str, Any] = {}
    crowd: list[Any] = []
    if conversations:
        gc.collect()
        before = in_use() if in_use else 0
        crowd = driver.fill(conversations, turns)
        gc.collect()
        if in_use:
            scale["allocator_bytes_per_conversation"] = (in_use() - before) / conversations
        scale["seconds"] = round(time.perf_counter() - started, 1)
    held, empty, convs, sites = _traced(driver, sample, turns)
    out = _summary(held, empty, convs)
    out["held_by"] = sites
    if conversations:
        text = sum(_text_bytes(c) for c in crowd) / len(crowd)
        allocated = scale.pop("allocator_bytes_per_conversation", None)
        if allocated is not None:
            scale["allocator_bytes_per_conversation"] = round(allocated)
            scale["allocator_beyond_text"] = round(allocated - text)
        out["at_scale"] = {"conversations": conversations, "text_bytes": round(text), **scale}
    return out


def _summary(held: float, empty: float, convs: list[Any]) -> dict[str, Any]:
    text = sum(_text_bytes(c) for c in convs) / len(convs)
    messages = sum(len(c.messages) for c in convs) / len(convs)
    return {"bytes_per_conversation": round(held), "text_bytes": round(text),
            "beyond_text": round(held - text),
            "ratio": held / text if text else None, "messages": messages,
            "empty_conversation_bytes": round(empty),
            "bytes_per_message_beyond_text": round((held - empty - text) / messages)
            if messages else None}


def _print_top(driver: str, sites: list[tuple[str, float]], top: int) -> None:
    sys.stderr.write(f"-- {driver}: bytes held per conversation, by allocating line\n")
    for site, size in sites[:top]:
        path, _, line = site.rpartition(":")
        source = ""
        for root in (HERE.parent / "src" / "promptkit", HERE):
            candidate = root / path
            if candidate.exists():
                source = linecache.getline(str(candidate), int(line)).strip()
                break
        sys.stderr.write(f"{size:9.1f}  {site:42} {source[:70]}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base", help="the mock upstream's root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--conversations", type=int, default=10000,
                        help="conversations measured at scale (untraced); 0 skips that part")
    parser.add_argument("--sample", type=int, default=100,
                        help="conversations traced with tracemalloc")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=30, help="content chunks per reply")
    parser.add_argument("--drivers", default="sync,async")
    parser.add_argument("--top", type=int, default=0,
                        help="print the N largest allocating lines per driver to stderr")
    args = parser.parse_args(argv)
    import promptkit

    base = f"{args.base}/cfg/chunks={args.chunks},first=0,gap=0,tools=0,ascii=1/v1"
    pack = promptkit.load_pack(PACK)
    out: dict[str, Any] = {}
    for name in args.drivers.split(","):
        driver = Driver(pack, base, name)
        try:
            out[name] = measure(driver, args.conversations, args.sample, args.turns)
        finally:
            driver.close()
        if args.top:
            _print_top(name, out[name]["held_by"], args.top)
        out[name]["held_by"] = out[name]["held_by"][:12]
        gc.collect()
    out.update(turns=args.turns, chunks=args.chunks, conversations=args.conversations,
               sample=args.sample)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
