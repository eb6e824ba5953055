"""A conversation's template variables: typed, validated, thread-safe, resolved every turn.

Precedence: the pack's defaults < values given at open < :meth:`VariableSet.set`. Values are
kept as strings (the prompt is text): ``True`` → ``"true"``, ``3`` → ``"3"``, dicts and lists →
compact JSON, ``None`` removes a value (the default, if any, applies again).

Checks per declared ``type`` (values of undeclared names are accepted as they are):

- ``string`` — anything;
- ``number`` — a decimal number such as ``3``, ``-2.5`` or ``1e3`` (finite);
- ``boolean`` — ``true`` or ``false`` in any case, stored lower-case. ``1``/``0``/``yes`` are
  refused: the value is pasted into the prompt, so it should read as the boolean it is;
- ``object`` / ``array`` — JSON text of that kind.

Then the pack's ``validation`` rules: ``pattern`` (``re.search``, as JSON Schema's ``pattern``),
``min_length``/``max_length`` (characters of the value's text), ``minimum``/``maximum`` (the
value as a number) and ``enum`` (the text equals an allowed value's text, or the typed values
are equal).

Typical use, once per conversation and then every turn::

    variables = VariableSet(prompt.variables, {"user_name": "Ada"})
    variables.set("tone", "friendly")
    system_prompt = variables.resolve(prompt.template, pack.fragments, prompt.name)
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from promptkit._errors import InvalidVariableError, MissingVariableError
from promptkit.pack.template import CompiledTemplate, stringify

if TYPE_CHECKING:
    from promptkit.pack.model import VariableSpec

__all__ = ["VariableSet", "check_value", "spec_problems", "to_text"]

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def to_text(name: str, value: Any) -> str | None:
    """The stored text of a value (``None`` means "remove"); refuses values with no JSON form."""
    try:
        return stringify(value)
    except (TypeError, ValueError):
        kind = type(value).__name__
        raise InvalidVariableError(
            name, f"cannot use a {kind} value; pass a str, int, float, bool, dict or list"
        ) from None


def check_value(spec: VariableSpec, value: str) -> str:
    """Check ``value`` against the spec's type and validation rules; returns the value to store.

    Raises :class:`~promptkit.InvalidVariableError` saying what is wrong.
    """
    name = spec.name
    number: float | None = None
    typed: Any = value
    if spec.type == "number":
        number = _parse_number(value)
        if number is None:
            raise InvalidVariableError(name, f"expected a number, got {value!r}")
        typed = number
    elif spec.type == "boolean":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise InvalidVariableError(name, f"expected true or false, got {value!r}")
        value, typed = lowered, lowered == "true"
    elif spec.type in ("object", "array"):
        typed = _parse_json(name, spec.type, value)
    rules = spec.validation
    if rules is None:
        return value
    if rules.pattern is not None and not _compiled(name, rules.pattern).search(value):
        raise InvalidVariableError(name, f"{value!r} does not match the pattern {rules.pattern!r}")
    if rules.min_length is not None and len(value) < rules.min_length:
        raise InvalidVariableError(
            name, f"must be at least {rules.min_length} characters long, got {len(value)}"
        )
    if rules.max_length is not None and len(value) > rules.max_length:
        raise InvalidVariableError(
            name, f"must be at most {rules.max_length} characters long, got {len(value)}"
        )
    if rules.minimum is not None or rules.maximum is not None:
        if number is None:
            number = _parse_number(value)
        if number is None:
            raise InvalidVariableError(
                name, f"expected a number (the pack sets a minimum or maximum), got {value!r}"
            )
        if rules.minimum is not None and number < rules.minimum:
            raise InvalidVariableError(name, f"must be at least {rules.minimum}, got {value}")
        if rules.maximum is not None and number > rules.maximum:
            raise InvalidVariableError(name, f"must be at most {rules.maximum}, got {value}")
    if rules.enum is not None and not any(_same(value, typed, x) for x in rules.enum):
        allowed = ", ".join(repr(stringify(x)) for x in rules.enum)
        raise InvalidVariableError(name, f"{value!r} is not one of the allowed values: {allowed}")
    return value


def _parse_number(text: str) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _parse_json(name: str, kind: str, value: str) -> Any:
    try:
        parsed = json.loads(value)
    except ValueError:
        raise InvalidVariableError(name, f"expected JSON {kind} text, got {value!r}") from None
    if not isinstance(parsed, dict if kind == "object" else list):
        raise InvalidVariableError(name, f"expected a JSON {kind}, got {value!r}")
    return parsed


def _same(text: str, typed: Any, allowed: Any) -> bool:
    """Whether a value equals an ``enum`` entry, by text or (for typed variables) by value."""
    if stringify(allowed) == text:
        return True
    if isinstance(typed, str) or isinstance(allowed, bool) != isinstance(typed, bool):
        return False
    return bool(typed == allowed)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _compiled(name: str, pattern: str) -> re.Pattern[str]:
    try:
        return _compile(pattern)
    except re.error as error:
        raise InvalidVariableError(
            name, f"the pack's validation pattern {pattern!r} is not a valid regular expression: "
            f"{error}"
        ) from None


_Declared: TypeAlias = (
    "tuple[dict[str, VariableSpec], dict[str, str], dict[str, InvalidVariableError]]")
_DECLARED: dict[int, tuple[object, _Declared]] = {}


def _declared(specs: Iterable[VariableSpec]) -> _Declared:
    """The specs by name, the pack defaults as text and the defaults' own errors; computed
    once per prompt (a prompt's ``variables`` tuple) and shared, read-only, by its
    conversations."""
    cached = _DECLARED.get(id(specs))
    if cached is not None and cached[0] is specs:
        return cached[1]
    by_name = {spec.name: spec for spec in specs}
    # A default that breaks its own rules only matters (and raises) when it is used.
    defaults: dict[str, str] = {}
    errors: dict[str, InvalidVariableError] = {}
    for spec in by_name.values():
        text = to_text(spec.name, spec.default) if spec.has_default else None
        if text is None:
            continue
        try:
            defaults[spec.name] = check_value(spec, text)
        except InvalidVariableError as error:
            defaults[spec.name] = text
            errors[spec.name] = InvalidVariableError(
                spec.name, f"the pack's default is invalid: {error.reason}")
    declared = (by_name, defaults, errors)
    if isinstance(specs, tuple):  # immutable: safe to remember (the entry keeps it alive)
        if len(_DECLARED) >= 256:
            _DECLARED.clear()
        _DECLARED[id(specs)] = (specs, declared)
    return declared


# Setting variables is rare and quick: all variable sets take turns on one lock.
_WRITING = threading.Lock()
_NO_VALUES: dict[str, str] = {}  # never changed: sets without values share it


class VariableSet:
    """The variables of one conversation: declared specs, pack defaults and values set so far.

    Safe to use from several threads. ``set`` validates at once, so a bad value raises where it
    is set; :meth:`resolve` checks required variables and renders the template every turn.
    Copy on write: setting replaces the values mapping (under one process-wide lock), so
    readers take the current one without locking, and a set without values holds no dict.
    """

    __slots__ = ("_default_errors", "_defaults", "_specs", "_values")

    def __init__(
        self,
        specs: Iterable[VariableSpec] = (),
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self._specs, self._defaults, self._default_errors = _declared(specs)
        self._values: dict[str, str] = _NO_VALUES
        if values:
            self.set_many(values)

    @property
    def specs(self) -> tuple[VariableSpec, ...]:
        """The declared variables, in pack order."""
        return tuple(self._specs.values())

    def set(self, name: str, value: Any) -> None:
        """Set one variable (``None`` removes it); raises InvalidVariableError if not allowed."""
        self.set_many({name: value})

    def set_many(self, values: Mapping[str, Any]) -> None:
        """Set several variables at once: all are checked first, then all applied together."""
        prepared = [(name, self._prepare(name, value)) for name, value in values.items()]
        with _WRITING:
            updated = dict(self._values)
            for name, text in prepared:
                if text is None:
                    updated.pop(name, None)
                else:
                    updated[name] = text
            self._values = updated if updated else _NO_VALUES

    def set_from_env(
        self, prefix: str, environ: Mapping[str, str] | None = None
    ) -> tuple[str, ...]:
        """Set variables from environment variables named ``prefix`` + NAME; returns the names.

        ``PROMPTKIT_USER_NAME=Ada`` with prefix ``"PROMPTKIT_"`` sets ``user_name``.
        """
        env = os.environ if environ is None else environ
        found = {
            key[len(prefix) :].lower(): value
            for key, value in env.items()
            if key.startswith(prefix) and len(key) > len(prefix)
        }
        self.set_many(found)
        return tuple(sorted(found))

    def get(self, name: str) -> str | None:
        """The value in effect: the one set, else the pack default, else None."""
        value = self._values.get(name)  # published mappings are never changed
        return self._defaults.get(name) if value is None else value

    def snapshot(self) -> dict[str, str]:
        """Every value in effect, defaults included, as a new dict."""
        return {**self._defaults, **self._values}

    def copy(self) -> VariableSet:
        """An independent copy (for a forked conversation)."""
        clone = VariableSet(self._specs.values())
        clone._values = self._values  # never changed in place: sharing it is copying it
        return clone

    def resolve(
        self,
        template: CompiledTemplate,
        fragments: Mapping[str, str],
        prompt_name: str = "",
    ) -> str:
        """Render ``template`` with the values in effect, after checking required variables.

        Required variables that are unset or empty raise one MissingVariableError naming them
        all, as do placeholders left without a value; a pack default breaking its own rules
        raises InvalidVariableError. A declared optional variable with no value and no default
        renders as an empty string.
        """
        values = self._values
        effective: dict[str, str] = {}
        missing: list[str] = []
        for name, spec in self._specs.items():
            value = values.get(name)
            if value is None and name in self._defaults:
                error = self._default_errors.get(name)
                if error is not None:
                    raise error
                value = self._defaults[name]
            if spec.required and not value:
                missing.append(name)
            effective[name] = value or ""
        if missing:
            raise MissingVariableError(missing, prompt=prompt_name)
        for name, value in values.items():
            effective.setdefault(name, value)
        return template.render(effective, fragments, prompt=prompt_name)

    def _prepare(self, name: str, value: Any) -> str | None:
        text = to_text(name, value)
        spec = self._specs.get(name)
        if text is None or spec is None:
            return text
        return check_value(spec, text)


def spec_problems(spec: VariableSpec) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Problems in a variable's declaration: (errors, warnings) as (path suffix, message).

    Errors make the variable unusable (a pattern Python cannot compile, bounds no value can
    meet); a default breaking the rules is a warning, as callers can still override it.
    """
    rules = spec.validation
    if rules is not None:
        if rules.pattern is not None:
            try:
                _compile(rules.pattern)
            except re.error as error:
                message = f"pattern {rules.pattern!r} is not a valid regular expression: {error}"
                return [("validation.pattern", message)], []
        for low_name, low, high_name, high in (
            ("min_length", rules.min_length, "max_length", rules.max_length),
            ("minimum", rules.minimum, "maximum", rules.maximum),
        ):
            if low is not None and high is not None and low > high:
                message = f"{low_name} {low} is greater than {high_name} {high}: no value can pass"
                return [("validation", message)], []
    if spec.has_default and spec.default is not None:
        try:
            check_value(spec, to_text(spec.name, spec.default) or "")
        except InvalidVariableError as error:
            return [], [("default", f"the default does not pass the variable's rules: {error}")]
    return [], []
