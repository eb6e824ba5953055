"""The ``promptkit`` logger tree and every log line promptkit writes about a turn.

Loggers: ``promptkit`` and its children ``promptkit.providers`` (one DEBUG line per model
request: provider, host, status, request id, attempt, time to first byte; INFO per retry, with
its delay), ``promptkit.tools`` (HTTP tools at DEBUG, logged by ``tools/http.py`` through the same
``redact``), ``promptkit.stores``,
``promptkit.server``, ``promptkit.mcp``; WARNING on ``promptkit`` for configuration warnings,
monitor-mode guardrail violations and event handlers that raised.

Every message is built here and passed through :func:`promptkit._redact.redact` before it is
logged, so no record (message or arguments) carries an API key or an auth header value.
``PROMPTKIT_LOG=debug|info`` (read by :func:`install_from_env`) or ``promptkit chat --verbose``
(:func:`install_handler`) adds a stderr handler for quick looks; otherwise promptkit adds no
handler (the library default) and configuring ``logging`` is the application's business.
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from promptkit._redact import redact

__all__ = [
    "LOGGER_NAMES",
    "config_warning",
    "handler_failed",
    "host_of",
    "install_from_env",
    "install_from_env_once",
    "install_handler",
    "log_request",
    "log_retry",
    "observing",
    "request_id",
    "violation",
]

root = logging.getLogger("promptkit")
providers = logging.getLogger("promptkit.providers")
tools = logging.getLogger("promptkit.tools")
stores = logging.getLogger("promptkit.stores")
server = logging.getLogger("promptkit.server")
LOGGER_NAMES = ("promptkit", "promptkit.providers", "promptkit.tools", "promptkit.stores",
                "promptkit.server", "promptkit.mcp")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "cf-ray")
_HANDLER_MARK = "_promptkit_handler"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def observing() -> bool:
    """Whether a turn's provider calls are worth logging (INFO or lower enabled)."""
    return providers.isEnabledFor(logging.INFO)


def request_id(headers: Mapping[str, str] | None) -> str | None:
    """The provider's request id from reply headers (names lower-cased), if it sent one."""
    if not headers:
        return None
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


@functools.lru_cache(maxsize=64)
def host_of(base_url: str) -> tuple[str | None, int | None]:
    """``(host, port)`` of an endpoint URL (the port defaulted from the scheme); cached, as
    every conversation on one endpoint asks the same."""
    try:
        parts = urlsplit(base_url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None, None
    return parts.hostname, port


def _log(logger: logging.Logger, level: int, message: str) -> None:
    """The one exit: the finished message, redacted, with no arguments left to format."""
    logger.log(level, redact(message))


def log_request(*, provider: str, host: str | None, model: str, attempt: int,
                status: int | None, request: str | None, ttfb: float | None,
                duration: float, error: BaseException | None) -> None:
    """DEBUG: one model request and how it went."""
    if not providers.isEnabledFor(logging.DEBUG):
        return
    parts = [f"{provider} request to {host or '?'} model={model} attempt={attempt}",
             f"status={status if status is not None else '-'}",
             f"request_id={request or '-'}",
             f"ttfb={'-' if ttfb is None else f'{ttfb:.3f}s'}",
             f"duration={duration:.3f}s"]
    if error is not None:
        parts.append(f"error={type(error).__name__}: {error}")
    _log(providers, logging.DEBUG, " ".join(parts))


def log_retry(*, provider: str, attempt: int, error: BaseException, delay: float) -> None:
    """INFO: a model call is retried."""
    if providers.isEnabledFor(logging.INFO):
        _log(providers, logging.INFO,
             f"{provider} call attempt {attempt} failed ({type(error).__name__}: {error}); "
             f"retrying in {delay:.2f} s")


def config_warning(message: str) -> None:
    """WARNING: a configuration problem that does not stop the conversation (a skipped
    guardrail or eval, a pack warning)."""
    _log(root, logging.WARNING, message)


def violation(check: str, message: str, *, direction: str, enforced: bool) -> None:
    """WARNING for a monitored (not enforced) guardrail violation; INFO for an enforced one."""
    mode = "enforced" if enforced else "monitor mode: reply unchanged"
    _log(root, logging.INFO if enforced else logging.WARNING,
         f"guardrail {check} failed on the {direction} ({mode}): {message}")


def handler_failed(handler: Any, event: str, exc: BaseException) -> None:
    """WARNING: an event handler (or an exporter) raised; the turn goes on."""
    name = getattr(handler, "__qualname__", None) or type(handler).__name__
    detail = "".join(traceback.format_exception(exc)).rstrip()
    _log(root, logging.WARNING, f"{name} raised on {event} (ignored):\n{detail}")


class _Formatter(logging.Formatter):
    """Redacts again at output, for records other libraries' code logged under ``promptkit``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def install_handler(level: int | str = logging.DEBUG) -> logging.Handler:
    """Send ``promptkit`` logs at ``level`` and above to stderr (idempotent); returns the
    handler."""
    if isinstance(level, str):
        level = _LEVELS[level.lower()]
    for existing in root.handlers:
        if getattr(existing, _HANDLER_MARK, False):
            existing.setLevel(level)
            root.setLevel(min(root.level or level, level))
            return existing
    handler = logging.StreamHandler()
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


_env_read = False


def install_from_env_once() -> None:
    """:func:`install_from_env` the first time a conversation opens."""
    global _env_read
    if not _env_read:
        _env_read = True
        install_from_env()


def install_from_env() -> None:
    """Honour ``PROMPTKIT_LOG=debug|info|warning``: install the stderr handler at that level."""
    value = os.environ.get("PROMPTKIT_LOG", "").strip().lower()
    if value in _LEVELS:
        install_handler(value)
