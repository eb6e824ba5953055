"""Locating problems in JSON documents, so pack problems read as ``file:line:col: path: msg``.

Only used once a pack has failed to load, so it favours simplicity over speed: it walks the
text along one JSON path, letting the standard decoder skip the values it does not enter
(which keeps string escapes, nesting and unicode exact). It also turns JSON Schema errors and
decode errors into :class:`~promptkit.ValidationIssue` values.

    >>> locate('{"a": [1, {"b": true}]}', ["a", 1, "b"])
    (1, 17)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptkit._errors import ValidationIssue

if TYPE_CHECKING:
    from jsonschema import ValidationError

__all__ = [
    "Locator",
    "decode_error_issue",
    "describe",
    "format_path",
    "line_column",
    "locate",
    "locate_index",
    "schema_issues",
    "unexpected_property",
]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_DOTTABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")

PathElement = str | int


def format_path(path: Iterable[PathElement]) -> str:
    """Render a JSON path the way issues show it: ``$.prompts.chat.variables[0].type``."""
    parts = ["$"]
    for element in path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif _DOTTABLE.match(element):
            parts.append(f".{element}")
        else:
            parts.append(f"[{json.dumps(element, ensure_ascii=False)}]")
    return "".join(parts)


def line_column(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index, counted as :mod:`json` does."""
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    return line, column


def locate(text: str, path: Sequence[PathElement], *, key: bool = False) -> tuple[int, int] | None:
    """(line, column) of the value at ``path``, or of the deepest part of the path that exists.

    With ``key=True`` and a path ending in an object key, the position of that key is given
    instead of its value (to point at an unexpected property). ``None`` if the text is not JSON.
    """
    index = locate_index(text, path, key=key)
    return None if index is None else line_column(text, index)


def locate_index(text: str, path: Sequence[PathElement], *, key: bool = False) -> int | None:
    """Character index where the value (or key) at ``path`` starts; see :func:`locate`."""
    try:
        index = _skip_ws(text, 0)
        if index >= len(text):
            return None
        for depth, element in enumerate(path):
            found = _find_child(text, index, element)
            if found is None:
                break
            key_index, value_index = found
            if key and depth == len(path) - 1 and key_index is not None:
                return key_index
            index = value_index
        return index
    except (ValueError, IndexError):
        return None


def decode_error_issue(error: json.JSONDecodeError) -> ValidationIssue:
    """The issue reported for text that is not JSON at all (message like ``Expecting ','``)."""
    return ValidationIssue(
        path="$",
        message=f"invalid JSON: {error.msg}",
        line=error.lineno,
        column=error.colno,
    )


def _skip_ws(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return index if match is None else match.end()


def _value_end(text: str, index: int) -> int:
    """Index just past the JSON value starting at ``index``."""
    return _DECODER.raw_decode(text, index)[1]


def _find_child(text: str, start: int, element: PathElement) -> tuple[int | None, int] | None:
    """(key index, value index) of ``element`` inside the container starting at ``start``."""
    opener = text[start]
    if opener == "{" and isinstance(element, str):
        return _find_member(text, start, element)
    if opener == "[" and isinstance(element, int) and not isinstance(element, bool):
        return _find_item(text, start, element)
    return None


def _find_member(text: str, start: int, name: str) -> tuple[int | None, int] | None:
    # Keep scanning after a match: with duplicate keys the last one wins, as in json.loads.
    found: tuple[int | None, int] | None = None
    index = _skip_ws(text, start + 1)
    if text[index] == "}":
        return None
    while True:
        key_index = index
        member, index = _DECODER.raw_decode(text, index)
        index = _skip_ws(text, index)
        if text[index] != ":":
            raise ValueError("expected ':'")
        index = _skip_ws(text, index + 1)
        if member == name:
            found = (key_index, index)
        index = _skip_ws(text, _value_end(text, index))
        if text[index] != ",":
            return found
        index = _skip_ws(text, index + 1)


def _find_item(text: str, start: int, position: int) -> tuple[int | None, int] | None:
    index = _skip_ws(text, start + 1)
    if text[index] == "]":
        return None
    count = 0
    while True:
        if count == position:
            return (None, index)
        index = _skip_ws(text, _value_end(text, index))
        if text[index] != ",":
            return None
        index = _skip_ws(text, index + 1)
        count += 1


class Locator:
    """Makes issues for one document, with line and column when its source text is known."""

    __slots__ = ("_text",)

    def __init__(self, text: str | None) -> None:
        self._text = text

    def issue(
        self, path: Sequence[PathElement], message: str, *, key: bool = False
    ) -> ValidationIssue:
        """An issue at ``path`` (at its key instead of its value when ``key``)."""
        position = None if self._text is None else locate(self._text, path, key=key)
        line, column = position if position is not None else (None, None)
        return ValidationIssue(path=format_path(path), message=message, line=line, column=column)

    @staticmethod
    def sorted(issues: Iterable[ValidationIssue]) -> list[ValidationIssue]:
        """Issues without duplicates, in document order (those without a position first)."""
        unique = {(i.path, i.message, i.line, i.column): i for i in issues}
        return sorted(
            unique.values(),
            key=lambda i: (i.line is not None, i.line or 0, i.column or 0, i.path, i.message),
        )


def schema_issues(errors: Iterable[ValidationError], locator: Locator) -> list[ValidationIssue]:
    """Issues for JSON Schema validation errors: one per problem, with useful messages.

    For a ``oneOf``/``anyOf`` failure the complaints of the alternative the value was meant to
    match are reported (not just "is not valid under any of the given schemas"); every
    unexpected property is named.
    """
    issues: list[ValidationIssue] = []
    for error in errors:
        issues += _issues(error, locator)
    return issues


def _issues(error: ValidationError, locator: Locator) -> list[ValidationIssue]:
    path = tuple(error.absolute_path)
    if error.context:
        return _alternative_issues(error, locator)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = list(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        return [
            locator.issue((*path, key), unexpected_property(key, allowed), key=True)
            for key in error.instance
            if key not in allowed and not any(p.search(key) for p in patterns)
        ]
    return [locator.issue(path, _message(error))]


def _alternative_issues(error: ValidationError, locator: Locator) -> list[ValidationIssue]:
    """Issues for a value matching none of a ``oneOf``/``anyOf``'s alternatives."""
    import heapq

    from jsonschema.exceptions import relevance

    groups: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        groups.setdefault(sub.relative_schema_path[0], []).append(sub)
    # An alternative whose discriminator (a const like "kind") or top-level type differs is
    # not the one the author meant: leave it out.
    plausible = [group for group in groups.values() if not any(map(_rules_out, group))]
    if len(plausible) == 1:
        return [issue for sub in plausible[0] for issue in _issues(sub, locator)]
    path = tuple(error.absolute_path)
    if not plausible and all(sub.validator == "type" for sub in error.context or ()):
        types = dict.fromkeys(str(t) for sub in error.context or () for t in _listed(sub))
        return [locator.issue(path, f"expected {' or '.join(types)}, got "
                                    f"{describe(error.instance)}")]
    consts = [sub for sub in error.context or () if sub.validator == "const"]
    if not plausible and len(consts) == len(groups) and len({tuple(c.path) for c in consts}) == 1:
        allowed = ", ".join(_short(c.validator_value) for c in consts)
        where = tuple(consts[0].absolute_path)
        return [locator.issue(where, f"{describe(consts[0].instance)} is not one of {allowed}")]
    candidates = [sub for group in (plausible or groups.values()) for sub in group]
    ranked = heapq.nsmallest(2, candidates, key=relevance)
    if len(ranked) == 2 and relevance(ranked[0]) == relevance(ranked[1]):
        reasons = list(dict.fromkeys(_message(sub) for sub in candidates))
        message = "matches none of the allowed forms: " + "; ".join(reasons[:3])
        return [locator.issue(path, message)]
    return _issues(ranked[0], locator)


def _rules_out(error: ValidationError) -> bool:
    return error.validator == "const" or (error.validator == "type" and not error.relative_path)


def _listed(error: ValidationError) -> list[Any]:
    value = error.validator_value
    return value if isinstance(value, list) else [value]


def _message(error: ValidationError) -> str:
    kind, expected, instance = error.validator, error.validator_value, error.instance
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return f"expected {' or '.join(map(str, types))}, got {describe(instance)}"
    if kind == "enum":
        return f"{describe(instance)} is not one of {_short(expected)}"
    if kind == "const":
        return f"expected {_short(expected)}, got {describe(instance)}"
    if kind == "pattern" and len(str(expected)) > 40:  # e.g. SemVer: say what, not the regex
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        what = str(schema.get("description", "")).split(". ")[0]
        return f"{describe(instance)} is not in the required format" + (f": {what}" if what else "")
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


def describe(value: Any) -> str:
    """A short description of a JSON value for messages: ``an object``, ``string "x"``."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {_short(value)}"
    return f"{'string' if isinstance(value, str) else 'number'} {_short(value)}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def unexpected_property(key: str, allowed: Sequence[str]) -> str:
    """The message for a property the schema does not allow, with a did-you-mean hint."""
    import difflib

    message = f"unexpected property {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message
