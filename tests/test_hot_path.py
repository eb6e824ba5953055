"""What the performance work (issue 6) changed must not change behaviour: the fast JSON
parser and encoder give the standard library's results, packed histories come back equal,
cached bindings and tool signatures never serve stale answers, and one tool call (run without
an extra task) still times out alone or with its turn."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promptkit
from promptkit import Message, ToolCall, ToolResult, Usage
from promptkit._json import encode, loads
from promptkit.providers._select import resolve_provider
from promptkit.stores import MemoryStore
from promptkit.stores._packed import SEGMENT_BYTES, pack, unpack
from test_tools import call_turns, open_mock

from support import PACKS, Driver

# --- JSON: msgspec where it can, the standard library's results always --------------------------

_scalars = (st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True)
            | st.integers(min_value=-(10**30), max_value=10**30) | st.text())
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and types compared (1 is not 1.0, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_loads_gives_the_standard_librarys_values(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert _same(loads(text), json.loads(text))
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: only the str form exists
            continue
        assert _same(loads(data), json.loads(data))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]",:0123456789.eE+-truefalsn \\ua\ud800', max_size=30))
def test_loads_accepts_and_refuses_what_the_standard_library_does(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            loads(text)
        return
    except RecursionError:  # pragma: no cover - not reachable at this size
        return
    assert _same(loads(text), expected)


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "1e400", "123456789012345678901234567890",
                                  '"\\ud800"', '{"a":1,"a":2}', "-0.0", " [1, 2] "])
def test_loads_edge_cases_match(text: str) -> None:
    assert _same(loads(text), json.loads(text))


@settings(max_examples=300, deadline=None)
@given(_values)
def test_encode_writes_json_that_reads_back_as_the_value(value: Any) -> None:
    try:
        expected = json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            encode(value)
        return
    body = encode(value)
    # NaN and infinities become null (valid JSON); everything else reads back the same
    if "NaN" in expected.decode() or "Infinity" in expected.decode():
        json.loads(body)  # still valid JSON
        return
    assert _same(json.loads(body), json.loads(expected))


def test_encode_is_compact_utf8_and_refuses_what_json_cannot_encode() -> None:
    assert encode({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()
    assert encode(float("nan")) == b"null"
    with pytest.raises(TypeError):
        encode({("tuple", "key"): 1})


# --- packed histories ----------------------------------------------------------------------------

_MESSAGES = [
    Message(role="system", text="be brief"),
    Message(role="user", text="Hello, wörld 👋"),
    Message(role="user", text=""),
    Message(role="assistant", text="Hi!", finish_reason="stop",
            usage=Usage(input_tokens=12, output_tokens=3, cached_tokens=2, reasoning_tokens=1)),
    Message(role="assistant", text=""),
    Message(role="assistant", text="", finish_reason="tool_calls", tool_calls=(
        ToolCall(id="c1", name="get_weather", arguments={"city": "Paris", "n": 2**40},
                 raw_arguments='{"city":"Paris"}'),)),
    Message(role="tool", tool_result=ToolResult(call_id="c1", name="get_weather",
                                                content='{"t": 21}', is_error=False)),
    Message(role="user", text="look", extra={"parts": [{"type": "text", "text": "x"}]}),
    Message(role="assistant", text="ok", extra={"anthropic_thinking": [{"signature": "s"}]}),
]


def test_packed_messages_come_back_equal() -> None:
    packed = pack(_MESSAGES)
    assert isinstance(packed, bytes)
    assert unpack(packed) == _MESSAGES
    assert unpack(packed)[1] is not _MESSAGES[1]  # new objects: the store's copy is its own


@pytest.mark.parametrize("odd", [
    Message(role="user", text="lone \ud800 surrogate"),
    Message(role="assistant", text="x", tool_calls=(
        ToolCall(id="c", name="f", arguments={"big": 10**30}, raw_arguments=""),)),
    Message(role="user", text="x", extra={"object": object()}),
])
def test_messages_msgpack_cannot_hold_are_kept_as_they_are(odd: Message) -> None:
    packed = pack([Message(role="user", text="fine"), odd])
    assert isinstance(packed, tuple)
    assert unpack(packed)[1] is odd


def test_memory_store_keeps_histories_packed_and_returns_them_equal() -> None:
    store = MemoryStore()
    assert store.append("c", _MESSAGES[:4], 0) == 1
    assert store.append("c", _MESSAGES[4:], 1) == 2
    loaded = store.load("c")
    assert loaded is not None and loaded.messages == tuple(_MESSAGES) and loaded.version == 2
    store.fork("c", "d")
    store.append("d", [Message(role="user", text="more")], 2)
    assert store.load("c").messages == tuple(_MESSAGES)  # type: ignore[union-attr]
    assert [i.message_count for i in store.list()] == [len(_MESSAGES), len(_MESSAGES) + 1]


def test_appends_fill_one_segment_before_starting_the_next() -> None:
    store = MemoryStore()
    sent: list[Message] = []
    big = "x" * 1000
    for turn in range(100):  # about 100 KB: a few segments
        messages = [Message(role="user", text=f"{turn} {big}"),
                    Message(role="assistant", text=f"{turn}", finish_reason="length",
                            usage=Usage(input_tokens=turn, output_tokens=2**40))]
        store.append("c", messages, turn)
        sent += messages
    assert store.load("c").messages == tuple(sent)  # type: ignore[union-attr]
    record = store._data["c"]
    segments = [*record.sealed, record.last]
    assert len(segments) == 4
    assert all(isinstance(s, bytes) and len(s) <= SEGMENT_BYTES for s in segments)
    assert all(len(s) > SEGMENT_BYTES - 1100 for s in segments[:-1])  # full before the next
    small = MemoryStore()
    for turn in range(20):
        small.append("c", _MESSAGES[3:5], turn)
    assert small._data["c"].sealed == () and isinstance(small._data["c"].last, bytes)


def test_an_append_larger_than_a_segment_is_a_segment_of_its_own() -> None:
    store = MemoryStore()
    huge = Message(role="user", text="y" * (SEGMENT_BYTES + 10))
    store.append("c", [Message(role="user", text="a")], 0)
    store.append("c", [huge], 1)
    store.append("c", [Message(role="user", text="b")], 2)
    texts = [m.text for m in store.load("c").messages]  # type: ignore[union-attr]
    assert texts == ["a", huge.text, "b"]


def test_unpackable_appends_sit_between_packed_segments() -> None:
    odd = Message(role="user", text="lone \ud800 surrogate")
    store = MemoryStore()
    store.append("c", _MESSAGES[:2], 0)
    store.append("c", [odd], 1)
    store.append("c", _MESSAGES[2:], 2)
    store.append("c", [], 3)
    loaded = store.load("c")
    assert loaded is not None and loaded.messages == (*_MESSAGES[:2], odd, *_MESSAGES[2:])
    assert loaded.messages[2] is odd
    assert [i.message_count for i in store.list()] == [len(_MESSAGES) + 1]


def test_a_fork_and_its_source_grow_apart() -> None:
    store = MemoryStore()
    store.append("c", _MESSAGES[:3], 0)
    store.fork("c", "d")
    store.append("c", [Message(role="user", text="only c")], 1)
    store.append("d", [Message(role="user", text="only d")], 1)
    c, d = store.load("c"), store.load("d")
    assert c is not None and d is not None
    assert [m.text for m in c.messages[3:]] == ["only c"]
    assert [m.text for m in d.messages[3:]] == ["only d"]
    assert c.messages[:3] == d.messages[:3] == tuple(_MESSAGES[:3])


def test_assistant_messages_keep_finish_reason_and_usage_exactly() -> None:
    variants = [Message(role="assistant", text="t", finish_reason=reason, usage=usage)
                for reason in (None, "stop", "length", "0")
                for usage in (None, Usage(), Usage(input_tokens=3, output_tokens=4),
                              Usage(input_tokens=3, output_tokens=4, cached_tokens=1),
                              Usage(reasoning_tokens=2))]
    assert unpack(pack(variants)) == variants


def test_the_lru_order_follows_loads_too() -> None:
    store = MemoryStore(max_conversations=2)
    store.append("a", _MESSAGES[:1], 0)
    store.append("b", _MESSAGES[:1], 0)
    assert store.load("a") is not None  # a is now the most recently used
    store.append("c", _MESSAGES[:1], 0)
    assert [i.id for i in store.list()] == ["a", "c"]


# --- cached resolution ---------------------------------------------------------------------------


def test_bindings_are_reused_only_when_nothing_comes_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = {"provider": "openai", "model": "gpt-4o-mini", "api_key": "k1",
                "base_url": "http://127.0.0.1:9/v1"}
    assert resolve_provider(**explicit) is resolve_provider(**explicit)
    assert resolve_provider(**{**explicit, "api_key": "k2"}) is not resolve_provider(**explicit)
    monkeypatch.setenv("OPENAI_API_KEY", "env-1")
    first = resolve_provider(provider="openai", model="gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "env-2")
    second = resolve_provider(provider="openai", model="gpt-4o-mini")
    assert first.dialect.endpoint.api_key == "env-1"  # type: ignore[attr-defined]
    assert second.dialect.endpoint.api_key == "env-2"  # type: ignore[attr-defined]


def test_a_handler_registered_again_gets_its_own_timeout_and_approval(driver: Driver) -> None:
    def weather(city: str) -> str:
        """Weather in a city."""
        return city

    first = open_mock(driver, call_turns(("get_weather", {"city": "A"})))
    second = open_mock(driver, call_turns(("get_weather", {"city": "A"})))
    first.on_tool("get_weather", weather, timeout=1.5)
    second.on_tool("get_weather", weather, timeout=None, requires_approval=True)
    one, two = first._tools.snapshot()["get_weather"], second._tools.snapshot()["get_weather"]
    assert (one.timeout, one.approval, two.timeout, two.approval) == (1.5, False, None, True)
    assert one.named_params and two.named_params and one.schema == two.schema


# --- one tool call, no extra task ----------------------------------------------------------------


def _hanging(driver: Driver, release: threading.Event) -> Any:
    """A handler that hangs for 5 s (or until ``release``): async for the async driver."""
    if driver.is_async:
        async def weather(args: dict[str, Any]) -> str:
            await asyncio.sleep(5)
            return "late"
        return weather

    def blocking_weather(args: dict[str, Any]) -> str:
        release.wait(5)
        return "late"
    return blocking_weather


def test_a_single_hung_call_times_out_alone(driver: Driver) -> None:
    conv = open_mock(driver, call_turns(("get_weather", {"city": "A"})))
    release = threading.Event()
    conv.on_tool("get_weather", _hanging(driver, release), timeout=0.2)
    try:
        response = driver.send(conv, "one")
    finally:
        release.set()
    (result,) = response.tool_results
    assert result.is_error and "did not finish within 0.2 s" in result.content
    assert response.text == "done"


def test_the_turn_deadline_stops_a_single_tool_and_the_conversation_stays_usable(
        driver: Driver) -> None:
    script = {"turns": {1: {"tool_calls": [{"name": "get_weather", "arguments": {"city": "A"}}]},
                        2: "done", 3: "after"}}
    conv = open_mock(driver, script)
    release = threading.Event()
    conv.on_tool("get_weather", _hanging(driver, release), timeout=None)
    try:
        with pytest.raises(promptkit.TurnTimeout):
            driver.send(conv, "one", timeout=0.3)
    finally:
        release.set()
    assert driver.run(lambda: conv.messages) == []  # the failed turn committed nothing


def test_an_async_conversation_loads_its_http_client_when_opened() -> None:
    code = ("import sys, promptkit\n"
            f"promptkit.open_async({str(PACKS / 'assistant.pack.json')!r}, 'assistant', "
            "provider='openai', base_url='http://127.0.0.1:9/v1', api_key='x', "
            "variables={'user_name': 'Ada'})\n"
            "print('promptkit.transport.async_http' in sys.modules, 'msgspec' in sys.modules,"
            " 'aiohttp' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["True", "True", "False"]  # no HTTP client library at all
