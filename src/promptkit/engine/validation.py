"""ValidationResult: what one guardrail decided on one text (a value chunks and Responses carry)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ValidationResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationResult:
    """What one guardrail decided on one text.

    ``type`` is the validator's type as the pack names it; ``direction`` the side it checked
    (``"input"`` or ``"output"``); ``enforced`` whether a failure blocks (``False`` in monitor
    mode); ``blocked`` whether this failure replaced the reply (or stopped the input);
    ``message`` the text shown instead of a blocked reply; ``details`` what the check found
    (e.g. the banned word).
    """

    type: str
    passed: bool
    message: str = ""
    direction: str = "output"
    enforced: bool = True
    blocked: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "passed": self.passed, "message": self.message,
                "direction": self.direction, "enforced": self.enforced,
                "blocked": self.blocked, "details": dict(self.details)}
