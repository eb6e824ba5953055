"""Typed output: ``response_format=`` as a Python type, and ``Response.parsed``.

``response_format`` is a JSON Schema mapping, ``{"type": "json_object"}``, or a type: a
dataclass, a ``TypedDict``, a ``msgspec.Struct`` or a pydantic model (duck-typed: anything with
``model_json_schema()`` and ``model_validate_json()``; promptkit does not depend on pydantic).
:func:`output_spec` turns it into the schema sent to the provider and the decoder that turns
the final answer into ``Response.parsed``. The schemas of dataclasses and TypedDicts are
derived here; a Struct's comes from ``msgspec.json.schema`` and a pydantic model's from the
model. Decoding (and type checking) of dataclasses, TypedDicts and Structs is msgspec's.

A turn whose answer does not decode fails with :class:`ResponseParseError` (raised by
``send()``, delivered as the ERROR chunk of a stream) and, like every failed turn, commits
nothing; the error carries the answer in ``raw_text``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import functools
import types
import typing
import uuid
from collections import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from promptkit._errors import PromptKitError, present_as_promptkit

__all__ = ["OutputSpec", "ResponseParseError", "output_spec", "schema_of_type"]


class ResponseParseError(PromptKitError, ValueError):
    """The answer is not valid JSON for the requested ``response_format``.

    ``raw_text`` is the model's answer as it arrived; ``output_type`` names the type (or
    ``"JSON"`` for a schema mapping). Nothing of the failed turn was committed.
    """

    def __init__(self, message: str, *, raw_text: str = "", output_type: str = "") -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.output_type = output_type


present_as_promptkit(ResponseParseError)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What a ``response_format`` asks of a turn: the schema mapping sent to the provider
    (``response_format``) and how the answer is decoded (:meth:`parse`)."""

    response_format: Mapping[str, Any]
    name: str
    decode: Callable[[str], Any]

    def parse(self, text: str, finish_reason: str | None = None) -> Any:
        """The decoded answer; raises :class:`ResponseParseError` (keeping ``text``)."""
        try:
            return self.decode(_unfenced(text))
        except Exception as exc:  # every decoder's own error type (msgspec, pydantic, json)
            cut = (" (the answer was cut off: finish_reason 'length'; raise max_tokens)"
                   if finish_reason == "length" else "")
            raise ResponseParseError(
                f"the answer is not a valid {self.name}{cut}: {_first_line(exc)}",
                raw_text=text, output_type=self.name) from exc


def output_spec(response_format: Any) -> OutputSpec | None:
    """The :class:`OutputSpec` of a ``response_format`` option (``None`` for ``None``)."""
    if response_format is None:
        return None
    if isinstance(response_format, OutputSpec):
        return response_format
    if isinstance(response_format, Mapping):
        from promptkit._json import loads

        return OutputSpec(dict(response_format), "JSON", loads)
    if isinstance(response_format, type):
        return _spec_for_type(response_format)
    raise TypeError("response_format must be a JSON Schema mapping, {'type': 'json_object'}, "
                    "a dataclass, a TypedDict, a msgspec.Struct or a pydantic model, not "
                    f"{response_format!r}")


@functools.lru_cache(maxsize=128)
def _spec_for_type(kind: Any) -> OutputSpec:
    name: str = kind.__name__
    if callable(getattr(kind, "model_json_schema", None)) and callable(
            getattr(kind, "model_validate_json", None)):  # a pydantic (v2) model
        schema = dict(kind.model_json_schema())
        return OutputSpec(schema, name, kind.model_validate_json)
    if _is_struct(kind):
        import msgspec

        return OutputSpec(_lift_ref(msgspec.json.schema(kind)), name,
                          msgspec.json.Decoder(kind).decode)
    if not (_is_dataclass(kind) or _is_typeddict(kind)):
        raise TypeError(f"response_format type {name} is not a dataclass, TypedDict, "
                        "msgspec.Struct or pydantic model")
    schema = schema_of_type(kind)
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a dependency on CPython
        raise TypeError(f"decoding into {name} needs msgspec (pip install msgspec)") from None
    return OutputSpec(schema, name, msgspec.json.Decoder(kind).decode)


def schema_of_type(kind: type) -> dict[str, Any]:
    """The JSON Schema of a dataclass or TypedDict: an object schema titled by the class,
    nested classes under ``$defs`` (so recursive types work).

        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class City:
        ...     name: str
        ...     population: int | None = None
        >>> schema_of_type(City)["required"], schema_of_type(City)["properties"]["name"]
        (['name'], {'type': 'string'})
    """
    defs: dict[str, dict[str, Any]] = {}
    schema = _SchemaBuilder(defs).object_schema(kind)
    if defs:
        schema["$defs"] = defs
    return schema


class _SchemaBuilder:
    """Builds one schema; named object types go into ``defs`` once each."""

    def __init__(self, defs: dict[str, dict[str, Any]]) -> None:
        self.defs = defs
        self.names: dict[type, str] = {}

    def object_schema(self, kind: Any) -> dict[str, Any]:
        if _is_dataclass(kind):
            hints = typing.get_type_hints(kind)
            fields = [f for f in dataclasses.fields(kind) if f.init]
            properties = {f.name: self.schema(hints[f.name]) for f in fields}
            required = [f.name for f in fields if f.default is dataclasses.MISSING
                        and f.default_factory is dataclasses.MISSING]
        elif _is_typeddict(kind):
            # with extras: under ``from __future__ import annotations`` a NotRequired[...]
            # key still shows in __required_keys__, so the annotation itself decides
            hints = typing.get_type_hints(kind, include_extras=True)
            properties, required = {}, []
            for key, annotation in hints.items():
                marker = typing.get_origin(annotation)
                hint = (typing.get_args(annotation)[0]
                        if marker in (typing.Required, typing.NotRequired) else annotation)
                if marker is typing.Required or (
                        marker is not typing.NotRequired and key in kind.__required_keys__):
                    required.append(key)
                properties[key] = self.schema(hint)
        else:  # pragma: no cover - callers check
            raise TypeError(kind)
        schema: dict[str, Any] = {"title": kind.__name__, "type": "object",
                                  "properties": properties}
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        doc = _own_doc(kind)
        if doc:
            schema["description"] = doc
        return schema

    def reference(self, kind: type, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        name = self.names.get(kind)
        if name is None:
            name = kind.__name__
            while name in self.defs:
                name += "_"
            self.names[kind] = name
            self.defs[name] = {}  # reserved first: a recursive reference finds it
            self.defs[name] = build()
        return {"$ref": f"#/$defs/{name}"}

    def schema(self, hint: Any) -> dict[str, Any]:
        if hint is Any or hint is object:
            return {}
        if hint is type(None) or hint is None:
            return {"type": "null"}
        if hint in _SCALARS:
            return dict(_SCALARS[hint])
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is typing.Annotated:
            return self.schema(args[0])
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.schema(arg) for arg in args]}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return {"enum": [member.value for member in hint]}
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {"type": "array", "prefixItems": [self.schema(a) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        if origin in _ARRAYS or hint in _ARRAYS:
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in _MAPS or hint in _MAPS:
            if len(args) == 2:
                return {"type": "object", "additionalProperties": self.schema(args[1])}
            return {"type": "object"}
        if isinstance(hint, type) and (_is_dataclass(hint) or _is_typeddict(hint)):
            return self.reference(hint, lambda: self.object_schema(hint))
        if isinstance(hint, type) and _is_struct(hint):
            return self.reference(hint, lambda: self.foreign(hint))
        raise TypeError(f"cannot derive a JSON Schema for {hint!r}; use a JSON Schema mapping")

    def foreign(self, kind: type) -> dict[str, Any]:
        """A Struct's own schema, its ``$defs`` merged into ours."""
        import msgspec

        lifted = _lift_ref(msgspec.json.schema(kind))
        self.defs.update(lifted.pop("$defs", {}))
        return lifted


_SCALARS: dict[Any, dict[str, str]] = {
    str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
    bool: {"type": "boolean"}, bytes: {"type": "string", "contentEncoding": "base64"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    decimal.Decimal: {"type": "string", "format": "decimal"},
}
_ARRAYS = (list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set,
           abc.MutableSet)
_MAPS = (dict, abc.Mapping, abc.MutableMapping)

def _lift_ref(schema: Mapping[str, Any]) -> dict[str, Any]:
    """msgspec's ``{"$ref": "#/$defs/X", "$defs": {...}}`` as X's object schema at the top
    (providers want an object there), ``$defs`` kept for the references inside."""
    schema = dict(schema)
    ref = schema.get("$ref")
    defs = dict(schema.get("$defs") or {})
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
        top = dict(defs[ref[8:]])
        others = {k: v for k, v in defs.items() if k != ref[8:] or _refers_to(defs, ref)}
        if others:
            top["$defs"] = others
        return top
    return schema


def _refers_to(defs: Mapping[str, Any], ref: str) -> bool:
    """Whether any definition refers to ``ref`` (a recursive type keeps its definition)."""
    import json

    return f'"{ref}"' in json.dumps(defs)


def _is_dataclass(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _is_typeddict(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, dict) and hasattr(
        kind, "__required_keys__")


def _is_struct(kind: Any) -> bool:
    try:
        import msgspec
    except ImportError:  # pragma: no cover - no msgspec, so no Structs either
        return False
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _own_doc(kind: type) -> str:
    doc = (kind.__doc__ or "").strip()
    if not doc or doc.startswith(kind.__name__ + "("):  # the dataclass-generated signature
        return ""
    return doc


def _unfenced(text: str) -> str:
    """The answer without a Markdown code fence around it (models without a native JSON
    mode often add one)."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and len(stripped) > 6:
        body = stripped[3:-3]
        newline = body.find("\n")
        return body[newline + 1:] if newline >= 0 else body
    return stripped


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
