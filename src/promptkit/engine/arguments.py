"""Checking a model's tool-call arguments against the tool's JSON Schema before a handler runs.

The model's arguments are coerced first (``"3"`` → ``3`` for an integer field, ``"true"`` →
``True`` for a boolean), then validated; problems become an error result that tells the model
what to fix, never a handler call with bad data.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["argument_problems", "coerce_arguments"]


def _coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(value, str):
        text = value.strip()
        if kind == "integer":
            try:
                return int(text)
            except ValueError:
                return value
        if kind == "number":
            try:
                number = float(text)
            except ValueError:
                return value
            return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        return value
    if kind == "object" and isinstance(value, dict):
        return coerce_arguments(schema, value)
    if kind == "array" and isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_coerce(item, schema["items"]) for item in value]
    return value


def coerce_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments with string-encoded numbers and booleans turned into their schema types."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return dict(arguments)
    return {name: _coerce(value, properties[name]) if isinstance(properties.get(name), Mapping)
            else value for name, value in arguments.items()}


@functools.lru_cache(maxsize=256)
def _validator(canonical_schema: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(canonical_schema))


def argument_problems(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """Every way ``arguments`` break ``schema``, as short messages naming the field."""
    canonical = json.dumps(schema, sort_keys=True, default=dict)
    problems = []
    for error in sorted(_validator(canonical).iter_errors(dict(arguments)), key=str):
        where = ".".join(str(part) for part in error.absolute_path)
        problems.append(f"{where}: {error.message}" if where else error.message)
    return problems
