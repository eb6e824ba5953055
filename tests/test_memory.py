"""What an idle conversation holds: a 20-turn history costs at most 2 KB beyond its text.

The benchmark (``benchmarks/memory.py``) measures 10,000 conversations; this test guards the
same figure with ``tracemalloc`` over a few dozen, through both drivers, against the
benchmarks' mock upstream (a separate process, so nothing of the server is counted). One
loaded pack and the shared transport are warmed up before tracing starts, as in the
benchmark. The async conversations are measured after their event loop closed: the cancelled
watchdog timers that asyncio keeps in a loop's heap until it purges them belong to the loop,
not to the conversations.
"""

from __future__ import annotations

import gc
import importlib.util
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

import promptkit
from promptkit.stores import MemoryStore

from support import REPO, Driver

CONVERSATIONS = 40
TURNS = 20
BEYOND_TEXT = 2048  # the bound, per conversation
EMPTY = 1024  # a conversation before its first turn


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "upstream.py"),
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("READY"), line
        port = dict(part.split("=", 1) for part in line.split()[1:])["port"]
        yield f"http://127.0.0.1:{port}/cfg/chunks=30,first=0,gap=0,tools=0,ascii=1/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def _bench_memory() -> Any:
    """benchmarks/memory.py as a module: its Driver opens and drives the conversations."""
    spec = importlib.util.spec_from_file_location("bench_memory",
                                                  REPO / "benchmarks" / "memory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_BENCH = _bench_memory()
_PACK = promptkit.load_pack(REPO / "benchmarks" / "bench.pack.json")


def _run(driver: Driver, base: str) -> Any:
    """Conversations opened and driven by one driver (the async ones on a loop of their own)."""
    return _BENCH.Driver(_PACK, base, "async" if driver.is_async else "sync")


def _held(run: Any, turns: int) -> tuple[float, list[Any]]:
    """Bytes held per conversation after ``turns`` turns each (tracemalloc), and them."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        convs = run.fill(CONVERSATIONS, turns)
        run.close()
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - before) / CONVERSATIONS
    finally:
        tracemalloc.stop()
    return held, convs


def test_an_idle_20_turn_conversation_costs_under_2_kb_beyond_its_text(
        driver: Driver, upstream: str) -> None:
    run = _run(driver, upstream)
    run.fill(1, 1)  # warm: imports, the transport and its pooled connection
    held, convs = _held(run, TURNS)
    text = sum(len(m.text.encode()) for c in convs for m in c.messages) / CONVERSATIONS
    assert all(len(c.messages) == 2 * TURNS for c in convs)
    assert held - text <= BEYOND_TEXT, f"{held - text:.0f} bytes beyond {text:.0f} of text"


def test_an_empty_conversation_costs_under_1_kb(driver: Driver, upstream: str) -> None:
    run = _run(driver, upstream)
    run.fill(1, 1)
    held, convs = _held(run, 0)
    assert held <= EMPTY, f"{held:.0f} bytes"
    assert all(c.messages == [] for c in convs)


def test_a_stored_message_costs_little_beyond_its_text() -> None:
    text = "Question: what do you think about the weather in London today, and an umbrella?"
    answer = " ".join(["word"] * 30)
    store = MemoryStore()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for turn in range(20):
            store.append("c", [promptkit.Message(role="user", text=text),
                               promptkit.Message(role="assistant", text=answer,
                                                 finish_reason="stop",
                                                 usage=promptkit.Usage(input_tokens=50,
                                                                       output_tokens=30))],
                         turn)
        gc.collect()  # empties the free lists, which keep what the appends let go
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # one packed segment: its header, a few bytes of framing per message, the record itself
    beyond = held - 20 * (len(text) + len(answer))
    assert beyond < 20 * 2 * 12 + 400, beyond
    assert held < 2 * 20 * (len(text) + len(answer))

