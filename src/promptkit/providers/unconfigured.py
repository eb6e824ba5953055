"""The binding of a conversation opened with no provider configured at all.

``promptkit.open(pack, prompt)`` on a machine with no key and no provider named still gives a
conversation: its variables and ``render_system_prompt()`` work offline. Its first model call
raises :class:`ProviderNotConfiguredError` (saying what to set) before any network I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from promptkit._errors import APIStatusError, ProviderNotConfiguredError
from promptkit.engine.dialect import HTTPRequest, ModelRequest, RoundDecoder

__all__ = ["UnconfiguredDialect"]


class UnconfiguredDialect:
    """A dialect that refuses every request with the configuration hint it was made with."""

    name = ""

    def __init__(self, message: str) -> None:
        self.message = message

    def _refuse(self) -> NoReturn:
        raise ProviderNotConfiguredError(self.message)

    def build_request(self, request: ModelRequest) -> HTTPRequest:
        self._refuse()

    def decoder(self, content_type: str | None = None) -> RoundDecoder:
        self._refuse()

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> APIStatusError:
        self._refuse()
