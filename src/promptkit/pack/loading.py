"""Loading PromptPack files (``*.pack.json``) into frozen, validated values.

A pack is read, parsed, validated against the bundled PromptPack 1.5.0 JSON Schema (the one the
Go PromptKit runtime embeds) plus a few checks a schema cannot express, and turned into a
:class:`Pack` of :class:`PromptSpec` and :class:`ToolSpec` values. Every problem is reported at
once, each with its JSON path and ``line:column`` in the file::

    pack = load_pack("hello.pack.json")
    prompt = pack.prompt("chat")          # PromptNotFoundError lists the available prompts
    prompt.variables[0].name              # 'user_name'

A pack may also come from a mapping (``load_pack({...})``: problems carry JSON paths) or from
text (``Pack.from_json(text)``: paths and ``line:column``). Files are read bounded: only
regular files, at most ``max_bytes`` (16 MiB by default), so a device or a FIFO named by
mistake is refused instead of filling memory or blocking.
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
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
    format_path,
    line_column,
    schema_issues,
    unexpected_property,
)
from promptkit.pack.template import CompiledTemplate, compile_template, fragment_problems
from promptkit.pack.variables import spec_problems

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError


__all__ = [
    "DEFAULT_MAX_PACK_BYTES",
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


#: The largest pack file :func:`load_pack` reads (real packs are a few kilobytes).
DEFAULT_MAX_PACK_BYTES = 16 * 1024 * 1024
_READ_SIZE = 1 << 16


def load_pack(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    validate: bool = True,
    max_bytes: int = DEFAULT_MAX_PACK_BYTES,
) -> Pack:
    """Read, validate and return the pack at the path ``source``, or built from a mapping.

    A path must name a regular file of at most ``max_bytes`` bytes. Raises PackNotFoundError
    if the file cannot be read (missing, a directory, a device or FIFO, over the size cap) and
    PackValidationError (listing every problem, with its line and column for a file, its JSON
    path for a mapping) if it is not a valid pack.
    """
    if isinstance(source, Mapping):
        return load_pack_from_dict(source, validate=validate)
    if not isinstance(source, str | os.PathLike):
        raise TypeError("load_pack() takes a path or a mapping (the parsed pack JSON), not "
                        f"{type(source).__name__}")
    path = os.fspath(source)
    text = _read_text(path, max_bytes)
    return _load_text(text, source=path, path=os.path.abspath(path), validate=validate)


def load_pack_from_string(
    text: str, *, source: str = "<string>", validate: bool = True
) -> Pack:
    """Parse and validate pack JSON text; ``source`` names it in error messages."""
    return _load_text(text, source=source, path=None, validate=validate)


def load_pack_from_dict(
    data: Mapping[str, Any], *, source: str = "<dict>", validate: bool = True
) -> Pack:
    """Validate and build a pack from already-parsed JSON: any mappings and sequences of JSON
    values (copied into plain dicts and lists). Problems carry JSON paths, no line numbers."""
    issues: list[ValidationIssue] = []
    plain = _plain(data, (), issues)
    if issues:
        raise PackValidationError(source, issues)
    return _from_data(plain, text=None, source=source, path=None, validate=validate)


#: ``Pack.from_json`` reaches this through promptkit's lazy names (``promptkit.pack.public``),
#: so ``pack.model``, which this module imports, does not import it back.
_pack_from_json = load_pack_from_string


def _plain(value: Any, path: tuple[str | int, ...], issues: list[ValidationIssue]) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bools, None); anything else
    becomes an issue at its JSON path."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                out[key] = _plain(item, (*path, key), issues)
            else:
                issues.append(ValidationIssue(
                    path=format_path(path),
                    message=f"object keys must be strings, got {type(key).__name__} {key!r}"))
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, (*path, index), issues) for index, item in enumerate(value)]
    issues.append(ValidationIssue(
        path=format_path(path),
        message=f"not a JSON value: {type(value).__name__} (use dicts, lists, strings, "
                "numbers, booleans and None)"))
    return None


def _read_text(source: str, max_bytes: int) -> str:
    data = _read_bounded(source, max_bytes)
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


def _read_bounded(source: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``source``, refusing anything else or over ``max_bytes``.

    Opened non-blocking so a FIFO is refused at once instead of waiting for a writer.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(source, flags)
    except FileNotFoundError:
        raise PackNotFoundError(source, "no such file") from None
    except IsADirectoryError:
        raise PackNotFoundError(source, "is a directory, not a file") from None
    except PermissionError:
        raise PackNotFoundError(source, "permission denied") from None
    except OSError as error:
        raise PackNotFoundError(source, error.strerror or str(error)) from error
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PackNotFoundError(source, f"is {_file_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:  # st_size can lie (/proc), so count what is read
            chunk = os.read(fd, min(_READ_SIZE, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise PackNotFoundError(
                source, f"is larger than the {_size(max_bytes)} limit for pack files "
                        "(load_pack(..., max_bytes=N) raises it)")
        return b"".join(chunks)
    except OSError as error:
        if isinstance(error, PackNotFoundError):
            raise
        raise PackNotFoundError(source, error.strerror or str(error)) from error
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _size(count: int) -> str:
    if count >= 1 << 20 and count % (1 << 20) == 0:
        return f"{count >> 20} MiB"
    if count >= 1 << 10 and count % (1 << 10) == 0:
        return f"{count >> 10} KiB"
    return f"{count} bytes"


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
