"""Gemini wire helpers: stream framing with a raw-JSON fallback, streamed function-call
arguments, and JSON Schema → Gemini schema conversion. Pure.

Framing (:class:`GeminiFrames`): Gemini sends ``data: <json>`` events (CRLF or LF line
endings, no ``event:`` lines, no terminator), but may write a raw, pretty-printed JSON error
with no ``data:`` prefix mid-stream (Vertex), and without ``alt=sse`` the whole body is one
JSON array. A WHATWG decoder silently drops such lines, so here a line starting with ``{`` or
``[`` outside an event opens a raw JSON text that runs until its brackets balance (counted
outside strings). Comment lines and other SSE fields are ignored; lone-CR line endings are
not supported (Gemini never sends them). Both kinds of payload come out in stream order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

__all__ = ["GeminiFrames", "PartialArgs", "gemini_schema"]

_RAW_START = frozenset((ord("{"), ord("[")))
_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_OPEN = frozenset((b"{", b"["))


class GeminiFrames:
    """Turns the bytes of a Gemini stream into JSON texts, read by read."""

    __slots__ = ("_data", "_depth", "_partial", "_raw")

    def __init__(self) -> None:
        self._partial = bytearray()  # an incomplete line
        self._data: list[bytes] = []  # data lines of the pending event
        self._raw: list[bytes] = []  # lines of a pending raw JSON text
        self._depth = 0

    def decode(self, data: bytes) -> list[str]:
        """Return the JSON texts completed by ``data`` (possibly none)."""
        if data[:6] == b"data: " and not (self._partial or self._data or self._raw):
            # the common read: exactly one whole one-line event
            end = -4 if data[-4:] == b"\r\n\r\n" else -2 if data[-2:] == b"\n\n" else 0
            if end and data.find(b"\n", 6, len(data) + end) < 0:
                return [data[6:end].decode("utf-8", "replace")]
        lines = data.split(b"\n")
        last = lines.pop()
        partial = self._partial
        if not lines:
            partial += last
            return []
        if partial:
            partial += lines[0]
            lines[0] = bytes(partial)
            partial.clear()
        if last:
            partial += last
        out: list[str] = []
        self._lines(lines, out)
        return out

    def flush(self) -> list[str]:
        """At EOF: a last line without its newline, a pending event, or unbalanced raw text."""
        out: list[str] = []
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._lines([line], out)
        self._lines([b""], out)
        if self._raw:
            out.append(b"\n".join(self._raw).decode("utf-8", "replace"))
            self._raw.clear()
        return out

    def _lines(self, lines: list[bytes], out: list[str]) -> None:
        data = self._data
        for each in lines:
            line = each[:-1] if each[-1:] == b"\r" else each
            if self._raw:
                self._raw_line(line, out)
            elif not line:
                if data:
                    self._dispatch(out)
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] in _RAW_START:
                if data:
                    self._dispatch(out)
                self._raw_line(line, out)
            # comments (":" lines) and other SSE fields are ignored

    def _dispatch(self, out: list[str]) -> None:
        data = self._data
        raw = data[0] if len(data) == 1 else b"\n".join(data)
        out.append(raw.decode("utf-8", "replace"))
        data.clear()

    def _raw_line(self, line: bytes, out: list[str]) -> None:
        self._raw.append(line)
        depth = self._depth
        for token in _BRACKETS.findall(line):
            if token[:1] == b'"':
                continue
            depth += 1 if token in _OPEN else -1
        self._depth = depth
        if depth <= 0:
            out.append(b"\n".join(self._raw).decode("utf-8", "replace"))
            self._raw.clear()
            self._depth = 0


_PATH = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_VALUE_KEYS = ("stringValue", "numberValue", "boolValue", "structValue", "listValue")


class PartialArgs:
    """Arguments of a Vertex call streamed as ``partialArgs`` fragments (``jsonPath`` +
    value; string fragments at one path are concatenated)."""

    __slots__ = ("args",)

    def __init__(self) -> None:
        self.args: dict[str, Any] = {}

    def apply(self, fragments: Any) -> None:
        """Apply one chunk's ``partialArgs`` list."""
        for fragment in fragments if isinstance(fragments, list) else ():
            if not isinstance(fragment, dict) or not isinstance(fragment.get("jsonPath"), str):
                continue
            value: Any = None
            for key in _VALUE_KEYS:
                if key in fragment:
                    value = fragment[key]
                    break
            self._set(fragment["jsonPath"], value)

    def _set(self, path: str, value: Any) -> None:
        keys: list[str | int] = []
        for name, index, quoted, dquoted in _PATH.findall(path.removeprefix("$")):
            keys.append(int(index) if index else name or quoted or dquoted)
        if not keys:
            return
        node: Any = self.args
        for key, following in pairwise(keys):
            child: Any = [] if isinstance(following, int) else {}
            node = _child(node, key, child)
            if node is None:
                return
        last = keys[-1]
        if isinstance(node, dict) and isinstance(last, str):
            old = node.get(last)
            node[last] = old + value if isinstance(old, str) and isinstance(value, str) else value
        elif isinstance(node, list) and isinstance(last, int):
            while len(node) <= last:
                node.append(None)
            old = node[last]
            node[last] = old + value if isinstance(old, str) and isinstance(value, str) else value


def _child(node: Any, key: str | int, empty: Any) -> Any:
    if isinstance(node, dict) and isinstance(key, str):
        if not isinstance(node.get(key), dict | list):
            node[key] = empty
        return node[key]
    if isinstance(node, list) and isinstance(key, int):
        while len(node) <= key:
            node.append(None)
        if not isinstance(node[key], dict | list):
            node[key] = empty
        return node[key]
    return None


# --- JSON Schema → Gemini's OpenAPI subset ---------------------------------------------------

_KEEP = frozenset(("title", "description", "nullable", "minItems", "maxItems", "minProperties",
                   "maxProperties", "minLength", "maxLength", "pattern", "example", "default",
                   "minimum", "maximum", "propertyOrdering"))
_FORMATS = {"STRING": frozenset(("enum", "date-time")),
            "INTEGER": frozenset(("int32", "int64")),
            "NUMBER": frozenset(("float", "double"))}
_MAX_DEPTH = 32


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` in the subset Gemini's ``parameters`` accept: upper-case types, ``nullable``
    for null types, local ``$ref`` inlined, ``oneOf`` as ``anyOf``, ``const`` as a one-value
    enum; unsupported keywords (``additionalProperties``, ``$schema``, ...) dropped."""
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), Mapping):
            defs.update(schema[key])
    return _convert(schema, defs, 0)


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    target = defs.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/") else None
    return {**(target if isinstance(target, Mapping) else {}),
            **{k: v for k, v in schema.items() if k != "$ref"}}


def _convert(schema: Any, defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return {}
    if "$ref" in schema:
        return _convert(_resolve(schema, defs), defs, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in all_of:
            for key, value in (_resolve(sub, defs) if isinstance(sub, Mapping) else {}).items():
                if key == "properties" and isinstance(value, Mapping):
                    merged["properties"] = {**value, **merged.get("properties", {})}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", ()), *value]
                else:
                    merged.setdefault(key, value)
        return _convert(merged, defs, depth + 1)
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        if len(types) < len(kind):
            out["nullable"] = True
        if len(types) > 1:
            out["anyOf"] = [{"type": str(t).upper()} for t in types]
        kind = types[0] if len(types) == 1 else None
    if isinstance(kind, str):
        out["type"] = kind.upper()
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        kept = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
        if len(kept) < len(variants):
            out["nullable"] = True
        converted = [_convert(v, defs, depth + 1) for v in kept]
        if len(converted) == 1:
            out.update(converted[0])
        elif converted:
            out["anyOf"] = converted
    for key in _KEEP:
        if key in schema:
            out[key] = schema[key]
    enum = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = enum
        out.setdefault("type", "STRING")
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {str(k): _convert(v, defs, depth + 1) for k, v in properties.items()}
        required = schema.get("required")
        if isinstance(required, list):
            kept_required = [r for r in required if r in properties]
            if kept_required:
                out["required"] = kept_required
    if "items" in schema:
        out["items"] = _convert(schema["items"], defs, depth + 1)
    return out
