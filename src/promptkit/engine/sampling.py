"""Sampling options set in code: ``temperature=``, ``max_tokens=``, ``top_p=``, ``stop=``,
``seed=``, ``extra_headers=`` and ``extra_body=`` at ``open()`` and per ``send()``/``stream()``.

They override the pack's ``parameters`` (per call > open > pack). Values are checked when they
are given, before any network call; each dialect maps the names to its own wire fields in its
``build_request`` (see docs/guide.md, "Sampling parameters").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptkit._errors import PromptKitError, present_as_promptkit

__all__ = ["NO_OPTIONS", "SAMPLING_NAMES", "CallOptions", "InvalidParameterError", "call_options"]

#: the sampling options a caller may set, by their PromptPack names
SAMPLING_NAMES = ("temperature", "max_tokens", "top_p", "stop", "seed")

#: headers promptkit sets itself: credentials (``api_key=`` sets those) and framing
_RESERVED_HEADERS = frozenset((
    "authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key",
    "content-type", "content-length", "accept", "host", "transfer-encoding", "connection",
))
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: body keys the transport relies on: a non-streamed reply would not decode
_RESERVED_BODY_KEYS = frozenset(("stream",))


class InvalidParameterError(PromptKitError, ValueError):
    """A sampling option or ``extra_headers``/``extra_body`` value that cannot be sent."""


present_as_promptkit(InvalidParameterError)


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Checked sampling options: ``parameters`` by PromptPack name, plus extra headers and
    body keys for the request. Empty when nothing was set."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.parameters or self.extra_headers or self.extra_body)

    def over(self, base: CallOptions) -> CallOptions:
        """These options with ``base`` underneath (each name, header and body key of ``self``
        wins)."""
        if not self:
            return base
        if not base:
            return self
        return CallOptions(parameters={**base.parameters, **self.parameters},
                           extra_headers={**base.extra_headers, **self.extra_headers},
                           extra_body={**base.extra_body, **self.extra_body})


NO_OPTIONS = CallOptions()


def call_options(*, temperature: Any = None, max_tokens: Any = None, top_p: Any = None,
                 stop: Any = None, seed: Any = None, extra_headers: Any = None,
                 extra_body: Any = None) -> CallOptions:
    """Check the options (``None`` means "not set") and return them; raises
    :class:`InvalidParameterError` naming the option and what it accepts."""
    if (temperature is None and max_tokens is None and top_p is None and stop is None
            and seed is None and extra_headers is None and extra_body is None):
        return NO_OPTIONS
    parameters: dict[str, Any] = {}
    if temperature is not None:
        parameters["temperature"] = _number("temperature", temperature, 0.0, None)
    if top_p is not None:
        parameters["top_p"] = _number("top_p", top_p, 0.0, 1.0)
    if max_tokens is not None:
        parameters["max_tokens"] = _integer("max_tokens", max_tokens, 1)
    if seed is not None:
        parameters["seed"] = _integer("seed", seed, None)
    if stop is not None:
        parameters["stop"] = _stop(stop)
    return CallOptions(parameters=parameters, extra_headers=_headers(extra_headers),
                       extra_body=_body(extra_body))


def _number(name: str, value: Any, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be a finite number, not {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"{low:g} or more"
        raise InvalidParameterError(f"{name} must be {bounds}, not {value!r}")
    return value


def _integer(name: str, value: Any, low: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"{name} must be an integer, not {value!r}")
    if low is not None and value < low:
        raise InvalidParameterError(f"{name} must be {low} or more, not {value!r}")
    return value


def _stop(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or isinstance(items, bytes | bytearray) or not all(
            isinstance(item, str) and item for item in items):
        raise InvalidParameterError(
            f"stop must be a non-empty string or a list of them, not {value!r}")
    return list(items)


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidParameterError(
            f"extra_headers must be a mapping of header names to strings, not {value!r}")
    headers: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
            raise InvalidParameterError(f"extra_headers: {name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise InvalidParameterError(
                f"extra_headers may not set {name!r}: promptkit sets it (credentials come from "
                "api_key= or the provider's environment variable)")
        if not isinstance(text, str) or "\r" in text or "\n" in text or "\0" in text:
            # never echo the value: it may be a credential for a gateway
            raise InvalidParameterError(
                f"extra_headers[{name!r}] must be a string without line breaks")
        headers[name] = text
    return headers


def _body(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidParameterError(
            f"extra_body must be a mapping with string keys, not {type(value).__name__}")
    refused = sorted(_RESERVED_BODY_KEYS & set(value))
    if refused:
        raise InvalidParameterError(
            f"extra_body may not set {', '.join(refused)}: promptkit always streams")
    import json

    try:
        json.dumps(dict(value))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"extra_body is not JSON-serialisable: {exc}") from None
    return dict(value)
