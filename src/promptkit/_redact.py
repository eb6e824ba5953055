"""Keeping credentials out of everything promptkit shows: errors, reprs, logs and CLI output.

The SDK knows every key it sends: each one is registered here (:func:`register_secret`) when
a provider binding, an HTTP tool or a server token is made. :func:`redact` is the one place that
scrubs text before it is shown: every registered secret, plus anything that looks like a
credential whether or not we sent it (a gateway may echo a key of its own), keeping the rest of
the message readable::

    register_secret("sk-live-abc123...")
    redact("Incorrect API key provided: Bearer sk-live-abc123...")
    # 'Incorrect API key provided: Bearer [REDACTED]'

Errors (``_errors.APIStatusError``) and logs (``promptkit.observe``) call it; nothing else
should format a body or a header for display without it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_value", "register_header_secrets", "register_secret"]

REDACTED = "[REDACTED]"

# A secret shorter than this is not registered: replacing "abc" everywhere would mangle text
# without protecting anything a real key would need.
_MIN_SECRET_LENGTH = 8

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_secrets_pattern: re.Pattern[str] | None = None

# Credential shapes, redacted even when we never sent them. Each keeps its label and
# separator so the message still says what was wrong.
_SHAPES = (
    # "Bearer <token>", "Basic <token>" (Authorization values, also echoed inside messages)
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=:-]{5,}[A-Za-z0-9_~+/=-]"),
     r"\1\2" + REDACTED),
    # header-style or JSON-style "x-api-key: <v>", '"api_key": "<v>"', "authorization=<v>"
    (re.compile(r"(?i)\b((?:x-)?(?:goog-)?api[-_]?key|authorization|access[-_]token|"
                r"x-goog-api-key)(\"?'?\s*[:=]\s*\"?'?)(?!\[REDACTED\])([^\s\"',;}&]{4,})"),
     r"\1\2" + REDACTED),
    # "?key=<v>" / "&api_key=<v>" query parameters
    (re.compile(r"(?i)([?&](?:key|api_key|apikey|access_token|token)=)[^&\s\"'#]+"),
     r"\1" + REDACTED),
    # well-known key formats: OpenAI / Anthropic "sk-…", Google "AIza…"
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),
)


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` (an API key, a token) so :func:`redact` removes it from any text."""
    global _secrets, _secrets_pattern
    if not secret or len(secret) < _MIN_SECRET_LENGTH or secret in _secrets:
        return
    with _lock:
        secrets = _secrets | {secret}
        # longest first, so a key that contains another is removed whole
        alternatives = "|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))
        _secrets_pattern = re.compile(alternatives)
        _secrets = secrets


# Header names whose values are credentials (matched as lower-case substrings).
_SECRET_HEADER_WORDS = ("authorization", "key", "token", "secret", "cookie", "auth")


def register_header_secrets(headers: Mapping[str, str]) -> None:
    """Register the values of credential headers (``Authorization``, ``api-key``, ``x-…-token``).

    For ``Authorization: Bearer <token>`` the token alone is registered too, so an echo of
    just the token is caught.
    """
    for name, value in headers.items():
        if not isinstance(value, str) or not any(w in name.lower() for w in _SECRET_HEADER_WORDS):
            continue
        register_secret(value.strip())
        scheme, _, token = value.strip().partition(" ")
        if token and scheme.isalpha():
            register_secret(token.strip())


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-looking value replaced."""
    if not text:
        return text
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """A copy of a decoded JSON value (or a plain string or bytes) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray):
        # latin-1 maps every byte to one character and back: nothing else in the body changes
        return redact(bytes(value).decode("latin-1")).encode("latin-1")
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value
