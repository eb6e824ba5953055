"""The warnings check configuration raises, and issues located in the pack's source text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit._errors import ValidationIssue, present_as_promptkit
from promptkit.checks.types import CheckType, InvalidParams, UnusableParams
from promptkit.pack.model import Pack
from promptkit.pack.positions import Locator, PathElement

__all__ = ["EvalConfigWarning", "Findings", "GuardrailConfigWarning", "locator_for"]


class GuardrailConfigWarning(UserWarning):
    """A validator's parameters are unusable (e.g. ``length`` without a limit): it is skipped."""


class EvalConfigWarning(UserWarning):
    """An eval has an unknown type or unusable parameters: it is skipped."""


present_as_promptkit(GuardrailConfigWarning, EvalConfigWarning)


def locator_for(pack: Pack) -> Locator:
    """A locator over the pack's file (for line and column), or one without positions."""
    text = None
    if pack.path is not None:
        try:
            text = Path(pack.path).read_text("utf-8")
        except OSError:
            text = None
    return Locator(text)


@dataclass(slots=True)
class Findings:
    """Errors (the open fails) and warnings (the item is skipped) found while compiling.

    The pack's file is read (for line and column) only when there is something to report."""

    pack: Pack
    errors: list[ValidationIssue] = field(default_factory=list)
    warnings: list[ValidationIssue] = field(default_factory=list)
    _locator: Locator | None = None

    @property
    def locator(self) -> Locator:
        if self._locator is None:
            self._locator = locator_for(self.pack)
        return self._locator

    def error(self, path: Sequence[PathElement], message: str) -> None:
        self.errors.append(self._issue(path, message))

    def warn(self, path: Sequence[PathElement], message: str) -> None:
        self.warnings.append(self._issue(path, message))

    def prepared(self, check_type: CheckType, kind: str, params: Mapping[str, Any],
                 path: Sequence[PathElement]) -> tuple[bool, Any]:
        """``(True, config)`` for usable params; else the problem is recorded (unusable:
        a warning and the item is skipped; invalid: an error) and ``(False, None)``."""
        try:
            return True, check_type.prepare(params)
        except UnusableParams as exc:
            self.warn((*path, "params"), f"{kind}: {exc}")
        except InvalidParams as exc:
            self.error((*path, "params"), f"{kind}: {exc}")
        return False, None

    def _issue(self, path: Sequence[PathElement], message: str) -> ValidationIssue:
        if path and path[0] in ("prompts", "evals"):
            return self.locator.issue(path, message)
        return Locator(None).issue(path, message)  # from code (open(guardrails=...)): no file
