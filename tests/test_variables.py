"""VariableSet: precedence, stringification, validation rules, env import, threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from promptkit._errors import InvalidVariableError, MissingVariableError
from promptkit.pack.model import VariableSpec, VariableValidation
from promptkit.pack.template import compile_template
from promptkit.pack.variables import VariableSet, check_value, spec_problems


def spec(name: str = "v", type: Any = "string", **rules: Any) -> VariableSpec:
    required = rules.pop("required", False)
    default = rules.pop("default", None)
    has_default = rules.pop("has_default", default is not None)
    validation = VariableValidation(**rules) if rules else None
    return VariableSpec(
        name=name, type=type, required=required, default=default, has_default=has_default,
        validation=validation,
    )


def resolve(variables: VariableSet, template: str, fragments: dict[str, str] | None = None) -> str:
    return variables.resolve(compile_template(template), fragments or {}, "chat")


# --- precedence and storage ------------------------------------------------------------------


def test_precedence_default_then_open_values_then_set() -> None:
    variables = VariableSet([spec("tone", default="neutral"), spec("name")])
    assert variables.get("tone") == "neutral"
    variables = VariableSet([spec("tone", default="neutral")], {"tone": "warm"})
    assert variables.get("tone") == "warm"
    variables.set("tone", "formal")
    assert variables.get("tone") == "formal"
    variables.set("tone", None)  # removing the value brings the default back
    assert variables.get("tone") == "neutral"


def test_get_unknown_is_none() -> None:
    assert VariableSet().get("nothing") is None
    assert VariableSet([spec("declared")]).get("declared") is None


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("text", "text"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (2.5, "2.5"),
        ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
        (["x", 1], '["x",1]'),
        ("", ""),
    ],
)
def test_set_stringifies(value: Any, stored: str) -> None:
    variables = VariableSet()
    variables.set("v", value)
    assert variables.get("v") == stored
    variables.set_many({"w": value})
    assert variables.get("w") == stored


def test_set_none_removes() -> None:
    variables = VariableSet(values={"a": "1", "b": "2"})
    variables.set_many({"a": None})
    assert variables.snapshot() == {"b": "2"}


def test_unsupported_value_type_is_refused() -> None:
    with pytest.raises(InvalidVariableError, match="cannot use a object value"):
        VariableSet().set("v", object())


def test_defaults_are_stringified() -> None:
    variables = VariableSet(
        [spec("n", "number", default=3), spec("b", "boolean", default=True),
         spec("o", "object", default={"k": "v"}), spec("s", default="x")]
    )
    assert variables.snapshot() == {"n": "3", "b": "true", "o": '{"k":"v"}', "s": "x"}


def test_json_null_default_means_no_default() -> None:
    variables = VariableSet([spec("v", default=None, has_default=True)])
    assert variables.get("v") is None


def test_snapshot_has_defaults_and_values_and_is_a_copy() -> None:
    variables = VariableSet([spec("a", default="A"), spec("b", default="B")], {"b": "b", "c": "c"})
    snapshot = variables.snapshot()
    assert snapshot == {"a": "A", "b": "b", "c": "c"}
    snapshot["a"] = "changed"
    assert variables.get("a") == "A"


def test_undeclared_names_are_allowed() -> None:
    variables = VariableSet([spec("declared")])
    variables.set("extra", "x")
    assert resolve(variables, "{{extra}}") == "x"


def test_copy_is_independent() -> None:
    original = VariableSet([spec("a", default="A")], {"b": "1"})
    clone = original.copy()
    clone.set("b", "2")
    original.set("c", "3")
    assert original.snapshot() == {"a": "A", "b": "1", "c": "3"}
    assert clone.snapshot() == {"a": "A", "b": "2"}
    assert clone.specs == original.specs


# --- environment -----------------------------------------------------------------------------


def test_set_from_env() -> None:
    environ = {"PROMPTKIT_USER_NAME": "Ada", "PROMPTKIT_TONE": "warm", "OTHER": "x",
               "PROMPTKIT_": "empty name ignored"}
    variables = VariableSet()
    assert variables.set_from_env("PROMPTKIT_", environ) == ("tone", "user_name")
    assert variables.snapshot() == {"user_name": "Ada", "tone": "warm"}


def test_set_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKTEST_CITY", "Paris")
    variables = VariableSet()
    variables.set_from_env("PKTEST_")
    assert variables.get("city") == "Paris"


def test_set_from_env_validates_all_or_nothing() -> None:
    variables = VariableSet([spec("count", "number")])
    with pytest.raises(InvalidVariableError):
        variables.set_from_env("P_", {"P_COUNT": "many", "P_NAME": "Ada"})
    assert variables.snapshot() == {}


# --- resolve ---------------------------------------------------------------------------------


def test_resolve_renders_with_effective_values() -> None:
    variables = VariableSet([spec("name", required=True), spec("tone", default="warm")],
                            {"name": "Ada"})
    assert resolve(variables, "{{name}} is {{tone}}") == "Ada is warm"
    variables.set("tone", "brisk")
    assert resolve(variables, "{{name}} is {{tone}}") == "Ada is brisk"


def test_resolve_lists_every_missing_required_variable() -> None:
    variables = VariableSet([spec("a", required=True), spec("b", required=True),
                             spec("c", required=True)], {"b": "ok"})
    with pytest.raises(MissingVariableError) as caught:
        resolve(variables, "{{a}} {{b}} {{c}}")
    assert caught.value.names == ("a", "c")
    assert caught.value.prompt == "chat"


def test_required_empty_string_counts_as_missing() -> None:
    variables = VariableSet([spec("a", required=True)], {"a": ""})
    with pytest.raises(MissingVariableError):
        resolve(variables, "{{a}}")


def test_required_satisfied_by_default() -> None:
    variables = VariableSet([spec("lang", required=True, default="French")])
    assert resolve(variables, "{{lang}}") == "French"


def test_optional_variable_without_value_renders_empty() -> None:
    variables = VariableSet([spec("nickname")])
    assert resolve(variables, "[{{nickname}}]") == "[]"


def test_unresolved_undeclared_placeholder_raises() -> None:
    with pytest.raises(MissingVariableError) as caught:
        resolve(VariableSet(), "{{who}} {{what}}")
    assert caught.value.names == ("who", "what")


def test_resolve_uses_fragments() -> None:
    variables = VariableSet(values={"name": "Ada"})
    assert resolve(variables, "{{fragment:hi}}", {"hi": "Hi {{name}}"}) == "Hi Ada"


def test_invalid_default_is_reported_when_used_not_when_built() -> None:
    variables = VariableSet([spec("n", "number", default="lots")])
    with pytest.raises(InvalidVariableError, match="the pack's default is invalid"):
        resolve(variables, "{{n}}")
    variables.set("n", 2)
    assert resolve(variables, "{{n}}") == "2"


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "good", "bad", "reason"),
    [
        (spec(type="number"), ["3", "-2.5", "1e3", "+.5", "7."],
         ["abc", "", "1,5", "nan", "inf", "1e999", " 3"], "expected a number"),
        (spec(type="boolean"), ["true", "false", "TRUE", "False"], ["1", "0", "yes", ""],
         "expected true or false"),
        (spec(type="object"), ['{"a": 1}', "{}"], ["[]", "nope", '"s"'], "JSON object"),
        (spec(type="array"), ["[1, 2]", "[]"], ["{}", "[", "3"], "JSON array"),
        (spec(pattern=r"\d{3}"), ["123", "ab1234"], ["12", "abc"], "does not match the pattern"),
        (spec(pattern=r"^[a-z]+$"), ["abc"], ["abc1", "ABC"], "does not match the pattern"),
        (spec(min_length=3), ["abc", "abcd"], ["ab", ""], "at least 3 characters"),
        (spec(max_length=3), ["", "abc"], ["abcd"], "at most 3 characters"),
        (spec(type="number", minimum=1), ["1", "1.5"], ["0.99", "-3"], "at least 1"),
        (spec(type="number", maximum=10), ["10", "-1"], ["10.01"], "at most 10"),
        (spec(maximum=10), ["5"], ["11", "ten"], "at most 10|expected a number"),
        (spec(enum=("low", "high")), ["low", "high"], ["medium", "LOW"], "not one of"),
        (spec(type="number", enum=(1, 2.5)), ["1", "1.0", "2.5"], ["3", "2"], "not one of"),
        (spec(type="boolean", enum=(True,)), ["true", "True"], ["false"], "not one of"),
        (spec(type="object", enum=({"a": 1},)), ['{"a":1}', '{ "a": 1 }'], ['{"a":2}'],
         "not one of"),
    ],
)
def test_validation_rules(variable: VariableSpec, good: list[str], bad: list[str],
                          reason: str) -> None:
    for value in good:
        check_value(variable, value)
    for value in bad:
        with pytest.raises(InvalidVariableError, match=reason) as caught:
            check_value(variable, value)
        assert caught.value.name == "v"


def test_boolean_is_stored_lower_case() -> None:
    variables = VariableSet([spec("flag", "boolean")])
    variables.set("flag", "TRUE")
    assert variables.get("flag") == "true"


def test_numbers_keep_their_spelling() -> None:
    variables = VariableSet([spec("price", "number")])
    variables.set("price", "3.50")
    assert variables.get("price") == "3.50"


def test_set_validates_immediately() -> None:
    variables = VariableSet([spec("age", "number", minimum=0)])
    with pytest.raises(InvalidVariableError) as caught:
        variables.set("age", -1)
    assert caught.value.name == "age"
    assert variables.get("age") is None


def test_invalid_initial_values_raise() -> None:
    with pytest.raises(InvalidVariableError):
        VariableSet([spec("age", "number")], {"age": "old"})


def test_set_many_is_all_or_nothing() -> None:
    variables = VariableSet([spec("age", "number")], {"age": 1})
    with pytest.raises(InvalidVariableError):
        variables.set_many({"name": "Ada", "age": "old"})
    assert variables.snapshot() == {"age": "1"}


def test_invalid_pattern_is_an_invalid_variable_error() -> None:
    with pytest.raises(InvalidVariableError, match="not a valid regular expression"):
        check_value(spec(pattern="(unclosed"), "x")


def test_spec_problems() -> None:
    assert spec_problems(spec(pattern="[a-z]+", min_length=1, default="abc")) == ([], [])
    errors, _ = spec_problems(spec(pattern="(unclosed"))
    assert errors and errors[0][0] == "validation.pattern"
    errors, _ = spec_problems(spec(min_length=5, max_length=2))
    assert errors == [
        ("validation", "min_length 5 is greater than max_length 2: no value can pass")]
    errors, _ = spec_problems(spec(type="number", minimum=5, maximum=2))
    assert errors and "minimum 5" in errors[0][1]
    errors, warnings = spec_problems(spec(enum=("a", "b"), default="c"))
    assert errors == [] and warnings[0][0] == "default"


# --- threads ---------------------------------------------------------------------------------


def test_concurrent_set_get_and_resolve() -> None:
    variables = VariableSet([spec("shared", "number", default=0), spec("name", required=True)],
                            {"name": "Ada"})
    template = compile_template("{{name}} {{shared}}")
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def writer(index: int) -> None:
        try:
            start.wait()
            for step in range(300):
                variables.set(f"own_{index}", step)
                variables.set_many({"shared": step, f"pair_{index}": step})
                assert variables.get(f"own_{index}") == str(step)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def reader() -> None:
        try:
            start.wait()
            for _ in range(300):
                snapshot = variables.snapshot()
                assert snapshot["name"] == "Ada"
                text = variables.resolve(template, {}, "chat")
                assert text.startswith("Ada ")
                variables.copy()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    snapshot = variables.snapshot()
    for index in range(8):
        assert snapshot[f"own_{index}"] == "299"
        assert snapshot[f"pair_{index}"] == "299"
    assert snapshot["shared"] == "299"
