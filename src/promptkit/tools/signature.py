"""Tool schemas from Python signatures: a typed function becomes a tool the model can call.

A tool declared in the pack brings its own JSON Schema; a function registered with
``@conv.tool`` that the pack does not declare gets one from its signature (types, defaults,
``Literal`` and enum choices, the docstring as description). The arguments a model sends are
checked against either schema by ``promptkit.engine.arguments``.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["is_context_annotation", "schema_from_signature", "takes_argument_dict"]

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def is_context_annotation(annotation: Any) -> bool:
    """Whether a parameter annotation asks for the :class:`ToolContext` (maybe Optional)."""
    if isinstance(annotation, str):
        return re.search(r"\bToolContext\b", annotation) is not None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(is_context_annotation(a) for a in typing.get_args(annotation))
    return getattr(annotation, "__name__", None) == "ToolContext"


def _type_schema(annotation: Any) -> dict[str, Any]:
    """JSON Schema for one annotation (best effort; unknown types accept anything)."""
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _type_schema(options[0])
        return {"anyOf": [_type_schema(a) for a in options]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set):
        item = _type_schema(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return {"type": "object"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        hints = typing.get_type_hints(annotation)
        return {"type": "object",
                "properties": {f.name: _type_schema(hints[f.name])
                               for f in dataclasses.fields(annotation)}}
    model_schema = getattr(annotation, "model_json_schema", None)  # pydantic v2 models
    if callable(model_schema):
        return dict(model_schema())
    return {}


def takes_argument_dict(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is written ``fn(args)`` / ``fn(args, ctx)`` rather than with named
    parameters: its first parameter is called ``args``, or annotated as a dict/Mapping, or no
    parameter is annotated at all (``lambda a: ...``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        return False
    first = positional[0]
    if first.name in ("args", "arguments"):
        return True
    if all(p.annotation is p.empty for p in params):
        return True
    annotation = first.annotation
    if isinstance(annotation, str):
        return annotation.split("[")[0] in ("dict", "Mapping", "typing.Mapping")
    return annotation in (dict, Mapping) or typing.get_origin(annotation) in (dict, Mapping)


def schema_from_signature(fn: Callable[..., Any]) -> tuple[dict[str, Any], str]:
    """The parameters schema and description of a function with named parameters.

        >>> def get_time(timezone: str = "UTC") -> str: "Current time in a timezone."
        >>> schema_from_signature(get_time)[0]["properties"]
        {'timezone': {'type': 'string', 'default': 'UTC'}}
    """
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an unresolvable forward reference: resolve parameter by parameter
        hints = _hints_one_by_one(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, param.annotation)
        if is_context_annotation(annotation):
            continue
        prop = _type_schema(annotation) if annotation is not param.empty else {}
        if param.default is param.empty:
            required.append(param.name)
        elif _json_literal(param.default):
            prop["default"] = param.default
        properties[param.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    doc = inspect.getdoc(fn) or ""
    return schema, doc.split("\n\n", 1)[0].strip()


def _hints_one_by_one(fn: Callable[..., Any]) -> dict[str, Any]:
    namespace = dict(getattr(fn, "__globals__", {}))
    hints: dict[str, Any] = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        try:
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:  # leave this one untyped: it accepts any value
            continue
    return hints


def _json_literal(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
