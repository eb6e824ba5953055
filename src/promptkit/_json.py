"""JSON for the hot paths: parsing streamed events and encoding request bodies.

Every streamed event is one ``loads``; :mod:`msgspec` parses a typical event in about a
quarter of the time :func:`json.loads` needs (``benchmarks/``), so it is used when installed (a
dependency on CPython). The few inputs msgspec refuses but the standard library accepts
(``NaN``/``Infinity``, numbers beyond the float range, lone surrogates) are parsed again
with :func:`json.loads`, so the result never depends on which parser ran, and input that is
not JSON raises :class:`ValueError` either way.

Request bodies are encoded the same way (compact UTF-8, about ten times faster than
:func:`json.dumps`); the text can differ from the standard library's only in how a float is
spelled (``1e300`` for ``1e+300``) and in writing ``NaN`` as ``null``, which keeps it valid
JSON. Loaded on first use (the dialects import it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["encode", "loads"]

def _stdlib_loads(text: str | bytes) -> Any:
    return json.loads(text)


def _stdlib_encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _fast() -> tuple[Callable[[str | bytes], Any], Callable[[Any], bytes]]:
    """msgspec's parser and encoder, each falling back to the standard library's."""
    try:
        import msgspec.json
    except ImportError:  # pragma: no cover - msgspec is a dependency where it has wheels
        return _stdlib_loads, _stdlib_encode
    decode = msgspec.json.Decoder().decode
    encode_ = msgspec.json.Encoder().encode
    # UnicodeEncodeError: a str holding a lone surrogate, which msgspec cannot read
    refused = (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError)

    def loads(text: str | bytes) -> Any:
        try:
            return decode(text)
        except refused:
            return _stdlib_loads(text)

    def encode(value: Any) -> bytes:
        try:
            return encode_(value)
        except (TypeError, ValueError):  # unsupported values: the standard library's error
            return _stdlib_encode(value)

    return loads, encode


#: ``text`` parsed as JSON; ``encode``: ``value`` as compact UTF-8 JSON bytes (a request body)
loads, encode = _fast()
