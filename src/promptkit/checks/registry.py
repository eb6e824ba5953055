"""The registry of check types shared by guardrails and evals: names, aliases, suggestions.

The built-in types (``builtin``) are registered when this module loads; :func:`lookup`
resolves a Go name or an alias; :func:`nearest_names` suggests names for a typo.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from promptkit.checks.builtin import BUILTIN_TYPES
from promptkit.checks.types import CheckType

__all__ = ["all_types", "canonical", "known_names", "lookup", "nearest_names", "register"]

_TYPES: dict[str, CheckType] = {}
_ALIASES: dict[str, str] = {}


def register(check: CheckType) -> CheckType:
    """Add a check type under its name and aliases."""
    _TYPES[check.name] = check
    for alias in check.aliases:
        _ALIASES[alias] = check.name
    return check


for _check in BUILTIN_TYPES:
    register(_check)


def canonical(name: str) -> str | None:
    """The Go name of a built-in type or alias, or ``None``."""
    if name in _TYPES:
        return name
    return _ALIASES.get(name)


def lookup(name: str) -> CheckType | None:
    """The built-in check type called ``name`` (a Go name or an alias), or ``None``."""
    found = canonical(name)
    return None if found is None else _TYPES[found]


def known_names(*, evals: bool = True) -> list[str]:
    """Every built-in name and alias (without the eval-only types when ``evals`` is false)."""
    names = [n for n, t in _TYPES.items() if evals or not t.evals_only]
    names += [a for a, n in _ALIASES.items() if evals or not _TYPES[n].evals_only]
    return sorted(names)


def all_types() -> list[CheckType]:
    """The registered types, in registration order (the docs' order)."""
    return list(_TYPES.values())


def nearest_names(name: str, candidates: Iterable[str], count: int = 3) -> list[str]:
    """The ``count`` candidates most similar to ``name`` (difflib ratio), best first."""
    scored = sorted(((difflib.SequenceMatcher(None, name, c).ratio(), c) for c in set(candidates)),
                    key=lambda item: (-item[0], item[1]))
    return [c for _, c in scored[:count]]
