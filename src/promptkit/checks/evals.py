"""Evals: compile the pack's and the prompt's ``evals``, decide which run, and score them.

A prompt-level eval overrides a pack-level one with the same ``id``. Unknown types and
unusable parameters warn (:class:`EvalConfigWarning`) and skip the eval; a ``sample_percentage``
outside 0–100 or a bad parameter value fails the open. Sampling is deterministic: a hash of the
conversation id and the turn index (``sample_turns``) or of the conversation id alone
(``sample_sessions``), so a re-run samples the same turns. ``llm_judge`` evals are scored by
the conversation layer (they call a model), with :mod:`promptkit.checks.judge`.
"""

from __future__ import annotations

import hashlib
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptkit._errors import PackValidationError
from promptkit.checks.problems import EvalConfigWarning, Findings
from promptkit.checks.registry import known_names, lookup, nearest_names
from promptkit.checks.types import CheckInput, CheckType, Outcome
from promptkit.engine.messages import Message, ToolCall
from promptkit.engine.validation import ValidationResult
from promptkit.pack.model import Pack, PromptSpec
from promptkit.pack.positions import PathElement

__all__ = [
    "TRIGGERS",
    "EvalResult",
    "EvalSpec",
    "compile_evals",
    "eval_findings",
    "outcome_of_custom",
    "sampled",
    "session_evals",
    "session_input",
    "transcript_turns",
    "turn_evals",
]

TRIGGERS = ("every_turn", "sample_turns", "on_session_complete", "sample_sessions")
DEFAULT_SAMPLE_PERCENTAGE = 5.0
CustomEval = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    """The score of one eval on one turn (``turn_index``, 0-based) or on the whole session
    (``turn_index`` ``None``). ``metric`` is the eval's ``metric`` block (Prometheus-style
    ``name`` and ``type``) when the pack gives one; ``message`` says what failed."""

    id: str
    type: str
    trigger: str
    passed: bool
    score: float | None = None
    message: str = ""
    turn_index: int | None = None
    metric: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "trigger": self.trigger,
                "passed": self.passed, "score": self.score, "message": self.message,
                "turn_index": self.turn_index,
                "metric": None if self.metric is None else dict(self.metric)}


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalSpec:
    """One compiled eval."""

    id: str
    type: str
    trigger: str
    sample_percentage: float = DEFAULT_SAMPLE_PERCENTAGE
    params: Mapping[str, Any] = field(default_factory=dict)
    check_type: CheckType | None = None
    config: Any = None
    custom: CustomEval | None = None
    is_async: bool = False
    metric: Mapping[str, Any] | None = None

    @property
    def is_judge(self) -> bool:
        return self.custom is None and self.type == "llm_judge"

    @property
    def per_session(self) -> bool:
        return self.trigger in ("on_session_complete", "sample_sessions")

    def result(self, outcome: Outcome, turn_index: int | None) -> EvalResult:
        return EvalResult(id=self.id, type=self.type, trigger=self.trigger,
                          passed=outcome.passed, score=outcome.score,
                          message=outcome.explanation, turn_index=turn_index,
                          metric=self.metric)

    def score(self, data: CheckInput) -> Outcome:
        """Run a built-in (non-judge) check; a custom one goes through the conversation layer."""
        assert self.check_type is not None and not self.is_judge
        return self.check_type.run(self.config, data)


def compile_evals(pack: Pack, prompt: PromptSpec, *,
                  custom: Mapping[str, CustomEval] | None = None) -> tuple[EvalSpec, ...]:
    """The prompt's effective evals; raises for bad values, warns and skips unusable ones."""
    findings = Findings(pack)
    compiled = _compile_all(pack, prompt, custom or {}, findings)
    if findings.errors:
        raise PackValidationError(pack.path or pack.id or "<pack>",
                                  findings.locator.sorted(findings.errors))
    for issue in findings.warnings:
        warnings.warn(f"{issue.path}: {issue.message}; the eval is skipped", EvalConfigWarning,
                      stacklevel=4)
    return compiled


def eval_findings(pack: Pack, findings: Findings) -> None:
    """Every prompt's eval problems into ``findings`` (for ``promptkit validate``)."""
    for prompt in pack.prompts.values():
        _compile_all(pack, prompt, {}, findings)


def _entries(pack: Pack, prompt: PromptSpec) -> list[tuple[tuple[PathElement, ...], Any]]:
    chosen: dict[Any, tuple[tuple[PathElement, ...], Any]] = {}
    for i, entry in enumerate(pack.raw.get("evals") or ()):
        chosen[_key(entry, ("evals", i))] = (("evals", i), entry)
    for i, entry in enumerate(prompt.raw.get("evals") or ()):
        path: tuple[PathElement, ...] = ("prompts", prompt.name, "evals", i)
        chosen[_key(entry, path)] = (path, entry)  # same id: the prompt's wins
    return list(chosen.values())


def _key(entry: Any, path: tuple[PathElement, ...]) -> Any:
    if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
        return entry["id"]
    return path


def _compile_all(pack: Pack, prompt: PromptSpec, custom: Mapping[str, CustomEval],
                 findings: Findings) -> tuple[EvalSpec, ...]:
    compiled = []
    for path, entry in _entries(pack, prompt):
        spec = _compile_one(path, entry, custom, findings)
        if spec is not None:
            compiled.append(spec)
    return tuple(compiled)


def _compile_one(path: tuple[PathElement, ...], entry: Any, custom: Mapping[str, CustomEval],
                 findings: Findings) -> EvalSpec | None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        findings.error(path, "an eval is an object with a string `type`")
        return None
    if entry.get("enabled", True) is False:
        return None
    kind: str = entry["type"]
    trigger = entry.get("trigger", "every_turn")
    if trigger not in TRIGGERS:
        findings.error((*path, "trigger"), f"trigger must be one of {', '.join(TRIGGERS)}, "
                       f"not {trigger!r}")
        return None
    percentage = entry.get("sample_percentage", DEFAULT_SAMPLE_PERCENTAGE)
    if isinstance(percentage, bool) or not isinstance(percentage, int | float) \
            or not 0 <= percentage <= 100:
        findings.error((*path, "sample_percentage"),
                       f"sample_percentage must be a number from 0 to 100, not {percentage!r}")
        return None
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        findings.error((*path, "params"), "params must be an object")
        return None
    metric = entry.get("metric")
    common = {"id": str(entry.get("id") or kind), "type": kind, "trigger": trigger,
              "sample_percentage": float(percentage), "params": dict(params),
              "metric": dict(metric) if isinstance(metric, Mapping) else None}
    function = custom.get(kind)
    if function is not None:
        return EvalSpec(**common, custom=function, is_async=inspect.iscoroutinefunction(function))
    check_type = lookup(kind)
    if check_type is None:
        names = [*known_names(), *custom]
        findings.warn((*path, "type"), f"unknown eval type {kind!r} (nearest known: "
                      f"{', '.join(nearest_names(kind, names))}; register it with "
                      "open(evals={...}))")
        return None
    usable, config = findings.prepared(check_type, kind, params, path)
    return EvalSpec(**common, check_type=check_type, config=config) if usable else None


# --- which evals run -------------------------------------------------------------------------


def sampled(percentage: float, *key: object) -> bool:
    """Whether the item identified by ``key`` falls in the sample: deterministic, uniform."""
    if percentage >= 100:
        return True
    if percentage <= 0:
        return False
    digest = hashlib.sha256(":".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percentage


def turn_evals(specs: Sequence[EvalSpec], conversation_id: str | None,
               turn_index: int) -> list[EvalSpec]:
    """The per-turn evals that run after turn ``turn_index`` (without an id: all of them)."""
    chosen = []
    for spec in specs:
        if spec.trigger == "every_turn" or (spec.trigger == "sample_turns" and (
                conversation_id is None
                or sampled(spec.sample_percentage, conversation_id, turn_index))):
            chosen.append(spec)
    return chosen


def session_evals(specs: Sequence[EvalSpec], conversation_id: str | None) -> list[EvalSpec]:
    """The session evals that run when the conversation closes."""
    return [spec for spec in specs if spec.trigger == "on_session_complete" or (
        spec.trigger == "sample_sessions" and (
            conversation_id is None or sampled(spec.sample_percentage, conversation_id)))]


# --- what they look at -----------------------------------------------------------------------


def transcript_turns(messages: Sequence[Message]) -> list[CheckInput]:
    """One input per user turn of a transcript: the turn's last answer, the messages up to
    it, and the turn's tool calls."""
    turns: list[CheckInput] = []
    start: int | None = None
    for index, message in enumerate([*messages, Message(role="user")]):
        if message.role != "user":
            continue
        if start is not None:
            turns.append(_turn_input(messages, start, index))
        start = index
    return turns


def _turn_input(messages: Sequence[Message], start: int, end: int) -> CheckInput:
    turn = messages[start:end]
    answer = next((m.text for m in reversed(turn) if m.role == "assistant"), "")
    calls: list[ToolCall] = [c for m in turn for c in m.tool_calls]
    return CheckInput(answer, tuple(messages[:end]), tuple(calls))


def session_input(messages: Sequence[Message]) -> CheckInput:
    """The whole session: every answer joined by newlines, every tool call."""
    answers = [m.text for m in messages if m.role == "assistant" and m.text]
    calls = [c for m in messages for c in m.tool_calls]
    return CheckInput("\n".join(answers), tuple(messages), tuple(calls))


def outcome_of_custom(value: Any, spec: EvalSpec) -> Outcome:
    """A custom eval's return value as an Outcome: bool, a score (0..1, passing at
    ``params.passing_score``, default 0.5), an EvalResult / ValidationResult, or a mapping
    with ``passed`` / ``score``."""
    if isinstance(value, bool):
        return Outcome(value, 1.0 if value else 0.0)
    if isinstance(value, int | float):
        passing = float(spec.params.get("passing_score", 0.5))
        return Outcome(float(value) >= passing, float(value))
    if isinstance(value, EvalResult):
        return Outcome(value.passed, value.score, value.message)
    if isinstance(value, ValidationResult):
        return Outcome(value.passed, 1.0 if value.passed else 0.0, value.message)
    if isinstance(value, Mapping) and ("passed" in value or "score" in value):
        score = value.get("score")
        passed = value.get("passed")
        if passed is None:
            passed = score is not None and float(score) >= float(
                spec.params.get("passing_score", 0.5))
        return Outcome(bool(passed), None if score is None else float(score),
                       str(value.get("message") or value.get("reason") or ""))
    return Outcome(False, None, f"eval {spec.id!r} returned {type(value).__name__}, not a "
                   "bool, a score or an EvalResult")
