"""Compile a prompt's ``validators`` (and ``open(guardrails=..., validators=...)``) into the
turn engine's ``Guardrail`` objects.

Unknown types fail the open with a ``PackValidationError`` naming the JSON path, the type and
the nearest known names; unusable parameters warn (:class:`GuardrailConfigWarning`) and skip
the validator; plainly wrong values (a regex that does not compile) fail the open.
``fail_on_violation: false`` makes a validator a monitor; ``mode="monitor"`` makes them all one.
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptkit._errors import PackValidationError
from promptkit.checks.problems import Findings, GuardrailConfigWarning
from promptkit.checks.registry import known_names, lookup, nearest_names
from promptkit.checks.types import CheckInput, CheckType
from promptkit.engine.guardrails import DEFAULT_BLOCK_MESSAGE, Direction, StreamScan
from promptkit.engine.validation import ValidationResult
from promptkit.pack.model import Pack, PromptSpec
from promptkit.pack.positions import PathElement

__all__ = ["CompiledGuardrail", "compile_guardrails", "guardrail_findings"]

CustomValidator = Callable[[str, dict[str, Any]], Any]
_DIRECTIONS = ("input", "output", "both")


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledGuardrail:
    """One validator, ready to run: a built-in check type with its configuration, or a custom
    function ``fn(text, params)`` returning ``bool`` or :class:`ValidationResult`."""

    type: str
    direction: Direction
    enforced: bool
    message: str
    is_async: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    check_type: CheckType | None = None
    config: Any = None
    custom: CustomValidator | None = None
    path: str = ""

    def check(self, text: str) -> Any:
        if self.custom is not None:
            return self.custom(text, dict(self.params))
        assert self.check_type is not None
        outcome = self.check_type.run(self.config, CheckInput(text))
        details = dict(outcome.details)
        if outcome.explanation and not outcome.passed:
            details.setdefault("reason", outcome.explanation)
        return ValidationResult(type=self.type, passed=outcome.passed, message=self.message,
                                details=details)

    def stream_scan(self) -> StreamScan | None:
        if self.check_type is None or self.check_type.scan is None:
            return None
        return self.check_type.scan(self.config)


def compile_guardrails(
    pack: Pack, prompt: PromptSpec, *,
    validators: Mapping[str, CustomValidator] | None = None,
    guardrails: Sequence[Mapping[str, Any]] | None = None,
    mode: str | None = None,
) -> tuple[CompiledGuardrail, ...]:
    """The prompt's guardrails, then those given in code; raises or warns as the module says."""
    if mode not in (None, "enforce", "monitor"):
        raise ValueError(f"guardrails_mode must be 'enforce' or 'monitor', not {mode!r}")
    cached: tuple[tuple[CompiledGuardrail, ...], tuple[Any, ...]] | None
    last = _LAST.get("entry")
    if last is not None and last[0] is pack and last[1] is prompt and last[2] is validators \
            and last[3] is guardrails and last[4] == mode:
        key, cached = None, last[5]  # the same objects as the last open: no key to build
    else:
        key = _cache_key(pack, prompt, validators, guardrails, mode)
        cached = None if key is None else _CACHE.get(key)
    if cached is None:
        findings = Findings(pack)
        compiled = _compile_all(prompt, validators or {}, guardrails or (), mode, findings)
        if findings.errors:
            raise PackValidationError(pack.path or pack.id or "<pack>",
                                      findings.locator.sorted(findings.errors))
        cached = compiled, tuple(findings.warnings)
        if key is not None:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = cached
    _LAST["entry"] = (pack, prompt, validators, guardrails, mode, cached)
    compiled, found = cached
    for issue in found:
        warnings.warn(f"{issue.path}: {issue.message}; the validator is skipped",
                      GuardrailConfigWarning, stacklevel=4)
    return compiled


# Opening many conversations of one prompt (one per request is common) compiles its validators
# once: the key is what the result depends on; custom functions are kept by identity.
_CACHE: dict[Any, tuple[tuple[CompiledGuardrail, ...], tuple[Any, ...]]] = {}
_CACHE_SIZE = 256
_LAST: dict[str, tuple[Any, ...]] = {}  # the last open's arguments and result, by identity


def _cache_key(pack: Pack, prompt: PromptSpec, validators: Mapping[str, CustomValidator] | None,
               guardrails: Sequence[Mapping[str, Any]] | None, mode: str | None) -> Any:
    try:
        specs = json.dumps([list(prompt.validators), list(guardrails or ())], sort_keys=True,
                           default=_unserialisable)
        custom = tuple(sorted((validators or {}).items(), key=lambda item: item[0]))
        key = (pack.path, pack.id, prompt.name, mode, specs, custom)
        hash(key)
    except (TypeError, ValueError):
        return None
    return key


def _unserialisable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError("not JSON")


def guardrail_findings(pack: Pack, findings: Findings) -> None:
    """Every prompt's validator problems into ``findings`` (for ``promptkit validate``)."""
    for prompt in pack.prompts.values():
        _compile_all(prompt, {}, (), None, findings)


def _compile_all(prompt: PromptSpec, custom: Mapping[str, CustomValidator],
                 extra: Sequence[Mapping[str, Any]], mode: str | None,
                 findings: Findings) -> tuple[CompiledGuardrail, ...]:
    entries: list[tuple[tuple[PathElement, ...], Any]] = [
        (("prompts", prompt.name, "validators", i), entry)
        for i, entry in enumerate(prompt.validators)]
    entries += [(("guardrails", i), entry) for i, entry in enumerate(extra)]
    compiled = []
    for path, entry in entries:
        guardrail = _compile_one(path, entry, custom, mode, findings)
        if guardrail is not None:
            compiled.append(guardrail)
    return tuple(compiled)


def _compile_one(path: tuple[PathElement, ...], entry: Any,
                 custom: Mapping[str, CustomValidator], mode: str | None,
                 findings: Findings) -> CompiledGuardrail | None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        findings.error(path, "a validator is an object with a string `type`")
        return None
    if entry.get("enabled", True) is False:
        return None
    kind: str = entry["type"]
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        findings.error((*path, "params"), "params must be an object")
        return None
    direction = params.get("direction", entry.get("direction", "output"))
    if direction not in _DIRECTIONS:
        findings.error((*path, "params", "direction"),
                       f"direction must be one of {', '.join(_DIRECTIONS)}, not {direction!r}")
        return None
    message = str(entry.get("message") or params.get("message") or DEFAULT_BLOCK_MESSAGE)
    enforced = entry.get("fail_on_violation", True) is not False and mode != "monitor"
    common = {"type": kind, "direction": direction, "enforced": enforced, "message": message,
              "params": dict(params), "path": _dotted(path)}
    function = custom.get(kind)
    if function is not None:
        return CompiledGuardrail(**common, custom=function, is_async=_is_async(function))
    check_type = lookup(kind)
    if check_type is None or check_type.evals_only:
        names = [*known_names(evals=False), *custom]
        why = "is an eval type, not a validator" if check_type is not None else "is unknown"
        findings.error((*path, "type"), f"validator type {kind!r} {why}; nearest known: "
                       f"{', '.join(nearest_names(kind, names))} (register custom types "
                       "with open(validators={...}))")
        return None
    usable, config = findings.prepared(check_type, kind, params, path)
    return CompiledGuardrail(**common, check_type=check_type, config=config) if usable else None


def _is_async(function: Callable[..., Any]) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004  (an async __call__ counts)
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


def _dotted(path: Sequence[PathElement]) -> str:
    from promptkit.pack.positions import format_path

    return format_path(path)
