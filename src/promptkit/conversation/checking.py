"""How the two drivers answer the engine's ``RunChecks`` step (guardrails that may be async).

The engine runs plain validators itself; only checks marked ``is_async`` (a custom validator
that is an ``async def``, or may return an awaitable) come here. Each value goes back in order;
an exception is sent back as the value, for the engine to turn into a ``GuardrailError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from promptkit.engine.guardrails import Guardrail

__all__ = ["run_checks_async", "run_checks_blocking"]


def run_checks_blocking(checks: Sequence[tuple[Guardrail, str]]) -> list[Any]:
    """Run the checks from blocking code; an awaitable result runs in a private event loop
    in a worker thread (so this works inside a running loop too, as in a notebook)."""
    values: list[Any] = []
    for guardrail, text in checks:
        try:
            value = guardrail.check(text)
            if inspect.isawaitable(value):
                value = _run_in_thread(value)
        except Exception as exc:
            value = exc
        values.append(value)
    return values


async def run_checks_async(checks: Sequence[tuple[Guardrail, str]]) -> list[Any]:
    """Run the checks in the event loop, awaiting async ones."""
    values: list[Any] = []
    for guardrail, text in checks:
        try:
            value = guardrail.check(text)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            value = exc
        values.append(value)
    return values


def _run_in_thread(awaitable: Any) -> Any:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def wait() -> Any:
        return await awaitable

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptkit-check") as pool:
        return pool.submit(asyncio.run, wait()).result()
