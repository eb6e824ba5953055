"""JSON parsing for the streaming hot path, with the standard library's exact results.

Every streamed event is one ``loads``; :mod:`msgspec` parses a typical event in about a
quarter of the time :func:`json.loads` needs (``benchmarks/``), so it is used when installed (a
dependency on CPython). The few inputs msgspec refuses but the standard library accepts
(``NaN``/``Infinity``, numbers beyond the float range, lone surrogates) are parsed again
with :func:`json.loads`, so the result never depends on which parser ran, and input that is
not JSON raises :class:`ValueError` either way. Loaded on first use (the decoders import it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["loads"]

_stdlib_loads: Callable[[str | bytes], Any] = json.loads


def _fast_loads() -> Callable[[str | bytes], Any] | None:
    try:
        import msgspec.json
    except ImportError:  # pragma: no cover - msgspec is a dependency where it has wheels
        return None
    decode = msgspec.json.Decoder().decode
    # UnicodeEncodeError: a str holding a lone surrogate, which msgspec cannot read
    refused = (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError)

    def loads(text: str | bytes) -> Any:
        try:
            return decode(text)
        except refused:
            return _stdlib_loads(text)

    return loads


loads: Callable[[str | bytes], Any] = _fast_loads() or _stdlib_loads
