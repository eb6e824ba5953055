"""When and how long to wait before retrying a failed model call (pure policy)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from promptkit._errors import APIStatusError, PromptKitError, ProviderError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring the provider's ``Retry-After`` hints.

    A call is retried only while nothing of it reached the caller, only for retryable errors
    (connection failures, 408/409/429/5xx, overloaded), at most ``max_retries`` times. A
    ``Retry-After`` longer than ``max_retry_after`` means the provider wants us to stop: no
    retry.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, error: PromptKitError) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or ``None`` for no retry."""
        if attempt >= self.max_retries or not isinstance(error, ProviderError):
            return None
        if not error.retryable:
            return None
        hint = error.retry_after if isinstance(error, APIStatusError) else None
        if hint is not None:
            if hint > self.max_retry_after:
                return None
            return max(0.0, hint)
        base = min(self.max_delay, self.initial_delay * 2.0**attempt)
        return base * (1 - 0.25 * random.random())
