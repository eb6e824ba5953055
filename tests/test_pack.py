"""Pack loading: values, schema and semantic problems with file:line:col, unreadable files."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptkit._errors import (
    PackNotFoundError,
    PackValidationError,
    PromptNotFoundError,
    ValidationIssue,
)
from promptkit.pack.loading import (
    _validator,
    load_pack,
    load_pack_from_dict,
    load_pack_from_string,
)
from promptkit.pack.model import Pack, ProviderHint, ToolPolicy
from promptkit.pack.positions import (
    decode_error_issue,
    format_path,
    line_column,
    locate,
    locate_index,
)


def minimal(**prompt_fields: Any) -> dict[str, Any]:
    prompt = {"id": "chat", "name": "Chat", "version": "1.0.0",
              "system_template": "You are helpful."}
    prompt.update(prompt_fields)
    return {
        "id": "demo",
        "name": "Demo",
        "version": "1.0.0",
        "template_engine": {"version": "v1", "syntax": "{{variable}}"},
        "prompts": {"chat": prompt},
    }


def write(tmp_path: Path, data: Any, name: str = "demo.pack.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), "utf-8")
    return path


def issues_of(data: Any, **kwargs: Any) -> tuple[ValidationIssue, ...]:
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    with pytest.raises(PackValidationError) as caught:
        load_pack_from_string(text, **kwargs)
    return caught.value.issues


FULL: dict[str, Any] = {
    "$schema": "https://promptpack.org/schema/latest/promptpack.schema.json",
    "id": "full",
    "name": "Full Pack",
    "version": "2.1.0",
    "description": "Everything",
    "template_engine": {"version": "v1", "syntax": "{{variable}}", "features": ["fragments"]},
    "provider": {"name": "openai", "model": "gpt-4o-mini"},
    "fragments": {"sig": "-- {{company}}"},
    "tools": {
        "lookup": {"name": "lookup", "description": "Look up",
                   "parameters": {"type": "object", "properties": {"id": {"type": "string"}},
                                  "required": ["id"]}},
        "bare": {"name": "bare", "description": "No parameters"},
    },
    "prompts": {
        "support": {
            "id": "support",
            "name": "Support Bot",
            "description": "Helps",
            "version": "1.2.3",
            "system_template": "Work for {{company}} at {{level}}. {{fragment:sig}}",
            "variables": [
                {"name": "company", "type": "string", "required": True, "description": "Co"},
                {"name": "level", "type": "number", "required": False, "default": 2,
                 "validation": {"minimum": 1, "maximum": 5}},
                {"name": "mood", "type": "string", "required": False, "default": None,
                 "validation": {"enum": ["calm", "busy"], "pattern": "^[a-z]+$",
                                "min_length": 1, "max_length": 10}},
            ],
            "tools": ["lookup", "bare"],
            "tool_policy": {"tool_choice": "required", "max_rounds": 3, "blocklist": ["bare"]},
            "parameters": {"temperature": 0.2, "max_tokens": 100, "top_k": None},
            "validators": [{"type": "banned_words", "enabled": True,
                            "params": {"words": ["x"]}}],
        },
        "other": {"id": "other", "name": "Other", "version": "1.0.0",
                  "system_template": "Plain."},
    },
}


# --- values ----------------------------------------------------------------------------------


def test_load_full_pack(tmp_path: Path) -> None:
    pack = load_pack(write(tmp_path, FULL))
    assert (pack.id, pack.name, pack.version, pack.description) == (
        "full", "Full Pack", "2.1.0", "Everything")
    assert pack.provider == ProviderHint(name="openai", model="gpt-4o-mini")
    assert pack.path == str(tmp_path / "demo.pack.json")
    assert pack.fragments == {"sig": "-- {{company}}"}
    assert list(pack.prompts) == ["support", "other"]
    assert pack.warnings == ()
    assert pack.raw["provider"] == {"name": "openai", "model": "gpt-4o-mini"}

    prompt = pack.prompt("support")
    assert (prompt.name, prompt.id, prompt.display_name, prompt.description, prompt.version) == (
        "support", "support", "Support Bot", "Helps", "1.2.3")
    assert prompt.tools == ("lookup", "bare")
    assert prompt.tool_policy == ToolPolicy(tool_choice="required", max_rounds=3,
                                            max_tool_calls_per_turn=10, blocklist=("bare",))
    assert dict(prompt.parameters) == {"temperature": 0.2, "max_tokens": 100, "top_k": None}
    assert prompt.validators[0]["type"] == "banned_words"
    assert prompt.raw["id"] == "support"
    assert prompt.template.names == frozenset({"company", "level"})

    company, level, mood = prompt.variables
    assert (company.name, company.type, company.required, company.has_default) == (
        "company", "string", True, False)
    assert company.description == "Co"
    assert (level.type, level.default, level.has_default) == ("number", 2, True)
    assert level.validation is not None and (level.validation.minimum, level.validation.maximum) \
        == (1, 5)
    assert mood.has_default and mood.default is None
    assert mood.validation is not None
    assert mood.validation.enum == ("calm", "busy")
    assert (mood.validation.pattern, mood.validation.min_length, mood.validation.max_length) == (
        "^[a-z]+$", 1, 10)

    lookup, bare = pack.tools["lookup"], pack.tools["bare"]
    assert (lookup.name, lookup.description) == ("lookup", "Look up")
    assert lookup.parameters["required"] == ["id"]
    assert dict(bare.parameters) == {"type": "object", "properties": {}}
    schema = lookup.json_schema()
    assert json.loads(json.dumps(schema)) == FULL["tools"]["lookup"]["parameters"]
    schema["properties"]["id"]["type"] = "changed"
    assert lookup.parameters["properties"]["id"]["type"] == "string"


def test_defaults_for_optional_sections() -> None:
    pack = load_pack_from_dict(minimal())
    prompt = pack.prompt("chat")
    assert prompt.tool_policy == ToolPolicy()
    assert (prompt.tool_policy.tool_choice, prompt.tool_policy.max_rounds,
            prompt.tool_policy.max_tool_calls_per_turn, prompt.tool_policy.blocklist) == (
        "auto", 5, 10, ())
    assert dict(prompt.parameters) == {}
    assert prompt.variables == () and prompt.tools == () and prompt.validators == ()
    assert pack.provider is None and pack.path is None and pack.description == ""
    assert dict(pack.tools) == {} and dict(pack.fragments) == {}


def test_values_are_read_only() -> None:
    pack = load_pack_from_dict(FULL)
    with pytest.raises(TypeError):
        pack.prompts["new"] = pack.prompt("other")  # type: ignore[index]
    with pytest.raises(TypeError):
        pack.raw["id"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        pack.id = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        pack.prompt("other").name = "x"  # type: ignore[misc]


def test_load_pack_from_dict_copies_its_input() -> None:
    data = copy.deepcopy(FULL)
    pack = load_pack_from_dict(data)
    data["prompts"]["support"]["tools"].append("changed")
    assert pack.raw["prompts"]["support"]["tools"] == ["lookup", "bare"]


def test_accepts_path_like_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.pack.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(minimal()).encode())
    assert load_pack(path).id == "demo"
    assert load_pack(str(path)).id == "demo"


def test_unknown_prompt_lists_available_prompts() -> None:
    pack = load_pack_from_dict(FULL)
    with pytest.raises(PromptNotFoundError) as caught:
        pack.prompt("sales")
    error = caught.value
    assert error.available == ("other", "support")
    assert error.pack_id == "full"
    assert str(error) == "prompt 'sales' not found in pack 'full'; available: other, support"
    assert isinstance(error, KeyError)


def test_pack_can_be_subclassed_with_methods() -> None:
    class Richer(Pack):
        def count(self) -> int:
            return len(self.prompts)

    pack = load_pack_from_dict(FULL)
    fields = {name: getattr(pack, name) for name in pack.__dataclass_fields__}
    assert Richer(**fields).count() == 2


# --- unreadable files ------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PackNotFoundError) as caught:
        load_pack(tmp_path / "nope.pack.json")
    assert isinstance(caught.value, FileNotFoundError)
    assert "no such file" in str(caught.value)


def test_directory_is_not_a_pack(tmp_path: Path) -> None:
    with pytest.raises(PackNotFoundError, match="directory"):
        load_pack(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can read files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    path.chmod(0)
    try:
        with pytest.raises(PackNotFoundError, match="permission denied"):
            load_pack(path)
    finally:
        path.chmod(0o644)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.pack.json"
    path.write_bytes(b'{\n  "id": "caf\xe9"\n}')
    with pytest.raises(PackValidationError) as caught:
        load_pack(path)
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (2, 13)
    assert "not UTF-8" in issue.message


# --- malformed JSON --------------------------------------------------------------------------


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "id": "x"\n  "name": "y"\n}\n', name="bad.pack.json")
    with pytest.raises(PackValidationError) as caught:
        load_pack(path)
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (3, 3)
    assert "Expecting ',' delimiter" in issue.message
    assert f"{path}:3:3: $: invalid JSON: Expecting ',' delimiter" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("", 1, 1), ("{", 1, 2), ('{"a": "\\u00e9\\n", }', 1, 19), ('{\n\n  "a": tru}', 3, 8),
     ('{"é": 1,\n "ü": [1, 2,]}', 2, 13)],
)
def test_malformed_json_positions(text: str, line: int, column: int) -> None:
    (issue,) = issues_of(text)
    assert (issue.line, issue.column) == (line, column)
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(text)
    assert decode_error_issue(caught.value) == issue


@pytest.mark.parametrize("text", ["[]", "3", '"pack"', "null"])
def test_top_level_must_be_an_object(text: str) -> None:
    (issue,) = issues_of(text)
    assert issue.path == "$"
    assert "must be a JSON object" in issue.message
    assert (issue.line, issue.column) == (1, 1)


# --- schema violations -----------------------------------------------------------------------

BROKEN = """{
  "id": "Bad_ID",
  "name": "Broken",
  "version": "1.0.0",
  "template_engine": {"version": "v1", "syntax": "{{variable}}"},
  "prompts": {
    "chat": {
      "id": "chat",
      "name": "Chat",
      "version": "1.0.0",
      "system_tempalte": "Hi",
      "variables": [
        {"name": "x", "type": "text", "required": true}
      ],
      "parameters": {"temperature": 5}
    }
  }
}
"""


def test_every_schema_violation_is_listed_with_its_position() -> None:
    with pytest.raises(PackValidationError) as caught:
        load_pack_from_string(BROKEN, source="broken.pack.json")
    found = [(i.line, i.column, i.path) for i in caught.value.issues]
    assert found == [
        (2, 9, "$.id"),
        (7, 13, "$.prompts.chat"),
        (11, 7, "$.prompts.chat.system_tempalte"),
        (13, 31, "$.prompts.chat.variables[0].type"),
        (15, 37, "$.prompts.chat.parameters.temperature"),
    ]
    messages = [i.message for i in caught.value.issues]
    assert "does not match" in messages[0]
    assert messages[1] == "'system_template' is a required property"
    assert messages[2] == "unexpected property 'system_tempalte' (did you mean 'system_template'?)"
    assert messages[3].startswith('string "text" is not one of ["string", "number"')
    assert messages[4] == "5 is greater than the maximum of 2"
    text = str(caught.value)
    assert text.startswith("broken.pack.json: 5 problem(s)")
    assert "broken.pack.json:13:31: $.prompts.chat.variables[0].type:" in text


def test_each_unexpected_property_is_named() -> None:
    data = minimal()
    data["extra_one"] = 1
    data["extra_two"] = 2
    issues = issues_of(data)
    assert [i.message for i in issues] == ["unexpected property 'extra_one'",
                                           "unexpected property 'extra_two'"]
    assert [i.path for i in issues] == ["$.extra_one", "$.extra_two"]
    assert [(i.line, i.column) for i in issues] == [(17, 3), (18, 3)]  # the keys


def test_wrong_type_messages_do_not_dump_the_value() -> None:
    (issue,) = issues_of(minimal(variables={"name": "x"}))
    assert issue.path == "$.prompts.chat.variables"
    assert issue.message == "expected array, got an object"


def test_long_patterns_are_explained_not_dumped() -> None:
    data = minimal()
    data["version"] = "one"
    (issue,) = issues_of(data)
    assert issue.message.startswith('string "one" is not in the required format: Pack version')


def test_one_of_failures_report_the_intended_alternative() -> None:
    data = minimal()
    data["compositions"] = {"c": {"version": 1, "steps": [
        {"id": "s", "kind": "prompt"},
        {"id": "t", "kind": "tool", "tool": 3},
        {"id": "u", "kind": "weird"},
    ]}}
    data["skills"] = [5, {"path": "x", "preload": "yes"}]
    messages = {i.path: i.message for i in issues_of(data)}
    assert messages == {
        "$.compositions.c.steps[0]": "'prompt_task' is a required property",
        "$.compositions.c.steps[1].tool": "expected string, got number 3",
        "$.compositions.c.steps[2].kind":
            'string "weird" is not one of "prompt", "agent", "tool", "branch", "parallel"',
        "$.skills[0]": "expected string or object, got number 5",
        "$.skills[1].preload": 'expected boolean, got string "yes"',
    }
    assert not any("is not valid under any" in m for m in messages.values())


def test_validate_false_skips_the_schema() -> None:
    data = minimal()
    data["unknown_top_level"] = True
    with pytest.raises(PackValidationError):
        load_pack_from_dict(data)
    assert load_pack_from_dict(data, validate=False).id == "demo"


def test_validate_false_still_reports_unusable_structure() -> None:
    data = minimal()
    data["prompts"] = ["not", "a", "map"]
    with pytest.raises(PackValidationError, match="schema validation was skipped"):
        load_pack_from_dict(data, validate=False)


def test_dict_errors_have_no_positions() -> None:
    data = minimal()
    data["id"] = "Bad"
    with pytest.raises(PackValidationError) as caught:
        load_pack_from_dict(data, source="memory")
    (issue,) = caught.value.issues
    assert (issue.path, issue.line, issue.column) == ("$.id", None, None)
    assert "memory: $.id:" in str(caught.value)


def test_validator_is_built_once() -> None:
    assert _validator() is _validator()


def test_import_does_not_load_jsonschema() -> None:
    code = ("import sys; import promptkit.pack.loading, promptkit.pack.variables; "
            "print([m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'difflib')])")
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "[]"


# --- the provider extension ------------------------------------------------------------------


def test_provider_block_is_optional_and_partial() -> None:
    data = minimal()
    data["provider"] = {"model": "claude-sonnet-4"}
    assert load_pack_from_dict(data).provider == ProviderHint(name=None, model="claude-sonnet-4")


def test_provider_block_shape_is_checked() -> None:
    data = minimal()
    data["provider"] = {"name": 3, "modle": "x"}
    issues = issues_of(data)
    assert [(i.path, i.message) for i in issues] == [
        ("$.provider.name", "expected string, got number 3"),
        ("$.provider.modle", "unexpected property 'modle' (did you mean 'model'?)"),
    ]
    data["provider"] = "openai"
    (issue,) = issues_of(data)
    assert issue.path == "$.provider" and "expected an object" in issue.message


# --- semantic checks -------------------------------------------------------------------------


def test_prompt_tools_must_be_defined() -> None:
    data = copy.deepcopy(FULL)
    data["prompts"]["support"]["tools"] = ["lookup", "missing"]
    text = json.dumps(data, indent=2)
    (issue,) = issues_of(text)
    assert issue.path == "$.prompts.support.tools[1]"
    assert issue.message == (
        "tool 'missing' is not defined in the pack's tools (it defines: bare, lookup)")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"missing"' in row)
    assert issue.line == line


def test_fragment_references_must_resolve() -> None:
    data = minimal(system_template="{{fragment:nope}} {{fragments.also_nope}}")
    data["fragments"] = {"f": "{{fragment:gone}}"}
    messages = sorted((i.path, i.message) for i in issues_of(data))
    assert messages == [
        ("$.fragments.f", "fragment 'gone' is not defined in the pack"),
        ("$.prompts.chat.system_template", "fragment 'also_nope' is not defined in the pack"),
        ("$.prompts.chat.system_template", "fragment 'nope' is not defined in the pack"),
    ]


def test_fragment_cycles_are_errors() -> None:
    data = minimal(system_template="{{fragment:a}}")
    data["fragments"] = {"a": "{{fragment:b}}", "b": "{{fragments.a}}"}
    (issue,) = issues_of(data)
    assert issue.path.startswith("$.fragments.")
    assert "cycle" in issue.message


def test_unusable_validation_rules_are_errors() -> None:
    data = minimal(variables=[
        {"name": "a", "type": "string", "required": False, "validation": {"pattern": "(open"}},
        {"name": "b", "type": "string", "required": False,
         "validation": {"min_length": 5, "max_length": 2}},
    ])
    issues = issues_of(data)
    assert [i.path for i in issues] == ["$.prompts.chat.variables[0].validation.pattern",
                                        "$.prompts.chat.variables[1].validation"]


def test_warnings_do_not_stop_loading() -> None:
    data = minimal(
        system_template="Hi {{who}} {{user.name}} {{#if x}}",
        variables=[
            {"name": "user", "type": "object", "required": False},
            {"name": "tier", "type": "string", "required": False, "default": "gold",
             "validation": {"enum": ["silver"]}},
        ],
    )
    data["tools"] = {"key": {"name": "other_name", "description": "d"}}
    pack = load_pack_from_string(json.dumps(data, indent=2))
    found = [(w.path, w.message) for w in pack.warnings]
    assert ("$.prompts.chat.system_template",
            "{{who}} is not a declared variable of prompt 'chat'; it must be set at runtime "
            "or rendering fails") in found
    assert not any("user.name" in message for _, message in found)  # root 'user' is declared
    assert any(path == "$.prompts.chat.system_template" and "{{#if x}} is not a placeholder"
               in message for path, message in found)
    assert any(path == "$.prompts.chat.variables[1].default" for path, _ in found)
    assert any(path == "$.tools.key.name" and "differs from its key" in message
               for path, message in found)
    assert all(w.line is not None for w in pack.warnings)


def test_duplicate_keys_last_wins_and_is_located() -> None:
    text = json.dumps(minimal(), indent=2)[:-2] + ',\n  "id": "Bad"\n}'
    (issue,) = issues_of(text)
    assert issue.path == "$.id"
    assert issue.line == text.count("\n") and issue.column == 9


# --- JSON positions --------------------------------------------------------------------------


def test_format_path() -> None:
    assert format_path(["prompts", "chat", "variables", 0, "type"]) == (
        "$.prompts.chat.variables[0].type")
    assert format_path(["prompts", "vision-analyst"]) == "$.prompts.vision-analyst"
    assert format_path(["a b", "é", "x.y"]) == '$["a b"]["é"]["x.y"]'
    assert format_path([]) == "$"


def test_locate_handles_escapes_and_unicode() -> None:
    text = '{"k\\"ey": "va\\u00e9l}ue", "ü": {"x": [10, "]", {"deep": null}]}}'
    index = locate_index(text, ["ü", "x", 2, "deep"])
    assert index is not None and text[index:index + 4] == "null"
    assert locate(text, ["ü", "x", 2, "deep"]) == line_column(text, index)
    assert locate(text, ['k"ey']) == (1, 11)
    assert locate(text, ['k"ey'], key=True) == (1, 2)


def test_locate_stops_at_the_deepest_existing_part() -> None:
    text = '{\n  "a": {\n    "b": 1\n  }\n}'
    assert locate(text, ["a", "missing", "x"]) == (2, 8)
    assert locate(text, ["a", "b", "c"]) == (3, 10)
    assert locate(text, [0]) == (1, 1)
    assert locate("", ["a"]) is None
    assert locate("{broken", ["a"]) is None


_scalars = (st.none() | st.booleans() | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=25,
)


@settings(deadline=None, max_examples=300)
@given(document=_documents, indent=st.sampled_from([None, 0, 1, 2, "\t", " \r\n "]),
       ascii_only=st.booleans(), data=st.data())
def test_locate_agrees_with_json_loads(document: Any, indent: Any, ascii_only: bool,
                                       data: st.DataObject) -> None:
    path: list[str | int] = []
    node = document
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        step: str | int = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict)
                                                    else range(len(node))))
        path.append(step)
        node = node[step]  # type: ignore[index]
    separators = (",", ":") if indent is None else None
    text = json.dumps(document, indent=indent, ensure_ascii=ascii_only, separators=separators)
    index = locate_index(text, path)
    assert index is not None
    value, _ = json.JSONDecoder().raw_decode(text, index)
    assert value == node
    line, column = line_column(text, index)
    assert sum(len(row) + 1 for row in text.split("\n")[: line - 1]) + column - 1 == index
    if path and isinstance(path[-1], str):
        key_index = locate_index(text, path, key=True)
        assert key_index is not None
        assert json.JSONDecoder().raw_decode(text, key_index)[0] == path[-1]


@pytest.mark.parametrize(
    ("error", "reason"),
    [(PermissionError(13, "Permission denied"), "permission denied"),
     (OSError(5, "Input/output error"), "Input/output error")],
)
def test_read_errors_become_pack_not_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           error: OSError, reason: str) -> None:
    # Runs even as root, where chmod 000 does not stop reads.
    import promptkit.pack.loading as pack_module

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(pack_module.os, "open", refuse)
    with pytest.raises(PackNotFoundError, match=reason):
        load_pack(write(tmp_path, minimal()))
