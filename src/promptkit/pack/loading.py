"""Loading PromptPack files (``*.pack.json``) into frozen, validated values.

A pack is read, parsed, validated against the bundled PromptPack 1.5.0 JSON Schema (the one the
Go PromptKit runtime embeds) plus a few checks a schema cannot express, and turned into a
:class:`Pack` of :class:`PromptSpec` and :class:`ToolSpec` values. Every problem is reported at
once, each with its JSON path and ``line:column`` in the file::

    pack = load_pack("hello.pack.json")
    prompt = pack.prompt("chat")          # PromptNotFoundError lists the available prompts
    prompt.variables[0].name              # 'user_name'
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from promptkit._errors import (
    PackNotFoundError,
    PackValidationError,
    ValidationIssue,
)
from promptkit.pack.model import (
    TOOL_CHOICE_MODES,
    Pack,
    PromptSpec,
    ProviderHint,
    ToolPolicy,
    ToolSpec,
    VariableSpec,
    VariableType,
    VariableValidation,
    empty_tool_parameters,
    frozen,
)
from promptkit.pack.positions import (
    Locator,
    decode_error_issue,
    describe,
    line_column,
    schema_issues,
    unexpected_property,
)
from promptkit.pack.template import CompiledTemplate, compile_template, fragment_problems
from promptkit.pack.variables import spec_problems

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError


__all__ = [
    "load_pack",
    "load_pack_from_dict",
    "load_pack_from_string",
]

_SCHEMA_RESOURCE = "_data/promptpack.schema.v1.5.0.json"
_PARAMETER_KEYS = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
)


def load_pack(path: str | os.PathLike[str], *, validate: bool = True) -> Pack:
    """Read, validate and return the pack at ``path``.

    Raises PackNotFoundError if the file cannot be read and PackValidationError (listing every
    problem with its line and column) if it is not a valid pack.
    """
    source = os.fspath(path)
    text = _read_text(source)
    return _load_text(text, source=source, path=os.path.abspath(source), validate=validate)


def load_pack_from_string(
    text: str, *, source: str = "<string>", validate: bool = True
) -> Pack:
    """Parse and validate pack JSON text; ``source`` names it in error messages."""
    return _load_text(text, source=source, path=None, validate=validate)


def load_pack_from_dict(
    data: Mapping[str, Any], *, source: str = "<dict>", validate: bool = True
) -> Pack:
    """Validate and build a pack from already-parsed JSON (copied; no line numbers in errors)."""
    return _from_data(copy.deepcopy(dict(data)), text=None, source=source, path=None,
                      validate=validate)


def _read_text(source: str) -> str:
    try:
        with open(source, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise PackNotFoundError(source, "no such file") from None
    except IsADirectoryError:
        raise PackNotFoundError(source, "is a directory, not a file") from None
    except PermissionError:
        raise PackNotFoundError(source, "permission denied") from None
    except OSError as error:
        raise PackNotFoundError(source, error.strerror or str(error)) from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        prefix = data[: error.start].decode("utf-8-sig", errors="replace")
        line, column = line_column(prefix, len(prefix))
        issue = ValidationIssue(
            path="$",
            message=f"not UTF-8 text (byte 0x{data[error.start]:02x})",
            line=line,
            column=column,
        )
        raise PackValidationError(source, [issue]) from None


def _load_text(text: str, *, source: str, path: str | None, validate: bool) -> Pack:
    text = text.removeprefix("\ufeff")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise PackValidationError(source, [decode_error_issue(error)]) from None
    except RecursionError:
        issue = ValidationIssue(path="$", message="JSON nested too deeply", line=1, column=1)
        raise PackValidationError(source, [issue]) from None
    return _from_data(data, text=text, source=source, path=path, validate=validate)


def _from_data(
    data: Any, *, text: str | None, source: str, path: str | None, validate: bool
) -> Pack:
    locator = Locator(text)
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else f"a {type(data).__name__} value"
        issue = locator.issue((), f"a pack must be a JSON object, not {kind}")
        raise PackValidationError(source, [issue])
    if validate:
        body = {key: value for key, value in data.items() if key != "provider"}
        issues = schema_issues(_schema_errors(body), locator)
        if "provider" in data:
            issues += _provider_issues(data["provider"], locator)
        if issues:
            raise PackValidationError(source, locator.sorted(issues))
    try:
        prompts = {key: _prompt(key, value) for key, value in data["prompts"].items()}
        tools = {key: _tool(key, value) for key, value in (data.get("tools") or {}).items()}
        fragments = {str(key): str(value) for key, value in (data.get("fragments") or {}).items()}
        provider = _provider(data.get("provider"))
        pack_fields = {key: str(data[key]) for key in ("id", "name", "version")}
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        issue = ValidationIssue(
            path="$", message=f"cannot read the pack (schema validation was skipped): {error!r}"
        )
        raise PackValidationError(source, [issue]) from None
    warnings: list[ValidationIssue] = []
    if validate:
        errors, warnings = _lint(prompts, tools, fragments, locator)
        if errors:
            raise PackValidationError(source, locator.sorted(errors))
    return Pack(
        **pack_fields,
        description=str(data.get("description", "")),
        prompts=MappingProxyType(prompts),
        tools=MappingProxyType(tools),
        fragments=MappingProxyType(fragments),
        provider=provider,
        path=path,
        raw=MappingProxyType(data),
        warnings=tuple(locator.sorted(warnings)),
    )


@functools.cache
def _validator() -> Draft202012Validator:
    """The schema validator, built on first use (importing jsonschema is not cheap)."""
    from importlib import resources

    from jsonschema import Draft202012Validator

    schema_text = resources.files("promptkit").joinpath(_SCHEMA_RESOURCE).read_text("utf-8")
    return Draft202012Validator(json.loads(schema_text))


def _schema_errors(body: Mapping[str, Any]) -> Iterator[ValidationError]:
    """The schema's complaints, less the one about a ``tool_choice`` naming a tool.

    Naming a tool is an extension to the schema's ``auto``/``required``/``none``; whether the
    name is one of the prompt's tools is checked by :func:`_lint_tool_choice`.
    """
    for error in _validator().iter_errors(body):
        path = tuple(error.absolute_path)
        if (error.validator == "enum" and len(path) == 4 and path[0] == "prompts"
                and path[2:] == ("tool_policy", "tool_choice")
                and isinstance(error.instance, str) and error.instance):
            continue
        yield error


# --- building values from validated JSON -----------------------------------------------------


def _prompt(key: str, raw: Mapping[str, Any]) -> PromptSpec:
    policy = raw.get("tool_policy") or {}
    parameters = raw.get("parameters") or {}
    return PromptSpec(
        name=key,
        id=str(raw.get("id", key)),
        display_name=str(raw.get("name", key)),
        description=str(raw.get("description", "")),
        version=str(raw.get("version", "")),
        system_template=str(raw["system_template"]),
        variables=tuple(_variable(item) for item in raw.get("variables") or ()),
        tools=tuple(str(name) for name in raw.get("tools") or ()),
        tool_policy=ToolPolicy(
            tool_choice=str(policy.get("tool_choice", "auto")),
            max_rounds=int(policy.get("max_rounds", 5)),
            max_tool_calls_per_turn=int(policy.get("max_tool_calls_per_turn", 10)),
            blocklist=tuple(str(name) for name in policy.get("blocklist") or ()),
        ),
        parameters=frozen({k: parameters[k] for k in _PARAMETER_KEYS if k in parameters}),
        validators=tuple(frozen(item) for item in raw.get("validators") or ()),
        raw=frozen(raw),
    )


def _variable(raw: Mapping[str, Any]) -> VariableSpec:
    rules = raw.get("validation")
    validation = None
    if rules is not None:
        enum = rules.get("enum")
        validation = VariableValidation(
            pattern=rules.get("pattern"),
            min_length=rules.get("min_length"),
            max_length=rules.get("max_length"),
            minimum=rules.get("minimum"),
            maximum=rules.get("maximum"),
            enum=None if enum is None else tuple(enum),
        )
    return VariableSpec(
        name=str(raw["name"]),
        type=cast(VariableType, raw.get("type", "string")),
        required=bool(raw.get("required", False)),
        default=raw.get("default"),
        has_default="default" in raw,
        description=str(raw.get("description", "")),
        example=raw.get("example"),
        validation=validation,
    )


def _tool(key: str, raw: Mapping[str, Any]) -> ToolSpec:
    parameters = raw.get("parameters")
    return ToolSpec(
        name=str(raw.get("name", key)),
        description=str(raw.get("description", "")),
        parameters=empty_tool_parameters() if parameters is None else frozen(parameters),
    )


def _provider(raw: Any) -> ProviderHint | None:
    if not isinstance(raw, dict):
        return None
    name, model = raw.get("name"), raw.get("model")
    return ProviderHint(
        name=name if isinstance(name, str) else None,
        model=model if isinstance(model, str) else None,
    )


# --- problems: the schema's, and those a schema cannot express -------------------------------

_Path = tuple[str | int, ...]


def _provider_issues(raw: Any, locator: Locator) -> list[ValidationIssue]:
    """The ``provider`` extension block: ``{"name": str, "model": str}``, both optional."""
    if not isinstance(raw, dict):
        message = f'expected an object with "name" and "model", got {describe(raw)}'
        return [locator.issue(("provider",), message)]
    issues: list[ValidationIssue] = []
    for key, value in raw.items():
        if key not in ("name", "model"):
            message = unexpected_property(key, ["name", "model"])
            issues.append(locator.issue(("provider", key), message, key=True))
        elif value is not None and not isinstance(value, str):
            message = f"expected string, got {describe(value)}"
            issues.append(locator.issue(("provider", key), message))
    return issues


def _lint(
    prompts: Mapping[str, PromptSpec],
    tools: Mapping[str, ToolSpec],
    fragments: Mapping[str, str],
    locator: Locator,
) -> tuple[list[ValidationIssue], list[ValidationIssue]]:
    """Semantic checks on a schema-valid pack: (errors, warnings)."""
    errors: list[ValidationIssue] = []
    warnings: list[ValidationIssue] = []
    for key, prompt in prompts.items():
        base: _Path = ("prompts", key)
        for index, tool in enumerate(prompt.tools):
            if tool not in tools:
                known = f"it defines: {', '.join(sorted(tools))}" if tools else "it defines none"
                message = f"tool {tool!r} is not defined in the pack's tools ({known})"
                errors.append(locator.issue((*base, "tools", index), message))
        _lint_tool_choice(prompt, base, locator, errors=errors, warnings=warnings)
        template_path = (*base, "system_template")
        _lint_template(prompt.template, template_path, fragments, locator, errors=errors,
                       warnings=warnings)
        declared = {variable.name for variable in prompt.variables}
        for name in sorted(prompt.template.all_names(fragments)):
            if name not in declared and re.split(r"[.\[]", name, maxsplit=1)[0] not in declared:
                message = (f"{{{{{name}}}}} is not a declared variable of prompt {key!r}; "
                           "it must be set at runtime or rendering fails")
                warnings.append(locator.issue(template_path, message))
        for index, variable in enumerate(prompt.variables):
            problems = spec_problems(variable)
            for found, into in zip(problems, (errors, warnings), strict=True):
                into += [locator.issue((*base, "variables", index, *where.split(".")), message)
                         for where, message in found]
    for name, text in fragments.items():
        _lint_template(compile_template(text), ("fragments", name), fragments, locator,
                       errors=errors, warnings=warnings)
    errors += [locator.issue(("fragments", name), message)
               for name, message in fragment_problems(fragments)]
    for key, spec in tools.items():
        if spec.name != key:
            message = (f"tool name {spec.name!r} differs from its key {key!r}; prompts list "
                       "tools by key, the model sees the name")
            warnings.append(locator.issue(("tools", key, "name"), message))
    return errors, warnings


def _lint_tool_choice(
    prompt: PromptSpec,
    base: _Path,
    locator: Locator,
    *,
    errors: list[ValidationIssue],
    warnings: list[ValidationIssue],
) -> None:
    """A ``tool_choice`` naming a tool: one of the prompt's tools, not blocklisted (an error
    otherwise), and a warning that it is an extension to the PromptPack schema."""
    name = prompt.tool_policy.forced_tool
    if name is None:
        return
    path = (*base, "tool_policy", "tool_choice")
    if name not in prompt.tools:
        listed = (f"its tools are: {', '.join(prompt.tools)}" if prompt.tools
                  else "it lists no tools")
        errors.append(locator.issue(path, (
            f"tool_choice {name!r} is neither a mode ({', '.join(sorted(TOOL_CHOICE_MODES))}) "
            f"nor one of the prompt's tools ({listed})")))
    elif name in prompt.tool_policy.blocklist:
        errors.append(locator.issue(path, (
            f"tool_choice forces {name!r}, which tool_policy.blocklist never offers")))
    else:
        warnings.append(locator.issue(path, (
            f"tool_choice {name!r} names a tool: an extension to the PromptPack schema "
            "(which allows auto, required, none); promptkit forces a call to it on each "
            "turn's first model call")))


def _lint_template(
    template: CompiledTemplate,
    path: _Path,
    fragments: Mapping[str, str],
    locator: Locator,
    *,
    errors: list[ValidationIssue],
    warnings: list[ValidationIssue],
) -> None:
    """Undefined fragments (errors) and double-brace text that is not a placeholder."""
    for ref in sorted(template.fragment_refs - fragments.keys()):
        errors.append(locator.issue(path, f"fragment {ref!r} is not defined in the pack"))
    for text in dict.fromkeys(template.ignored):
        message = (f"{text} is not a placeholder and stays as literal text (supported: "
                   "{{name}}, {{a.b}}, {{items[0]}}, {{fragment:x}}, {{fragments.x}})")
        warnings.append(locator.issue(path, message))
