"""The built-in check types (``BUILTIN_TYPES``, registered by ``registry``).

Parameter names follow the Go runtime (§11/§12 of the design); each ``_prepare_*`` checks the
parameters once and returns the ready configuration, each ``_run_*`` scores one text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from promptkit.checks.scans import BannedWords, BannedWordScan, LengthLimit, LengthScan
from promptkit.checks.types import CheckInput, CheckType, InvalidParams, Outcome, UnusableParams

__all__ = ["BUILTIN_TYPES", "sentence_count"]

_registered: list[CheckType] = []


def register(check: CheckType) -> None:
    _registered.append(check)

_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)")
_FENCE = re.compile(r"\A\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*\Z", re.DOTALL)


# --- parameter helpers ---------------------------------------------------------------------


def _strings(params: Mapping[str, Any], *names: str) -> list[str] | None:
    """The first of ``names`` present, as a list of strings (a lone string counts as one)."""
    for name in names:
        if name in params and params[name] is not None:
            value = params[name]
            if isinstance(value, str):
                return [value] if value else []
            if isinstance(value, Sequence):
                return [str(item) for item in value if str(item)]
            raise InvalidParams(f"{name} must be a list of strings, not {type(value).__name__}")
    return None


def _count(params: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
                or (isinstance(value, float) and not value.is_integer()):
            raise InvalidParams(f"{name} must be a whole number of 0 or more, not {value!r}")
        return int(value)
    return None


def _json_of(text: str) -> Any:
    """``text`` parsed as JSON (one surrounding Markdown code fence is allowed)."""
    fenced = _FENCE.match(text)
    return json.loads(fenced.group(1) if fenced else text)


# --- content_excludes / banned_words -------------------------------------------------------


def _prepare_excludes(params: Mapping[str, Any]) -> BannedWords:
    words = _strings(params, "words", "patterns", "banned_words")
    if not words:
        raise UnusableParams("needs a non-empty `words` list")
    return BannedWords.of(words)


def _run_excludes(words: BannedWords, data: CheckInput) -> Outcome:
    found = words.find(data.text)
    if found is None:
        return Outcome(True, 1.0)
    return Outcome(False, 0.0, f"contains banned word {found!r}", {"word": found})


register(CheckType("content_excludes", _prepare_excludes, _run_excludes,
                   aliases=("banned_words",), scan=BannedWordScan,
                   summary="none of `words` (whole words, any case); held back while streaming"))


# --- max_length / length, min_length -------------------------------------------------------


def _prepare_max_length(params: Mapping[str, Any]) -> LengthLimit:
    characters = _count(params, "max_characters", "max_chars", "max")
    tokens = _count(params, "max_tokens")
    if characters is None and tokens is None:
        raise UnusableParams("needs `max_characters` or `max_tokens`")
    return LengthLimit(characters, tokens)


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _run_max_length(limit: LengthLimit, data: CheckInput) -> Outcome:
    length = len(data.text)
    if length <= limit.characters:
        return Outcome(True, 1.0, details={"length": length})
    return Outcome(False, 0.0, f"{length} characters, more than {limit.characters}",
                   {"length": length, "limit": limit.characters})


register(CheckType("max_length", _prepare_max_length, _run_max_length, aliases=("length",),
                   scan=LengthScan,
                   summary="at most `max_characters` / `max_tokens` (4 characters a token)"))


def _prepare_min_length(params: Mapping[str, Any]) -> tuple[int, int]:
    characters = _count(params, "min_characters", "min_chars", "min")
    tokens = _count(params, "min_tokens")
    if characters is None and tokens is None:
        raise UnusableParams("needs `min_characters` or `min_tokens`")
    return characters or 0, tokens or 0


def _run_min_length(limits: tuple[int, int], data: CheckInput) -> Outcome:
    characters, tokens = limits
    if len(data.text) >= characters and _tokens(data.text) >= tokens:
        return Outcome(True, 1.0)
    return Outcome(False, 0.0, f"only {len(data.text)} characters", {"length": len(data.text)})


register(CheckType("min_length", _prepare_min_length, _run_min_length,
                   summary="at least `min_characters` / `min_tokens`"))


# --- regex ---------------------------------------------------------------------------------


def _prepare_regex(params: Mapping[str, Any]) -> tuple[re.Pattern[str], bool]:
    pattern = params.get("pattern")
    if pattern is None or pattern == "":
        raise UnusableParams("needs a `pattern`")
    if not isinstance(pattern, str):
        raise InvalidParams(f"pattern must be a string, not {type(pattern).__name__}")
    expect = params.get("expect_match", True)
    if not isinstance(expect, bool):
        raise InvalidParams(f"expect_match must be true or false, not {expect!r}")
    try:
        return re.compile(pattern), expect
    except re.error as exc:
        raise InvalidParams(f"pattern {pattern!r} does not compile: {exc}") from None


def _run_regex(config: tuple[re.Pattern[str], bool], data: CheckInput) -> Outcome:
    pattern, expect = config
    match = pattern.search(data.text)
    if (match is not None) == expect:
        return Outcome(True, 1.0)
    if match is None:
        return Outcome(False, 0.0, f"does not match {pattern.pattern!r}")
    return Outcome(False, 0.0, f"matches {pattern.pattern!r}", {"match": match.group(0)})


register(CheckType("regex", _prepare_regex, _run_regex,
                   aliases=("content_matches", "regex_match"),
                   summary="`pattern` found (or, with `expect_match: false`, not found)"))


# --- contains / contains_any ---------------------------------------------------------------


def _prepare_patterns(params: Mapping[str, Any]) -> tuple[str, ...]:
    patterns = _strings(params, "patterns", "words", "values", "pattern")
    if not patterns:
        raise UnusableParams("needs a non-empty `patterns` list")
    return tuple(patterns)


def _run_contains(patterns: tuple[str, ...], data: CheckInput) -> Outcome:
    text = data.text.lower()
    missing = [p for p in patterns if p.lower() not in text]
    score = 1.0 - len(missing) / len(patterns)
    if not missing:
        return Outcome(True, score)
    return Outcome(False, score, f"missing {', '.join(map(repr, missing))}",
                   {"missing": missing})


def _run_contains_any(patterns: tuple[str, ...], data: CheckInput) -> Outcome:
    text = data.text.lower()
    found = [p for p in patterns if p.lower() in text]
    if found:
        return Outcome(True, 1.0, details={"found": found})
    return Outcome(False, 0.0, f"none of {', '.join(map(repr, patterns))}")


register(CheckType("contains", _prepare_patterns, _run_contains, aliases=("content_includes",),
                   summary="every one of `patterns` (substrings, any case)"))
register(CheckType("contains_any", _prepare_patterns, _run_contains_any,
                   summary="at least one of `patterns`"))


# --- json_valid, json_schema, field_presence -----------------------------------------------


def _no_params(params: Mapping[str, Any]) -> None:
    return None


def _run_json_valid(_: None, data: CheckInput) -> Outcome:
    try:
        _json_of(data.text)
    except ValueError as exc:
        return Outcome(False, 0.0, f"not valid JSON: {exc}")
    return Outcome(True, 1.0)


register(CheckType("json_valid", _no_params, _run_json_valid,
                   aliases=("valid_json", "is_valid_json"),
                   summary="the answer parses as JSON (a Markdown code fence is allowed)"))


def _prepare_schema(params: Mapping[str, Any]) -> Any:
    schema = params.get("schema")
    if schema is None:
        raise UnusableParams("needs a `schema`")
    if not isinstance(schema, Mapping | bool):
        raise InvalidParams(f"schema must be a JSON Schema object, not {type(schema).__name__}")
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidParams(f"schema is not a valid JSON Schema: {exc.message}") from None
    return Draft202012Validator(schema)


def _run_schema(validator: Any, data: CheckInput) -> Outcome:
    try:
        value = _json_of(data.text)
    except ValueError as exc:
        return Outcome(False, 0.0, f"not valid JSON: {exc}")
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return Outcome(True, 1.0)
    first = errors[0]
    where = "/".join(str(p) for p in first.path) or "(root)"
    return Outcome(False, 0.0, f"{where}: {first.message}", {"errors": len(errors)})


register(CheckType("json_schema", _prepare_schema, _run_schema,
                   summary="the answer is JSON valid against `schema`"))


def _prepare_fields(params: Mapping[str, Any]) -> tuple[str, ...]:
    fields = _strings(params, "fields", "required_fields", "required")
    if not fields:
        raise UnusableParams("needs a non-empty `fields` list")
    return tuple(fields)


def _has(value: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def _run_fields(fields: tuple[str, ...], data: CheckInput) -> Outcome:
    try:
        value = _json_of(data.text)
    except ValueError:
        value = None
    if not isinstance(value, Mapping):
        return Outcome(False, 0.0, "not a JSON object")
    missing = [f for f in fields if not _has(value, f)]
    if not missing:
        return Outcome(True, 1.0)
    return Outcome(False, 1.0 - len(missing) / len(fields),
                   f"missing field(s) {', '.join(missing)}", {"missing": missing})


register(CheckType("field_presence", _prepare_fields, _run_fields, aliases=("required_fields",),
                   summary="the answer is a JSON object with every one of `fields` (a.b paths)"))


# --- sentence_count ------------------------------------------------------------------------


def _prepare_sentences(params: Mapping[str, Any]) -> tuple[int | None, int | None]:
    most = _count(params, "max", "max_sentences")
    least = _count(params, "min", "min_sentences")
    if most is None and least is None:
        raise UnusableParams("needs `max` (or `min`)")
    return least, most


def sentence_count(text: str) -> int:
    """Sentences in ``text``: runs of ``.!?…`` followed by a space or the end, plus an
    unterminated last sentence."""
    stripped = text.strip()
    if not stripped:
        return 0
    ends = len(_SENTENCE_END.findall(stripped))
    return ends if stripped[-1] in ".!?…" else ends + 1


def _run_sentences(limits: tuple[int | None, int | None], data: CheckInput) -> Outcome:
    least, most = limits
    count = sentence_count(data.text)
    if (least is None or count >= least) and (most is None or count <= most):
        return Outcome(True, 1.0, details={"sentences": count})
    return Outcome(False, 0.0, f"{count} sentence(s)", {"sentences": count})


register(CheckType("sentence_count", _prepare_sentences, _run_sentences,
                   aliases=("max_sentences",), summary="at most `max` (at least `min`) sentences"))


# --- evals only: tools_called, llm_judge ---------------------------------------------------


def _prepare_tools(params: Mapping[str, Any]) -> tuple[str, ...]:
    tools = _strings(params, "tools", "tool_names", "tool")
    if not tools:
        raise UnusableParams("needs a non-empty `tools` list")
    return tuple(tools)


def _run_tools(tools: tuple[str, ...], data: CheckInput) -> Outcome:
    called = {call.name for call in data.tool_calls}
    missing = [t for t in tools if t not in called]
    if not missing:
        return Outcome(True, 1.0)
    return Outcome(False, 1.0 - len(missing) / len(tools),
                   f"not called: {', '.join(missing)}", {"missing": missing})


register(CheckType("tools_called", _prepare_tools, _run_tools, aliases=("tool_called",),
                   evals_only=True, summary="every one of `tools` was called"))


def _prepare_judge(params: Mapping[str, Any]) -> Mapping[str, Any]:
    from promptkit.checks.judge import prepare_judge

    return prepare_judge(params)


def _run_judge(config: Any, data: CheckInput) -> Outcome:  # pragma: no cover - never called
    raise AssertionError("llm_judge is run by the conversation layer (it calls a model)")


register(CheckType("llm_judge", _prepare_judge, _run_judge, evals_only=True,
                   summary="a model scores the answer against `criteria` / `judge_prompt`"))


BUILTIN_TYPES: tuple[CheckType, ...] = tuple(_registered)
