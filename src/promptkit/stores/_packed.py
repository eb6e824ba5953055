"""The compact form in which :class:`~promptkit.stores.MemoryStore` keeps histories.

An idle conversation should cost little more than its text: a ``Message`` object, its empty
``extra`` dict and its ``Usage`` take about three times the bytes of a typical message's text.
So a history is kept as a few MessagePack *segments* (with :mod:`msgspec`): ``bytes`` values
each holding one MessagePack array of messages. Appends go onto the last segment (one copy of
at most :data:`SEGMENT_BYTES`, so an append costs the same at message 40 and at message
4,000) until it is full; a 20-turn history is one ``bytes`` object. In a segment, a plain user
message is its text, a plain assistant message ``[text, finish, *usage]`` (``finish`` is ``0``
for ``"stop"``; the usage counts are left out when absent, the last two when zero), anything
else (tool calls and results, provider data in ``extra``) ``Message.to_dict()``. Loading
unpacks into new ``Message`` objects, equal to the stored ones; tuples inside ``extra`` come
back as lists, as from every persistent store.

Messages that MessagePack cannot hold (integers beyond 64 bits, lone surrogates, objects
that are not JSON-like) are kept as they are, as a segment of their own (a tuple), so nothing
the in-memory store accepted before is refused. Without msgspec nothing is packed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from promptkit.engine.messages import Message, Usage

__all__ = ["SEGMENT_BYTES", "Packed", "extend", "pack", "unpack"]

#: one segment: packed bytes, or the messages themselves when they could not be packed
Packed = bytes | tuple[Message, ...]

#: appends go onto the last segment while it stays under this size
SEGMENT_BYTES = 32 * 1024

_ARRAY32 = b"\xdd"  # a segment's header: MessagePack array32 and its 4-byte length
_HEADER = 5


def _codec() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]] | None:
    try:
        import msgspec.msgpack
    except ImportError:  # pragma: no cover - msgspec is a dependency where it has wheels
        return None
    return msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder().decode


_CODEC = _codec()


def _item(message: Message) -> Any:
    if message.tool_calls or message.tool_result is not None or message.extra:
        return message.to_dict()
    if message.role == "user" and message.usage is None and message.finish_reason is None:
        return message.text
    if message.role == "assistant":
        finish = message.finish_reason
        item = [message.text, 0 if finish == "stop" else finish]
        usage = message.usage
        if usage is not None:
            item += (usage.input_tokens, usage.output_tokens)
            if usage.cached_tokens or usage.reasoning_tokens:
                item += (usage.cached_tokens, usage.reasoning_tokens)
        return item
    return message.to_dict()


def _body(messages: Sequence[Message]) -> memoryview | None:
    """The MessagePack items of ``messages`` without an array header, or None if they cannot
    be packed."""
    if _CODEC is None:
        return None
    try:
        raw = _CODEC[0]([_item(m) for m in messages])
    except (TypeError, ValueError, OverflowError):  # see the module docstring
        return None
    first = raw[0]  # the array header msgspec wrote: fixarray, array16 or array32
    skip = 1 if first < 0xDC else 3 if first == 0xDC else _HEADER
    return memoryview(raw)[skip:]


def pack(messages: Sequence[Message]) -> Packed:
    """``messages`` as one new segment."""
    body = _body(messages)
    if body is None:
        return tuple(messages)
    return b"".join((_ARRAY32, len(messages).to_bytes(4, "big"), body))


def extend(last: Packed | None, messages: Sequence[Message]) -> tuple[Packed, bool]:
    """The segment to keep after appending ``messages`` to a history whose last segment is
    ``last``, and whether it replaces ``last`` (True) or follows it (False)."""
    body = _body(messages)
    if body is None:
        return tuple(messages), False
    if type(last) is bytes and len(last) + len(body) <= SEGMENT_BYTES:
        count = int.from_bytes(last[1:_HEADER], "big") + len(messages)
        return b"".join((_ARRAY32, count.to_bytes(4, "big"), memoryview(last)[_HEADER:],
                         body)), True
    return b"".join((_ARRAY32, len(messages).to_bytes(4, "big"), body)), False


def unpack(packed: Packed) -> list[Message]:
    """The messages of one segment, as new ``Message`` objects."""
    if type(packed) is tuple:
        return list(packed)
    assert _CODEC is not None and type(packed) is bytes
    out = []
    for item in _CODEC[1](packed):
        kind = type(item)
        if kind is str:
            out.append(Message(role="user", text=item))
        elif kind is list:
            finish = item[1]
            size = len(item)
            usage = None if size == 2 else Usage(
                input_tokens=item[2], output_tokens=item[3],
                cached_tokens=item[4] if size > 4 else 0,
                reasoning_tokens=item[5] if size > 4 else 0)
            out.append(Message(role="assistant", text=item[0], usage=usage,
                               finish_reason="stop" if type(finish) is int else finish))
        else:
            out.append(Message.from_dict(item))
    return out
