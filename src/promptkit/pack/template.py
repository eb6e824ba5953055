"""Rendering ``{{placeholder}}`` templates: a prompt's system template and the pack's fragments.

The syntax is deliberately small (no conditionals, loops, filters or code):

- ``{{name}}`` and ``{{ name }}`` — a variable;
- ``{{user.name}}``, ``{{items[0].title}}`` — the literal variable ``user.name`` if one is set,
  otherwise a walk into the JSON object or array held by ``user`` / ``items`` (a path that does
  not exist, or ends at JSON ``null``, is unresolved);
- ``{{fragments.x}}`` and ``{{fragment:x}}`` — always the pack fragment ``x``, itself rendered
  (it may use variables and other fragments; nesting is limited and cycles are errors).

Anything else between double braces (``{{#if x}}``, ``{{ a | b }}``) is not a placeholder and is
kept as literal text. Every placeholder left without a value raises one
:class:`~promptkit.MissingVariableError` naming all of them.

Values are substituted once: a value containing ``{{x}}`` is inserted verbatim, never expanded.
Variable values may come from end users, and re-expanding them would let a user pull fragments
or other variables into the prompt (template injection).

    >>> render("Hi {{ name }}! {{fragment:sig}}", {"name": "Ada"}, {"sig": "-- {{name}}'s bot"})
    "Hi Ada! -- Ada's bot"
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from promptkit._errors import MissingVariableError, PackValidationError, ValidationIssue

__all__ = [
    "MAX_FRAGMENT_DEPTH",
    "CompiledTemplate",
    "compile_template",
    "fragment_problems",
    "placeholders",
    "render",
    "stringify",
]

#: how deeply fragments may include other fragments
MAX_FRAGMENT_DEPTH = 10

_BRACES = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_VARIABLE = re.compile(rf"{_IDENT}(?:\.{_IDENT}|\[[0-9]+\])*\Z")
_FRAGMENT = re.compile(r"(?:fragments\.|fragment:)([A-Za-z0-9_][A-Za-z0-9_.-]*)\Z")
_SEGMENT = re.compile(rf"\.({_IDENT})|\[([0-9]+)\]")
_MISSING = object()


def stringify(value: Any) -> str | None:
    """The text a value stands for in a prompt: JSON spelling for non-strings, ``None`` → None.

    ``True`` → ``"true"``, ``3`` → ``"3"``, ``{"a": 1}`` → ``'{"a":1}'``, ``"x"`` → ``"x"``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Plain slotted classes rather than dataclasses: these are internal, and cheaper to import.
class _Variable:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Fragment:
    __slots__ = ("name", "written")

    def __init__(self, name: str, written: str) -> None:
        self.name = name
        self.written = written


_Part = str | _Variable | _Fragment


class CompiledTemplate:
    """A template parsed once into literal text and placeholders, for rendering every turn.

        >>> t = compile_template("Hello {{user_name}}")
        >>> t.render({"user_name": "Ada"}, {})
        'Hello Ada'
    """

    __slots__ = ("_parts", "fragment_refs", "ignored", "names", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        parts: list[_Part] = []
        names: set[str] = set()
        fragment_refs: set[str] = set()
        ignored: list[str] = []
        position = 0
        for match in _BRACES.finditer(source):
            inner = match.group(1)
            fragment = _FRAGMENT.match(inner)
            if fragment is not None:
                part: _Part = _Fragment(fragment.group(1), inner)
                fragment_refs.add(fragment.group(1))
            elif _VARIABLE.match(inner):
                part = _Variable(inner)
                names.add(inner)
            else:
                ignored.append(match.group(0))  # not a placeholder: stays literal text
                continue
            if match.start() > position:
                parts.append(source[position : match.start()])
            parts.append(part)
            position = match.end()
        if position < len(source):
            parts.append(source[position:])
        self._parts = tuple(parts)
        #: variable placeholders written directly in this template (not via fragments)
        self.names: frozenset[str] = frozenset(names)
        #: names of the fragments this template includes directly
        self.fragment_refs: frozenset[str] = frozenset(fragment_refs)
        #: double-brace text that is not a placeholder (``{{#if x}}``), kept as literal text
        self.ignored: tuple[str, ...] = tuple(ignored)

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.source!r})"

    def render(
        self,
        variables: Mapping[str, str],
        fragments: Mapping[str, str],
        *,
        prompt: str = "",
    ) -> str:
        """The rendered text; raises MissingVariableError listing every unresolved placeholder."""
        out: list[str] = []
        missing: dict[str, None] = {}
        self._render_into(out, missing, variables, fragments, ())
        if missing:
            raise MissingVariableError(list(missing), prompt=prompt)
        return "".join(out)

    def all_names(self, fragments: Mapping[str, str]) -> frozenset[str]:
        """Variable placeholders used here or in any fragment reached from here."""
        names = set(self.names)
        seen: set[str] = set()
        pending = list(self.fragment_refs)
        while pending:
            name = pending.pop()
            if name in seen or name not in fragments:
                continue
            seen.add(name)
            compiled = compile_template(fragments[name])
            names |= compiled.names
            pending.extend(compiled.fragment_refs)
        return frozenset(names)

    def _render_into(
        self,
        out: list[str],
        missing: dict[str, None],
        variables: Mapping[str, str],
        fragments: Mapping[str, str],
        chain: tuple[str, ...],
    ) -> None:
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, _Variable):
                value = _lookup(part.name, variables)
                if value is None:
                    missing[part.name] = None
                else:
                    out.append(value)
            else:
                text = fragments.get(part.name)
                if text is None:
                    missing[part.written] = None
                    continue
                _check_chain(chain, part.name)
                compile_template(text)._render_into(
                    out, missing, variables, fragments, (*chain, part.name)
                )


def _check_chain(chain: tuple[str, ...], name: str) -> None:
    """Refuse a fragment that includes itself, or nesting deeper than MAX_FRAGMENT_DEPTH."""
    if name in chain:
        loop = " -> ".join((*chain[chain.index(name) :], name))
        message = f"fragments include each other in a cycle: {loop}"
    elif len(chain) >= MAX_FRAGMENT_DEPTH:
        message = f"fragments nested deeper than {MAX_FRAGMENT_DEPTH}: {' -> '.join(chain)}"
    else:
        return
    issue = ValidationIssue(path=f"$.fragments.{name}", message=message)
    raise PackValidationError("<fragments>", [issue])


def _lookup(name: str, variables: Mapping[str, str]) -> str | None:
    """A placeholder's value: the literal key first, then a walk into a JSON-valued variable."""
    value = variables.get(name)
    if value is not None:
        return value
    # Try the longest literal prefix that names a variable, then walk the rest of the path.
    for cut in reversed([m.start() for m in _SEGMENT.finditer(name)]):
        base = variables.get(name[:cut])
        if base is None:
            continue
        found = _walk(base, name[cut:])
        return None if found is _MISSING else stringify(found)
    return None


def _walk(document: str, path: str) -> Any:
    try:
        node: Any = json.loads(document)
    except ValueError:
        return _MISSING
    for key, index in _segments(path):
        if key is not None and isinstance(node, dict) and key in node:
            node = node[key]
        elif index is not None and isinstance(node, list) and index < len(node):
            node = node[index]
        else:
            return _MISSING
    return node


def _segments(path: str) -> Iterator[tuple[str | None, int | None]]:
    for match in _SEGMENT.finditer(path):
        key, index = match.groups()
        yield (key, None) if key is not None else (None, int(index))


@functools.lru_cache(maxsize=512)
def compile_template(source: str) -> CompiledTemplate:
    """Parse a template once; repeated calls with the same text return the cached result."""
    return CompiledTemplate(source)


def render(
    template: str,
    variables: Mapping[str, str],
    fragments: Mapping[str, str],
    *,
    prompt: str = "",
) -> str:
    """Render ``template`` with ``variables`` and ``fragments``; see the module docstring."""
    return compile_template(template).render(variables, fragments, prompt=prompt)


def placeholders(template: str) -> set[str]:
    """Variable placeholders written in ``template`` (fragment references excluded).

        >>> sorted(placeholders("{{a}} {{ b.c }} {{fragment:x}} {{#if}}"))
        ['a', 'b.c']
    """
    return set(compile_template(template).names)


def fragment_problems(fragments: Mapping[str, str]) -> list[tuple[str, str]]:
    """(fragment, message) for every fragment cycle and nesting deeper than MAX_FRAGMENT_DEPTH.

    Used when a pack is loaded, so such packs fail there rather than on the first turn.
    """
    refs = {
        name: sorted(compile_template(text).fragment_refs & fragments.keys())
        for name, text in fragments.items()
    }
    depths: dict[str, int] = {}
    problems: dict[frozenset[str], tuple[str, str]] = {}

    def depth(name: str, chain: tuple[str, ...]) -> int:
        if name in chain:
            cycle = (*chain[chain.index(name) :], name)
            message = f"fragments include each other in a cycle: {' -> '.join(cycle)}"
            problems.setdefault(frozenset(cycle), (name, message))
            return 0
        if name not in depths:
            if len(chain) > MAX_FRAGMENT_DEPTH:
                return len(chain)
            deepest = max((depth(ref, (*chain, name)) for ref in refs[name]), default=0)
            depths[name] = 1 + deepest
        return depths[name]

    for name in fragments:
        if depth(name, ()) > MAX_FRAGMENT_DEPTH:
            message = f"fragments nest more than {MAX_FRAGMENT_DEPTH} deep, starting here"
            problems.setdefault(frozenset((name, "\0")), (name, message))
    return list(problems.values())
