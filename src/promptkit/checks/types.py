"""The vocabulary of check types: what a check looks at, what it returns, how it is described.

A :class:`CheckType` has a canonical (Go) name, aliases, ``prepare(params)`` that checks the
parameters once, at open, and returns the ready configuration, and ``run(config, input)`` that
scores one text. ``prepare`` raises :class:`UnusableParams` when the check cannot work with
what the pack gives (it is then skipped with a warning, as Go does) and :class:`InvalidParams`
when a value is plainly wrong (a regex that does not compile): that fails the open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from promptkit.engine.guardrails import StreamScan
from promptkit.engine.messages import Message, ToolCall

__all__ = ["CheckInput", "CheckType", "InvalidParams", "Outcome", "UnusableParams"]


class UnusableParams(ValueError):
    """The parameters leave the check nothing to do (e.g. ``length`` without a limit)."""


class InvalidParams(ValueError):
    """A parameter value is wrong (a regex that does not compile, a schema that is not one)."""


@dataclass(frozen=True, slots=True)
class CheckInput:
    """What a check looks at: ``text`` (the answer, or the user message for input
    guardrails) and, for evals, the ``messages`` so far and the turn's ``tool_calls``."""

    text: str
    messages: tuple[Message, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """A check's verdict: ``passed``, an optional ``score`` (0..1) and what it found."""

    passed: bool
    score: float | None = None
    explanation: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckType:
    """One check type. ``scan`` (for streaming guardrails) builds a fresh per-turn scan;
    ``evals_only`` types (``tools_called``, ``llm_judge``) cannot be validators."""

    name: str
    prepare: Callable[[Mapping[str, Any]], Any]
    run: Callable[[Any, CheckInput], Outcome]
    aliases: tuple[str, ...] = ()
    scan: Callable[[Any], StreamScan] | None = None
    evals_only: bool = False
    summary: str = ""
