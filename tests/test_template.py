"""Template rendering: placeholders, dot paths, fragments, missing values, no re-expansion."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptkit._errors import MissingVariableError, PackValidationError
from promptkit.pack.template import (
    MAX_FRAGMENT_DEPTH,
    CompiledTemplate,
    compile_template,
    fragment_problems,
    placeholders,
    render,
    stringify,
)


def test_plain_placeholder() -> None:
    assert render("Hello {{name}}!", {"name": "Ada"}, {}) == "Hello Ada!"


@pytest.mark.parametrize("written", ["{{ name }}", "{{name }}", "{{  name}}", "{{\tname\n}}"])
def test_whitespace_inside_braces_is_tolerated(written: str) -> None:
    assert render(f"<{written}>", {"name": "Ada"}, {}) == "<Ada>"


def test_same_placeholder_many_times_and_adjacent() -> None:
    assert render("{{a}}{{b}}{{a}}", {"a": "1", "b": "2"}, {}) == "121"


def test_empty_value_is_a_value() -> None:
    assert render("[{{a}}]", {"a": ""}, {}) == "[]"


def test_fragments_in_both_syntaxes() -> None:
    fragments = {"intro": "I am a bot.", "outro": "Bye."}
    text = render("{{fragments.intro}} {{fragment:outro}} {{ fragment:intro }}", {}, fragments)
    assert text == "I am a bot. Bye. I am a bot."


def test_fragments_are_rendered_with_the_variables() -> None:
    fragments = {"customer": "Customer: {{customer_name}} ({{fragment:tier}})", "tier": "gold"}
    text = render("{{fragments.customer}}", {"customer_name": "Ada"}, fragments)
    assert text == "Customer: Ada (gold)"


def test_fragment_cycle_is_an_error() -> None:
    fragments = {"a": "A {{fragment:b}}", "b": "B {{fragments.a}}"}
    with pytest.raises(PackValidationError) as caught:
        render("{{fragment:a}}", {}, fragments)
    assert "cycle: a -> b -> a" in str(caught.value)


def test_self_including_fragment_is_an_error() -> None:
    with pytest.raises(PackValidationError, match="cycle: a -> a"):
        render("{{fragment:a}}", {}, {"a": "again {{fragment:a}}"})


def _chain(length: int) -> dict[str, str]:
    fragments = {f"f{i}": f"{i} {{{{fragment:f{i + 1}}}}}" for i in range(length - 1)}
    fragments[f"f{length - 1}"] = "end"
    return fragments


def test_fragment_nesting_up_to_the_limit_works() -> None:
    text = render("{{fragment:f0}}", {}, _chain(MAX_FRAGMENT_DEPTH))
    assert text == " ".join(str(i) for i in range(MAX_FRAGMENT_DEPTH - 1)) + " end"


def test_fragment_nesting_beyond_the_limit_is_an_error() -> None:
    with pytest.raises(PackValidationError, match="nested deeper than"):
        render("{{fragment:f0}}", {}, _chain(MAX_FRAGMENT_DEPTH + 1))


def test_fragment_problems_finds_cycles_and_depth() -> None:
    assert fragment_problems(_chain(MAX_FRAGMENT_DEPTH)) == []
    assert fragment_problems({"a": "{{fragment:b}}", "b": "x"}) == []
    looped = {"a": "{{fragment:b}}", "b": "{{fragment:a}}", "c": "{{fragment:a}}"}
    cycles = fragment_problems(looped)
    assert len(cycles) == 1
    assert "cycle" in cycles[0][1]
    deep = fragment_problems(_chain(MAX_FRAGMENT_DEPTH + 1))
    assert deep and all("more than" in message for _, message in deep)


def test_a_long_fragment_chain_does_not_blow_the_stack() -> None:
    assert fragment_problems(_chain(3000))


def test_dot_path_prefers_the_literal_key() -> None:
    variables = {"user.name": "literal", "user": '{"name": "walked"}'}
    assert render("{{user.name}}", variables, {}) == "literal"


def test_dot_path_walks_into_json_objects_and_arrays() -> None:
    variables = {
        "user": '{"name": "Ada", "langs": ["en", "fr"], "age": 36, "admin": true, '
                '"meta": {"a": 1}}',
        "items": '[{"title": "First"}, {"title": "Second"}]',
    }
    template = (
        "{{user.name}} {{user.langs[1]}} {{user.age}} {{user.admin}} {{user.meta}} "
        "{{items[1].title}} {{ items[0].title }}"
    )
    assert render(template, variables, {}) == 'Ada fr 36 true {"a":1} Second First'


def test_dot_path_uses_the_longest_literal_prefix() -> None:
    variables = {"user.profile": '{"name": "deep"}'}
    assert render("{{user.profile.name}}", variables, {}) == "deep"


@pytest.mark.parametrize(
    ("variables", "template"),
    [
        ({"user": "not json"}, "{{user.name}}"),
        ({"user": '{"other": 1}'}, "{{user.name}}"),
        ({"user": '{"name": null}'}, "{{user.name}}"),
        ({"items": "[1]"}, "{{items[3]}}"),
        ({"items": '{"0": 1}'}, "{{items[0]}}"),
        ({"user": '["a"]'}, "{{user.name}}"),
        ({}, "{{user.name}}"),
    ],
)
def test_unresolvable_paths_are_missing(variables: dict[str, str], template: str) -> None:
    with pytest.raises(MissingVariableError) as caught:
        render(template, variables, {})
    assert caught.value.names == (template.strip("{}"),)


def test_all_missing_placeholders_are_listed_in_order() -> None:
    with pytest.raises(MissingVariableError) as caught:
        render(
            "{{b}} {{a}} {{b}} {{fragment:nope}} {{fragments.gone}} {{ok}}",
            {"ok": "1"},
            {},
            prompt="chat",
        )
    assert caught.value.names == ("b", "a", "fragment:nope", "fragments.gone")
    assert caught.value.prompt == "chat"
    assert "for prompt 'chat'" in str(caught.value)


def test_missing_names_inside_fragments_are_reported_too() -> None:
    with pytest.raises(MissingVariableError) as caught:
        render("{{a}} {{fragment:f}}", {}, {"f": "{{b}}"})
    assert caught.value.names == ("a", "b")


def test_values_are_substituted_once() -> None:
    # A user-supplied value must not pull other variables or fragments into the prompt.
    variables = {"message": "{{secret}} {{fragment:internal}}", "secret": "s3cret"}
    text = render("Said: {{message}}", variables, {"internal": "INTERNAL"})
    assert text == "Said: {{secret}} {{fragment:internal}}"


@pytest.mark.parametrize(
    "literal",
    ["{{#if x}}", "{{ a | upper }}", "{{}}", "{{ }}", "{{user-name}}", "{{1abc}}", "{{a..b}}"],
)
def test_other_double_brace_text_stays_literal(literal: str) -> None:
    compiled = compile_template(f"x {literal} y")
    assert compiled.render({}, {}) == f"x {literal} y"
    assert compiled.ignored == (literal,)
    assert not compiled.names


def test_single_braces_and_json_examples_are_literal() -> None:
    template = 'Reply as {"answer": {"text": "..."}} for {name} and {{name}}'
    assert render(template, {"name": "Ada"}, {}) == (
        'Reply as {"answer": {"text": "..."}} for {name} and Ada'
    )


def test_triple_braces_keep_the_outer_brace() -> None:
    assert render("{{{name}}}", {"name": "Ada"}, {}) == "{Ada}"


def test_placeholders_excludes_fragments() -> None:
    template = "{{a}} {{ b.c }} {{items[0].t}} {{fragment:x}} {{fragments.y}} {{#if}}"
    assert placeholders(template) == {"a", "b.c", "items[0].t"}


def test_compiled_template_exposes_names_and_fragment_refs() -> None:
    compiled = CompiledTemplate("{{a}} {{fragment:x}} {{fragments.y}}")
    assert compiled.names == frozenset({"a"})
    assert compiled.fragment_refs == frozenset({"x", "y"})
    fragments = {"x": "{{b}} {{fragment:z}}", "z": "{{c}} {{fragment:x}}"}
    assert compiled.all_names(fragments) == frozenset({"a", "b", "c"})
    assert "CompiledTemplate" in repr(compiled)


def test_compile_template_is_cached() -> None:
    assert compile_template("cached {{x}}") is compile_template("cached {{x}}")


def test_template_without_placeholders() -> None:
    assert render("", {}, {}) == ""
    assert render("plain text", {}, {}) == "plain text"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (2.5, "2.5"),
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),
        ([1, 2], "[1,2]"),
        ((1, 2), "[1,2]"),
        (None, None),
    ],
)
def test_stringify(value: object, expected: str | None) -> None:
    assert stringify(value) == expected


# --- properties ------------------------------------------------------------------------------

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_literal = st.text(st.characters(blacklist_characters="{}"), max_size=20)
_values = st.text(max_size=20)


@settings(deadline=None, max_examples=200)
@given(
    pieces=st.lists(st.tuples(_literal, _names, st.sampled_from(["", " ", "  "])), max_size=8),
    tail=_literal,
    data=st.data(),
)
def test_render_replaces_every_known_placeholder(
    pieces: list[tuple[str, str, str]], tail: str, data: st.DataObject
) -> None:
    names = {name for _, name, _ in pieces}
    values = {name: data.draw(_values, label=name) for name in sorted(names)}
    template = "".join(f"{text}{{{{{pad}{name}{pad}}}}}" for text, name, pad in pieces) + tail
    expected = "".join(f"{text}{values[name]}" for text, name, _ in pieces) + tail
    rendered = render(template, values, {})
    assert rendered == expected
    # nothing of the template's own placeholder syntax survives (values may contain braces)
    if not any("{" in value or "}" in value for value in values.values()):
        assert "{{" not in rendered
    assert placeholders(template) == names


@settings(deadline=None, max_examples=100)
@given(pieces=st.lists(st.tuples(_literal, _names), min_size=1, max_size=6))
def test_render_lists_exactly_the_unknown_names(pieces: list[tuple[str, str]]) -> None:
    template = "".join(f"{text}{{{{{name}}}}}" for text, name in pieces)
    known = dict.fromkeys({name for _, name in pieces[::2]}, "v")
    unknown = [name for _, name in pieces if name not in known]
    if not unknown:
        assert not re.search(r"\{\{", render(template, known, {}))
        return
    with pytest.raises(MissingVariableError) as caught:
        render(template, known, {})
    assert caught.value.names == tuple(dict.fromkeys(unknown))
