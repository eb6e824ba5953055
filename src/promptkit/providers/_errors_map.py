"""Shared, pure error mapping for every dialect: HTTP status → error class, retry signals.

Dialects extract ``message`` / ``code`` / ``type`` from their error envelope and call
:func:`build_status_error`; in-band (mid-stream) errors use the same function with
``status=None`` so ``except promptkit.OverloadedError`` catches both kinds.

Classification: by HTTP status (:func:`error_class_for_status`), refined by the provider's
code, type and message (:func:`classify`): an invalid key is an ``AuthenticationError`` even
on a 400, a context overflow a ``ContextLengthError``, ``model_not_found`` on a 400 a
``NotFoundError``, an overloaded type on a 5xx an ``OverloadedError``. Retryable: the class
default (rate limit, overloaded, server errors), plus 408 and 409 (``BadRequestError`` with
``retryable=True``, as the official SDKs retry them); an exhausted quota or spend limit is a
``RateLimitError`` that is not retryable; an ``x-should-retry: true|false`` header overrides
everything. A Google ``CANCELLED`` status (HTTP 499) is a ``ServerError``: the request was
fine. The wait hint comes from the ``retry-after-ms`` / ``retry-after`` headers, else from the
body (Google's ``RetryInfo.retryDelay``, see :func:`google_error_details`).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from promptkit._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextLengthError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "build_status_error",
    "classify",
    "error_class_for_status",
    "extract_error_fields",
    "fallback_message",
    "get_header",
    "google_error_details",
    "is_quota_exhausted",
    "parse_duration",
    "parse_error_body",
    "parse_retry_after",
]

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    500: ServerError,
    502: ServerError,
    503: OverloadedError,
    504: ServerError,
    529: OverloadedError,
}

# provider codes / types (lower-case) that decide the class when there is no HTTP status
_BY_TOKEN: dict[str, type[APIStatusError]] = {
    "invalid_api_key": AuthenticationError,
    "authentication_error": AuthenticationError,
    "unauthenticated": AuthenticationError,
    "api_key_invalid": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "permission_denied": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "model_not_found": NotFoundError,
    "not_found": NotFoundError,
    "context_length_exceeded": ContextLengthError,
    "rate_limit_exceeded": RateLimitError,
    "rate_limit_error": RateLimitError,
    "resource_exhausted": RateLimitError,
    "insufficient_quota": RateLimitError,
    "tokens": RateLimitError,
    "requests": RateLimitError,
    "overloaded_error": OverloadedError,
    "overloaded": OverloadedError,
    "unavailable": OverloadedError,
    "server_error": ServerError,
    "api_error": ServerError,
    "internal": ServerError,
    "invalid_request_error": BadRequestError,
    "invalid_argument": BadRequestError,
}

_AUTH_TOKENS = frozenset(("invalid_api_key", "api_key_invalid", "authentication_error"))
_OVERLOADED_TOKENS = frozenset(("overloaded_error", "overloaded"))
_QUOTA_TOKENS = frozenset((
    "insufficient_quota", "billing_hard_limit_reached", "billing_not_active",
    "enforced_spend_limit_reached",
))
_QUOTA_PHRASES = ("billing details", "spend limit", "billing hard limit", "credit balance")
_CONTEXT_PHRASES = (
    "context length", "context window", "context_length_exceeded", "prompt is too long",
    "input token count", "maximum number of tokens allowed", "input tokens exceed",
)
_REQUEST_ID_HEADERS = ("x-request-id", "request-id")


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Look ``name`` (lower-case) up in ``headers``, whatever their case."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms`` first, then ``retry-after``.

    ``retry-after`` is seconds (a float) or an HTTP date (a date in the past gives ``0.0``).
    Missing, negative, non-finite or unparseable values give ``None``.
    """
    value = get_header(headers, "retry-after-ms")
    if value is not None:
        seconds = _non_negative(value)
        if seconds is not None:
            return seconds / 1000.0
    value = get_header(headers, "retry-after")
    if value is None:
        return None
    seconds = _non_negative(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _non_negative(value: str) -> float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def error_class_for_status(status: int) -> type[APIStatusError]:
    """The error class for an HTTP status alone (other 4xx: bad request; other 5xx: server)."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if 400 <= status < 500:
        return BadRequestError
    if status >= 500:
        return ServerError
    return APIStatusError


def is_quota_exhausted(code: str | None, error_type: str | None, message: str) -> bool:
    """Whether an error says the quota, credit or spend limit is used up (not retryable)."""
    if (code and code.lower() in _QUOTA_TOKENS) or (
            error_type and error_type.lower() in _QUOTA_TOKENS):
        return True
    lowered = message.lower()
    return any(phrase in lowered for phrase in _QUOTA_PHRASES)


def classify(status: int | None, *, code: str | None = None, error_type: str | None = None,
             message: str = "", default: type[APIStatusError] = ServerError,
             ) -> type[APIStatusError]:
    """The error class for a status (``None`` for in-band errors) and the provider's details.

    ``default`` is used for an in-band error whose code and type are unknown.
    """
    tokens = [t.lower() for t in (code, error_type) if t]
    if any(t in _AUTH_TOKENS for t in tokens):
        return AuthenticationError
    if status in (None, 400, 413) and ("context_length_exceeded" in tokens or any(
            phrase in message.lower() for phrase in _CONTEXT_PHRASES)):
        return ContextLengthError
    if status is None:
        for token in tokens:
            cls = _BY_TOKEN.get(token)
            if cls is not None:
                return cls
        return default
    if status in (None, 499) and "cancelled" in tokens:
        return ServerError
    if status == 400 and "model_not_found" in tokens:
        return NotFoundError
    if status >= 500 and any(t in _OVERLOADED_TOKENS for t in tokens):
        return OverloadedError
    return error_class_for_status(status)


def build_status_error(
    *,
    status: int | None,
    message: str,
    provider: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    error_type: str | None = None,
    request_id: str | None = None,
    retryable: bool | None = None,
    retry_after: float | None = None,
    default: type[APIStatusError] = ServerError,
) -> APIStatusError:
    """Build the error for a provider's error reply or in-band error event.

    ``retryable`` forces the decision (a dialect that knows better); otherwise it follows the
    rules in the module docstring. ``request_id`` defaults to the ``x-request-id`` or
    ``request-id`` header. ``retry_after`` is a wait hint found in the body; a header wins.
    """
    cls = classify(status, code=code, error_type=error_type, message=message, default=default)
    if retryable is None:
        if status in (408, 409):
            retryable = True
        elif cls is RateLimitError and is_quota_exhausted(code, error_type, message):
            retryable = False
    if headers:
        should_retry = get_header(headers, "x-should-retry")
        if should_retry is not None and should_retry.strip().lower() in ("true", "false"):
            retryable = should_retry.strip().lower() == "true"
        from_header = parse_retry_after(headers)
        if from_header is not None:
            retry_after = from_header
        if request_id is None:
            for name in _REQUEST_ID_HEADERS:
                request_id = get_header(headers, name)
                if request_id:
                    break
    return cls(message, status_code=status, body=body, request_id=request_id or None,
               provider=provider, retryable=retryable, retry_after=retry_after, code=code)


def extract_error_fields(payload: Any) -> tuple[str, str | None, str | None, int | None]:
    """``(message, code, type, numeric_code)`` from a parsed error body or error event.

    Understands ``{"error": {"message", "type", "code", "status"}}`` (OpenAI, Anthropic,
    Gemini), ``{"error": "text"}`` (Ollama), ``{"message": ...}`` and a one-element list
    around any of them (Gemini streaming). ``numeric_code`` is an integer ``code`` (gateways
    and Gemini put the HTTP status there). Missing parts are ``""`` / ``None``.
    """
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return "", None, None, None
    error: Any = payload.get("error")
    if isinstance(error, str):
        return error, None, None, None
    if not isinstance(error, dict):
        error = payload
    message = error.get("message")
    raw_code = error.get("code")
    raw_type = error.get("type") or error.get("status")
    numeric = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
    if isinstance(message, str):
        text = message
    elif message is None:
        text = ""
    else:
        text = json.dumps(message, ensure_ascii=False)
    return (text, raw_code if isinstance(raw_code, str) else None,
            raw_type if isinstance(raw_type, str) else None, numeric)


def parse_duration(value: Any) -> float | None:
    """Seconds in a protobuf JSON duration such as ``"34.4s"`` (``None`` if not one)."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    return _non_negative(value[:-1])


def google_error_details(error: Any) -> tuple[str | None, float | None, bool]:
    """``(reason, retry_delay, quota_exhausted)`` from a Google error object's ``details``.

    ``reason`` is the first ``ErrorInfo.reason`` (e.g. ``API_KEY_INVALID``), ``retry_delay``
    the ``RetryInfo.retryDelay`` in seconds, and ``quota_exhausted`` is true when a quota
    limit of ``"0"`` is reported (no quota at all: waiting will not help).
    """
    reason: str | None = None
    delay: float | None = None
    exhausted = False
    details = error.get("details") if isinstance(error, dict) else None
    for item in details if isinstance(details, list) else ():
        if not isinstance(item, dict):
            continue
        kind = str(item.get("@type", ""))
        if kind.endswith("ErrorInfo"):
            if reason is None and isinstance(item.get("reason"), str):
                reason = item["reason"]
            metadata = item.get("metadata")
            if isinstance(metadata, dict) and str(metadata.get("quota_limit_value")) == "0":
                exhausted = True
        elif kind.endswith("RetryInfo"):
            delay = parse_duration(item.get("retryDelay"))
    return reason, delay, exhausted


def fallback_message(status: int, body: bytes) -> str:
    """A message for an error body without one: the status phrase and a short text excerpt.

    HTML pages (proxies, gateways) are not quoted, only named.
    """
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    text = " ".join(body[:2000].decode("utf-8", "replace").split())
    if not text:
        return f"HTTP {status} {phrase}"
    if text.startswith("<"):
        return f"HTTP {status} {phrase} (HTML error page)"
    if len(text) > 200:
        text = text[:200] + "…"
    return f"HTTP {status} {phrase}: {text}"


def parse_error_body(body: bytes) -> Any:
    """The JSON value of an error reply's body, or ``None`` when it holds none.

    A plain JSON body, or one sent in stream framing (gateways and proxies answer a streaming
    request so): the first SSE ``data:`` payload that is a JSON object with an ``error``
    (else the first JSON one), or the first NDJSON line that is a JSON object.
    """
    try:
        return json.loads(body)
    except ValueError:
        pass
    text = body[:65536].decode("utf-8", "replace")
    lines = text.splitlines()
    payloads = [line[5:].strip() for line in lines if line.startswith("data:")]
    if not payloads:
        payloads = [line.strip() for line in lines if line.strip().startswith("{")]
    first: Any = None
    for payload in payloads:
        try:
            value = json.loads(payload)
        except ValueError:
            continue
        if isinstance(value, dict) and "error" in value:
            return value
        if first is None and isinstance(value, dict):
            first = value
    return first


def status_error_from_body(status: int, headers: Mapping[str, str], body: bytes,
                           provider: str) -> APIStatusError:
    """The error for a non-2xx reply whose body is an OpenAI-style (or Ollama-style) error
    envelope (plain, or in stream framing), or any text / HTML body."""
    parsed = parse_error_body(body)
    message, code, error_type, _ = extract_error_fields(parsed)
    raw = parsed if parsed is not None else body[:4000].decode("utf-8", "replace")
    return build_status_error(status=status, message=message or fallback_message(status, body),
                              provider=provider, body=raw, headers=headers, code=code,
                              error_type=error_type)
