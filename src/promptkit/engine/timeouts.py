"""Timeout settings and the per-turn deadline arithmetic the drivers share."""

from __future__ import annotations

import math
from dataclasses import dataclass

from promptkit._errors import FirstTokenTimeout, IdleTimeout, ProviderError, TurnTimeout

__all__ = ["Timeouts"]

_INF = math.inf


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """How long each phase of a turn may take, in seconds (``None``: no limit).

    ``connect``: opening the connection. ``first_token``: from sending a request to its first
    content event. ``idle``: between content events (keep-alive comments and pings do not
    reset it). ``total``: the whole turn, all rounds and tools; ``send(..., timeout=)`` and
    ``stream(..., timeout=)`` set it per call.

        >>> promptkit.Timeouts(idle=10, total=120)  # doctest: +SKIP
    """

    connect: float | None = 10.0
    first_token: float | None = 60.0
    idle: float | None = 30.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "first_token", "idle", "total"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(
                    f"Timeouts.{name} must be a positive number or None, not {value!r}")


def _or_inf(value: float | None) -> float:
    return _INF if value is None else value


@dataclass(slots=True)
class RoundClock:
    """Deadlines of one model call, on the monotonic clock; cheap to update per content event.

    ``limit`` is the moment the current wait must end: before the first content event it is
    the first-token deadline, afterwards the idle deadline; never later than the turn deadline.
    """

    turn_deadline: float
    first_token: float
    idle: float
    limit: float = _INF
    first_content_at: float | None = None

    @classmethod
    def start(cls, timeouts: Timeouts, turn_deadline: float, now: float) -> RoundClock:
        clock = cls(turn_deadline, _or_inf(timeouts.first_token), _or_inf(timeouts.idle))
        clock.limit = min(turn_deadline, now + clock.first_token)
        return clock

    def content(self, now: float) -> None:
        """Record a content event at ``now`` (monotonic seconds)."""
        if self.first_content_at is None:
            self.first_content_at = now
        self.limit = min(self.turn_deadline, now + self.idle)

    def expired_error(self) -> ProviderError:
        """The error for a wait that reached ``limit``."""
        if self.limit >= self.turn_deadline:
            return TurnTimeout("the turn passed its deadline")
        if self.first_content_at is None:
            return FirstTokenTimeout(f"no content within {self.first_token:g} s of the request")
        return IdleTimeout(f"no content for {self.idle:g} s")


def turn_deadline(timeouts: Timeouts, per_call: float | None, now: float) -> float:
    """The monotonic deadline of a turn from ``Timeouts.total`` and a per-call ``timeout=``."""
    if per_call is not None and not per_call > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {per_call!r}")
    return now + min(_or_inf(timeouts.total), _or_inf(per_call))
