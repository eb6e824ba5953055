"""The compact form in which :class:`~promptkit.stores.MemoryStore` keeps histories.

An idle conversation should cost little more than its text: a ``Message`` object, its empty
``extra`` dict and its ``Usage`` take about three times the bytes of a typical message's text.
So each append is packed into one MessagePack ``bytes`` value (with :mod:`msgspec`): a plain
user message as its text, a plain assistant message as ``[text, finish_reason, usage]``, and
anything else (tool calls and results, provider data in ``extra``) as ``Message.to_dict()``.
Loading unpacks into new ``Message`` objects, equal to the stored ones; tuples inside
``extra`` come back as lists, as from every persistent store.

Messages that MessagePack cannot hold (integers beyond 64 bits, lone surrogates, objects
that are not JSON-like) are kept as they are, so nothing the in-memory store accepted before
is refused. Without msgspec nothing is packed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from promptkit.engine.messages import Message, Usage

__all__ = ["Packed", "pack", "unpack"]

#: one append: packed bytes, or the messages themselves when they could not be packed
Packed = bytes | tuple[Message, ...]


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
        usage = message.usage
        return [message.text, message.finish_reason, None if usage is None else
                [usage.input_tokens, usage.output_tokens, usage.cached_tokens,
                 usage.reasoning_tokens]]
    return message.to_dict()


def pack(messages: Sequence[Message]) -> Packed:
    """``messages`` (one append) in their compact form."""
    if _CODEC is None:
        return tuple(messages)
    try:
        raw = _CODEC[0]([_item(m) for m in messages])
    except (TypeError, ValueError, OverflowError):  # see the module docstring
        return tuple(messages)
    # msgspec hands back its over-allocated output buffer: keep an exact-size copy
    return memoryview(raw).tobytes()


def unpack(packed: Packed) -> list[Message]:
    """The messages of one append, as new ``Message`` objects."""
    if type(packed) is tuple:
        return list(packed)
    assert _CODEC is not None and type(packed) is bytes
    out = []
    for item in _CODEC[1](packed):
        kind = type(item)
        if kind is str:
            out.append(Message(role="user", text=item))
        elif kind is list:
            text, finish_reason, counts = item
            usage = None if counts is None else Usage(
                input_tokens=counts[0], output_tokens=counts[1], cached_tokens=counts[2],
                reasoning_tokens=counts[3])
            out.append(Message(role="assistant", text=text, usage=usage,
                               finish_reason=finish_reason))
        else:
            out.append(Message.from_dict(item))
    return out
