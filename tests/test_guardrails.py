"""Guardrails (pack ``validators``): the streaming guarantee, blocking, monitor mode, custom
validators and pack errors, through both drivers over real HTTP."""

from __future__ import annotations

import functools
import itertools
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promptkit
from promptkit.checks.guardrails import compile_guardrails
from promptkit.engine.chunks import text_chunk
from promptkit.engine.guardrails import OutputGuard
from promptkit.pack.loading import load_pack_from_dict
from promptkit.testing import FakeServer

from checks_support import compat_pack, text_reply, write_pack
from support import Driver, kinds, texts

KEY = "sk-test-0123456789abcdefghijklmnop"
BANNED = ["darn", "heck", "blast it"]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def open_http(driver: Driver, server: FakeServer, pack: Path, **options: Any) -> Any:
    options.setdefault("timeouts", promptkit.Timeouts(connect=2, first_token=5, idle=5))
    return driver.open(pack, "chat", provider="openai", model="gpt-4o-mini", api_key=KEY,
                       base_url=server.url + "/v1", **options)


def banned_pack(tmp_path: Path, *, limit: int | None = None, **extra: Any) -> Path:
    validators: list[Any] = [{"type": "banned_words", "enabled": True,
                              "params": {"words": BANNED, "message": "Let's keep it clean."},
                              **extra}]
    if limit is not None:
        validators.append({"type": "max_length", "enabled": True,
                           "params": {"max_characters": limit, "message": "Too long."}})
    return write_pack(tmp_path, validators=validators)


def whole_word(words: list[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)",
                      re.IGNORECASE)


# --- the streaming guarantee, on the guard itself ---------------------------------------------

ALPHABET = st.sampled_from([*list("darnhecklbstiDARNHECK _.,!-é1"), "blast it", " Darn", "DaRn"])


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


# Word lists of both scan paths: word characters only (the trailing-word fast path), and with a
# phrase (the general search); overlapping words and a one-letter word too.
WORD_LISTS = (tuple(BANNED), ("darn", "heck"), ("da", "darn", "d"))


@functools.cache
def compiled(limit: int | None, words: tuple[str, ...]) -> tuple[Any, ...]:
    pack = load_pack_from_dict({
        "id": "p", "name": "p", "version": "1.0.0",
        "template_engine": {"version": "v1", "syntax": "{{variable}}"},
        "prompts": {"chat": {"id": "chat", "name": "c", "version": "1.0.0",
                             "system_template": "x"}}})
    specs: list[Any] = [{"type": "content_excludes", "params": {"words": list(words)}}]
    if limit is not None:
        specs.append({"type": "length", "params": {"max_characters": limit}})
    return compile_guardrails(pack, pack.prompt("chat"), guardrails=specs)


def guard_for(limit: int | None, words: tuple[str, ...]) -> OutputGuard:
    guardrails = compiled(limit, words)
    return OutputGuard(guardrails, [g.stream_scan() for g in guardrails])  # type: ignore[misc]


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(ALPHABET, max_size=40), cuts=st.lists(st.integers(0, 400), max_size=12),
       limit=st.one_of(st.none(), st.integers(0, 60)), words=st.sampled_from(WORD_LISTS),
       batches=st.lists(st.integers(1, 6), max_size=12))
def test_no_released_concatenation_ever_holds_a_banned_word_or_passes_the_limit(
        pieces: list[str], cuts: list[int], limit: int | None, words: tuple[str, ...],
        batches: list[int]) -> None:
    """Deltas split at random points, arriving one or several at a time (one network read)."""
    text = "".join(pieces)
    guard = guard_for(limit, words)
    pattern = whole_word(list(words))
    shown = ""
    deltas = [text_chunk(d) for d in split(text, cuts)]
    groups = []
    for size in [*batches, len(deltas)]:
        groups.append(deltas[:size])
        deltas = deltas[size:]
    for group in groups:
        for chunk in guard.feed(group):
            shown += chunk.text
            # what a UI shows at any moment: never a banned whole word, never over the limit
            assert pattern.search(shown) is None, (shown, text)
            assert limit is None or len(shown) <= limit
        if guard.tripped is not None:
            break
    tail = guard.finish()
    violates = pattern.search(text) is not None or (limit is not None and len(text) > limit)
    if violates:
        assert tail is None and guard.violated is not None
    else:  # no false positives, nothing lost or reordered
        assert tail is not None and shown + tail == text


# --- end to end, over HTTP -----------------------------------------------------------------------


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(ALPHABET, min_size=1, max_size=25),
       cuts=st.lists(st.integers(0, 300), max_size=10), kind=st.sampled_from(["sync", "async"]))
def test_split_replies_never_stream_a_banned_word(tmp_path_factory: pytest.TempPathFactory,
                                                  pieces: list[str], cuts: list[int],
                                                  kind: str) -> None:
    text = "".join(pieces)
    driver = Driver(kind)
    pack = banned_pack(tmp_path_factory.mktemp("p"))
    with FakeServer([text_reply(split(text, cuts))]) as server:
        conv = open_http(driver, server, pack)
        chunks = driver.stream(conv, "hi")
    shown = texts(chunks)
    assert whole_word(BANNED).search(shown) is None
    done = chunks[-1].response
    assert done is not None
    if whole_word(BANNED).search(text):
        assert kinds(chunks)[-2:] == ["validation", "done"]
        assert done.finish_reason == "safety" and done.text == "Let's keep it clean."
        assert [m.text for m in conv.messages] == ["hi", "Let's keep it clean."]
    else:
        assert shown == text == done.text
        assert "validation" not in kinds(chunks)


def test_violation_closes_the_upstream_stream(driver: Driver, server: FakeServer,
                                              tmp_path: Path) -> None:
    deltas = ["Well ", "oh ", "da", "rn", " it"] + [" and more"] * 300
    server.enqueue(text_reply(deltas, chunk_delay=0.01))  # 3 s if read to the end
    conv = open_http(driver, server, banned_pack(tmp_path))
    chunks = driver.stream(conv, "hi")
    assert texts(chunks) == "Well oh "
    assert kinds(chunks)[-2:] == ["validation", "done"]
    validation = chunks[-2].validation
    assert validation is not None and validation.blocked and not validation.passed
    assert validation.details["word"].lower() == "darn"
    assert server.wait_idle(1.0), "the client kept the provider's stream open"
    assert server.connections_opened == 1 and len(server.requests) == 1
    response = chunks[-1].response
    assert response is not None and response.finish_reason == "safety"
    assert response.validations[-1] == validation
    assert [m.text for m in conv.messages] == ["hi", "Let's keep it clean."]
    assert all("darn" not in m.text.lower() for m in conv.messages)


def test_send_is_the_same_path(driver: Driver, server: FakeServer, tmp_path: Path) -> None:
    server.enqueue(text_reply(["What the ", "HECK", "!"]))
    conv = open_http(driver, server, banned_pack(tmp_path))
    response = driver.send(conv, "hi")
    assert response.finish_reason == "safety" and response.text == "Let's keep it clean."
    assert response.validations[0].blocked


def test_max_length_stops_the_stream_at_the_limit(driver: Driver, server: FakeServer,
                                                  tmp_path: Path) -> None:
    server.enqueue(text_reply(["12345", "67890", "abcde"]))
    conv = open_http(driver, server, banned_pack(tmp_path, limit=12))
    chunks = driver.stream(conv, "hi")
    assert texts(chunks) == "1234567890"
    assert chunks[-1].response is not None and chunks[-1].response.text == "Too long."


def test_clean_reply_passes_with_results(driver: Driver, server: FakeServer,
                                         tmp_path: Path) -> None:
    server.enqueue(text_reply(["Darned ", "good ", "hecks"]))  # not whole words
    conv = open_http(driver, server, banned_pack(tmp_path, limit=100))
    response = driver.send(conv, "hi")
    assert response.text == "Darned good hecks" and response.finish_reason == "stop"
    assert [(v.type, v.passed) for v in response.validations] == [
        ("banned_words", True), ("max_length", True)]


def test_input_violation_sends_and_stores_nothing(driver: Driver, server: FakeServer) -> None:
    pack = compat_pack("promptkit/sdk/examples/hooks/hooks.pack.json")
    conv = open_http(driver, server, pack)
    chunks = driver.stream(conv, "What is the Routing Number of my bank?")
    assert kinds(chunks) == ["validation", "done"]
    response = chunks[-1].response
    assert response is not None and response.finish_reason == "safety"
    assert response.text == "I can't help with bank routing numbers."
    assert response.validations[0].direction == "input"
    assert server.requests == [] and conv.messages == []
    server.enqueue(text_reply(["Sure."]))
    assert driver.send(conv, "Hello").text == "Sure."
    assert [m.text for m in conv.messages] == ["Hello", "Sure."]


def test_fail_on_violation_false_monitors(driver: Driver, server: FakeServer,
                                          tmp_path: Path) -> None:
    server.enqueue(text_reply(["oh ", "darn"]))
    conv = open_http(driver, server, banned_pack(tmp_path, fail_on_violation=False))
    response = driver.send(conv, "hi")
    assert response.text == "oh darn" and response.finish_reason == "stop"
    (result,) = response.validations
    assert not result.passed and not result.enforced and not result.blocked
    assert conv.messages[-1].text == "oh darn"


def test_guardrails_mode_monitor_downgrades_all(driver: Driver, server: FakeServer,
                                                tmp_path: Path) -> None:
    server.enqueue(text_reply(["oh ", "darn"]))
    conv = open_http(driver, server, banned_pack(tmp_path), guardrails_mode="monitor")
    chunks = driver.stream(conv, "hi")
    assert texts(chunks) == "oh darn" and "validation" not in kinds(chunks)
    assert chunks[-1].response is not None
    assert not chunks[-1].response.validations[0].passed


def test_whole_answer_check_blocks_after_the_stream(driver: Driver, server: FakeServer,
                                                    tmp_path: Path) -> None:
    pack = write_pack(tmp_path, validators=[{"type": "valid_json", "enabled": True,
                                             "params": {"message": "Bad format."}}])
    server.enqueue(text_reply(['{"a": ', "1"]))
    conv = open_http(driver, server, pack)
    chunks = driver.stream(conv, "hi")
    assert kinds(chunks)[-2:] == ["validation", "done"]
    assert chunks[-1].response is not None and chunks[-1].response.text == "Bad format."
    assert [m.text for m in conv.messages] == ["hi", "Bad format."]


def test_custom_and_code_guardrails(driver: Driver, server: FakeServer, tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def shouty(text: str, params: dict[str, Any]) -> bool:
        seen.append((text, params))
        return not text.isupper()

    async def polite(text: str, params: dict[str, Any]) -> promptkit.ValidationResult:
        ok = "please" in text.lower()
        return promptkit.ValidationResult(type="polite", passed=ok, message="Ask nicely.",
                                          details={"checked": True})

    pack = write_pack(tmp_path, validators=[
        {"type": "shouty", "enabled": True, "params": {"direction": "input", "x": 1}}])
    conv = open_http(driver, server, pack, validators={"shouty": shouty, "polite": polite},
                     guardrails=[{"type": "polite", "params": {"direction": "input"}},
                                 {"type": "content_excludes", "params": {"words": ["meh"]}}])
    assert driver.send(conv, "HELLO").finish_reason == "safety"
    response = driver.send(conv, "hello")
    assert response.text == "Ask nicely." and response.validations[1].details == {"checked": True}
    server.enqueue(text_reply(["fine, ", "meh"]))
    response = driver.send(conv, "hello please")
    assert response.finish_reason == "safety"
    assert [v.type for v in response.validations] == ["shouty", "polite", "content_excludes"]
    assert seen[0] == ("HELLO", {"direction": "input", "x": 1})
    assert len(server.requests) == 1


def test_a_raising_validator_fails_the_turn_typed(driver: Driver, server: FakeServer,
                                                  tmp_path: Path) -> None:
    def broken(text: str, params: dict[str, Any]) -> bool:
        raise RuntimeError("model file missing")

    async def broken_async(text: str, params: dict[str, Any]) -> bool:
        raise ValueError("timeout talking to the classifier")

    for name, function in (("pii_scan", broken), ("pii_async", broken_async)):
        conv = open_http(driver, server, write_pack(tmp_path, name=name), validators={
            name: function}, guardrails=[{"type": name, "params": {"direction": "both"}}])
        chunks = driver.stream(conv, "hi")
        assert kinds(chunks) == ["error"]
        error = chunks[0].error
        assert isinstance(error, promptkit.GuardrailError) and error.validator == name
        assert name in str(error)
        assert conv.messages == [] and server.requests == []
        with pytest.raises(promptkit.GuardrailError):
            driver.send(conv, "again")


def test_a_validator_returning_nonsense_is_an_error(driver: Driver, server: FakeServer,
                                                    tmp_path: Path) -> None:
    conv = open_http(driver, server, write_pack(tmp_path), validators={"odd": lambda t, p: "yes"},
                     guardrails=[{"type": "odd", "params": {"direction": "input"}}])
    with pytest.raises(promptkit.GuardrailError, match="returned str"):
        driver.send(conv, "hi")


# --- pack errors at open ----------------------------------------------------------------------


def test_unknown_type_names_path_type_and_nearest(tmp_path: Path) -> None:
    with pytest.raises(promptkit.PackValidationError) as caught:
        promptkit.open(compat_pack("promptkit/sdk/testdata/packs/guardrail-bad-type.pack.json"),
                       "chat", provider="mock")
    (issue,) = caught.value.issues
    assert issue.path == "$.prompts.chat.validators[0].type"
    assert "'pii_leakge'" in issue.message and "nearest known:" in issue.message
    assert issue.line is not None
    pack = write_pack(tmp_path, validators=[{"type": "banned_wrds", "enabled": True}])
    with pytest.raises(promptkit.PackValidationError, match="banned_words"):
        promptkit.open(pack, "chat", provider="mock")


def test_code_guardrail_with_unknown_type_names_its_position() -> None:
    with pytest.raises(promptkit.PackValidationError) as caught:
        promptkit.open(compat_pack("promptkit/sdk/testdata/packs/guardrail-test.pack.json"),
                       "chat", provider="mock", guardrails=[{"type": "contains"},
                                                            {"type": "regx"}])
    assert [i.path for i in caught.value.issues] == ["$.guardrails[1].type"]
    assert "regex" in caught.value.issues[0].message


def test_bad_params_warn_and_skip() -> None:
    with pytest.warns(promptkit.GuardrailConfigWarning, match="max_characters"):
        conv = promptkit.open(
            compat_pack("promptkit/sdk/testdata/packs/guardrail-bad-params.pack.json"), "chat",
            provider="mock", mock_responses={"defaultResponse": "x" * 50})
    response = conv.send("hi")
    assert response.text == "x" * 50 and response.validations == ()


@pytest.mark.parametrize(("params", "fragment"), [
    ({"type": "regex", "params": {"pattern": "(unclosed"}}, "does not compile"),
    ({"type": "json_schema", "params": {"schema": {"type": 12}}}, "not a valid JSON Schema"),
    ({"type": "content_excludes", "params": {"words": ["x"], "direction": "sideways"}},
     "direction"),
])
def test_wrong_values_fail_the_open_naming_the_path(tmp_path: Path, params: dict[str, Any],
                                                    fragment: str) -> None:
    pack = write_pack(tmp_path, validators=[{"enabled": True, **params}])
    with pytest.raises(promptkit.PackValidationError) as caught:
        promptkit.open(pack, "chat", provider="mock")
    (issue,) = caught.value.issues
    assert issue.path.startswith("$.prompts.chat.validators[0].params")
    assert fragment in issue.message
    assert issue.line is not None


def test_aliases_resolve_to_the_go_names() -> None:
    from promptkit.checks.registry import canonical, known_names

    assert {alias: canonical(alias) for alias in (
        "banned_words", "length", "content_matches", "regex_match", "valid_json",
        "is_valid_json", "max_sentences", "required_fields", "tool_called")} == {
        "banned_words": "content_excludes", "length": "max_length", "content_matches": "regex",
        "regex_match": "regex", "valid_json": "json_valid", "is_valid_json": "json_valid",
        "max_sentences": "sentence_count", "required_fields": "field_presence",
        "tool_called": "tools_called"}
    assert "llm_judge" not in known_names(evals=False)


@pytest.mark.parametrize(("kind", "params", "text", "passed"), [
    ("min_length", {"min_characters": 5}, "1234", False),
    ("regex", {"pattern": r"\d{3}"}, "call 555", True),
    ("contains", {"patterns": ["Hello", "world"]}, "hello there", False),
    ("contains_any", {"patterns": ["Hello", "world"]}, "hello there", True),
    ("json_schema", {"schema": {"type": "object", "required": ["a"]}}, '{"a": 1}', True),
    ("json_schema", {"schema": {"type": "object", "required": ["a"]}}, '{"b": 1}', False),
    ("sentence_count", {"max": 2}, "One. Two! Three?", False),
    ("sentence_count", {"max": 2}, "One. Two and more", True),
    ("field_presence", {"fields": ["a.b"]}, '```json\n{"a": {"b": 2}}\n```', True),
    ("max_length", {"max_tokens": 2}, "123456789", False),
])
def test_check_types(kind: str, params: dict[str, Any], text: str, passed: bool) -> None:
    from promptkit.checks.registry import lookup
    from promptkit.checks.types import CheckInput

    check = lookup(kind)
    assert check is not None
    assert check.run(check.prepare(params), CheckInput(text)).passed is passed


def test_guardrail_packs_of_the_corpus_open() -> None:
    """Every compat pack with validators opens (the bad-type one fails as it should)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conv = promptkit.open(compat_pack("promptpack-python/examples/packs/customer-support.json"),
                              "support", provider="mock",
                              variables={"company_name": "Acme", "issue_type": "billing",
                                         "role": "agent"},
                              mock_responses={"defaultResponse": "That is offensive."})
    assert not [w for w in caught if issubclass(w.category, promptkit.GuardrailConfigWarning)]
    response = conv.send("hi")
    assert response.finish_reason == "safety"
    assert json.dumps([v.to_dict() for v in response.validations])
