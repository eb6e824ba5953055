"""Workload (d): the memory an idle conversation holds, against the bytes of its message text.

    python benchmarks/memory.py BASE_URL [--conversations 20 --turns 20 --chunks 30]

Opens ``--conversations`` conversations from one loaded pack, runs ``--turns`` turns in each
against the mock upstream, and measures with ``tracemalloc`` what stays allocated once they are
idle (after ``gc.collect()``), divided by the number of conversations. Imports, the pack, the
shared transport and its pooled connection are allocated by a warm-up conversation before
tracing starts, so they are not counted. Prints one JSON line, for both drivers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACK = HERE / "bench.pack.json"


def _user(i: int) -> str:
    return (f"Question {i}: what do you think about the weather in London today, and should "
            "I take an umbrella?")


def _text_bytes(conv: Any) -> int:
    return sum(len(m.text.encode()) for m in conv.messages)


def measure_sync(pack: Any, base: str, conversations: int, turns: int) -> dict[str, Any]:
    def make() -> Any:
        return pack.open("chat", provider="openai", model="gpt-4o-mini", base_url=base,
                         api_key="x")

    warm = make()
    warm.send(_user(0))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    empty = [make() for _ in range(conversations)]
    gc.collect()
    empty_bytes = (tracemalloc.get_traced_memory()[0] - before) / conversations
    del empty
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    convs = []
    for _ in range(conversations):
        conv = make()
        for i in range(turns):
            conv.send(_user(i))
        convs.append(conv)
    gc.collect()
    held = (tracemalloc.get_traced_memory()[0] - before) / conversations
    tracemalloc.stop()
    return _summary(held, empty_bytes, convs)


def measure_async(pack: Any, base: str, conversations: int, turns: int) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        def make() -> Any:
            return pack.open_async("chat", provider="openai", model="gpt-4o-mini",
                                   base_url=base, api_key="x")

        warm = make()
        await warm.send(_user(0))
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        empty = [make() for _ in range(conversations)]
        gc.collect()
        empty_bytes = (tracemalloc.get_traced_memory()[0] - before) / conversations
        del empty
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        convs = []
        for _ in range(conversations):
            conv = make()
            for i in range(turns):
                await conv.send(_user(i))
            convs.append(conv)
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - before) / conversations
        tracemalloc.stop()
        return _summary(held, empty_bytes, convs)

    return asyncio.run(run())


def _summary(held: float, empty: float, convs: list[Any]) -> dict[str, Any]:
    text = sum(_text_bytes(c) for c in convs) / len(convs)
    messages = sum(len(c.messages) for c in convs) / len(convs)
    return {"bytes_per_conversation": round(held), "text_bytes": round(text),
            "ratio": held / text if text else None, "messages": messages,
            "empty_conversation_bytes": round(empty),
            "bytes_per_message_beyond_text": round((held - empty - text) / messages)
            if messages else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base", help="the mock upstream's root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=30, help="content chunks per reply")
    args = parser.parse_args(argv)
    import promptkit

    base = f"{args.base}/cfg/chunks={args.chunks},first=0,gap=0,tools=0,ascii=1/v1"
    pack = promptkit.load_pack(PACK)
    out = {"sync": measure_sync(pack, base, args.conversations, args.turns),
           "async": measure_async(pack, base, args.conversations, args.turns),
           "turns": args.turns, "chunks": args.chunks, "conversations": args.conversations}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
