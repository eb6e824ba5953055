"""A resolved provider: the dialect that speaks its wire format, the model, and its transports.

Made by ``providers._select`` (and ``providers.mock``); the conversation drivers plug its
dialect and transports together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promptkit.engine.dialect import Dialect
    from promptkit.transport._base import AsyncTransport, SyncTransport

__all__ = ["Binding"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """A resolved provider: its dialect, model and how to make transports for it."""

    provider: str
    model: str
    dialect: Dialect
    sync_transport: Callable[[], SyncTransport]
    async_transport: Callable[[], AsyncTransport]
    options: Mapping[str, object] = field(default_factory=dict)
