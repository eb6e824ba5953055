"""Evals (pack and prompt ``evals``): triggers, deterministic sampling, overrides, background
execution that never delays a reply, llm_judge verdicts, session evals at close, offline
``promptkit.evaluate``, and every compat pack that declares validators or evals."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit.checks.evals import sampled
from promptkit.testing import FakeServer, RecordedRequest, Reply

from checks_support import COMPAT_PACKS, compat_pack, text_reply, write_pack
from support import Driver

KEY = "sk-test-0123456789abcdefghijklmnop"
EVAL_TEST = "promptkit/sdk/testdata/packs/eval-test.pack.json"
VERDICT = '{"score": 0.9, "reason": "on topic"}'


def mock(reply: str = "Hello! Thank you. Goodbye.") -> dict[str, Any]:
    return {"provider": "mock", "mock_responses": {"defaultResponse": reply}}


def session(driver: Driver, conv: Any, *messages: str) -> list[str]:
    """Send ``messages`` then close, in one event loop for the async driver (background eval
    tasks live in the loop that started them)."""
    if not driver.is_async:
        with conv:
            return [conv.send(m).text for m in messages]

    async def go() -> list[str]:
        async with conv:
            return [(await conv.send(m)).text for m in messages]

    return asyncio.run(go())


def results(conv: Any) -> list[tuple[str, bool, int | None]]:
    return sorted(((r.id, r.passed, r.turn_index) for r in conv.eval_results),
                  key=lambda item: (item[0], -1 if item[2] is None else item[2]))


def test_every_turn_and_session_evals(driver: Driver) -> None:
    conv = driver.open(compat_pack(EVAL_TEST), "assistant", **mock())
    session(driver, conv, "hi", "bye")  # session evals run at close, over the whole transcript
    assert results(conv) == [("greeting_check", True, 0), ("greeting_check", True, 1),
                             ("prompt_eval", True, 0), ("prompt_eval", True, 1),
                             ("session_check", True, None)]
    result = next(r for r in conv.eval_results if r.id == "session_check")
    assert result.trigger == "on_session_complete" and result.score == 1.0


def test_failing_eval_says_why(driver: Driver) -> None:
    conv = driver.open(compat_pack(EVAL_TEST), "assistant", **mock("Sure."))
    session(driver, conv, "hi")
    failed = {r.id: r for r in conv.eval_results}
    assert not failed["greeting_check"].passed
    assert "hello" in failed["greeting_check"].message


def test_prompt_level_eval_overrides_pack_level_by_id(tmp_path: Path) -> None:
    pack = write_pack(
        tmp_path,
        evals=[{"id": "same", "type": "contains", "trigger": "every_turn",
                "params": {"patterns": ["apple"]}},
               {"id": "other", "type": "contains_any", "trigger": "every_turn",
                "params": {"patterns": ["pear"]}}],
        prompt_evals=[{"id": "same", "type": "contains", "trigger": "every_turn",
                       "params": {"patterns": ["banana"]}}])
    with promptkit.open(pack, "chat", **mock("a banana")) as conv:
        conv.send("fruit?")
    assert results(conv) == [("other", False, 0), ("same", True, 0)]


def test_sampling_is_deterministic_by_conversation_and_turn(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, evals=[
        {"id": "half", "type": "contains", "trigger": "sample_turns", "sample_percentage": 50,
         "params": {"patterns": ["x"]}}])
    runs = []
    for _ in range(2):
        with promptkit.open(pack, "chat", conversation_id="fixed-id", **mock("x")) as conv:
            for turn in range(16):
                conv.send(f"turn {turn}")
        runs.append(sorted(r.turn_index for r in conv.eval_results))
    expected = [t for t in range(16) if sampled(50, "fixed-id", t)]
    assert runs[0] == runs[1] == expected
    assert 0 < len(expected) < 16  # a real sample, not all or nothing


def test_sample_sessions(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, evals=[
        {"id": "s", "type": "contains", "trigger": "sample_sessions", "sample_percentage": 50,
         "params": {"patterns": ["x"]}}])
    chosen = []
    for index in range(12):
        conversation_id = f"session-{index}"
        with promptkit.open(pack, "chat", conversation_id=conversation_id, **mock("x")) as conv:
            conv.send("hi")
        assert bool(conv.eval_results) == sampled(50, conversation_id)
        chosen.append(bool(conv.eval_results))
    assert any(chosen) and not all(chosen)


def test_evals_false_turns_them_off(driver: Driver) -> None:
    conv = driver.open(compat_pack(EVAL_TEST), "assistant", evals=False, **mock())
    session(driver, conv, "hi")
    assert conv.eval_results == []


def test_custom_eval_types_and_unknown_ones_warn() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def tone(text: str, params: dict[str, Any]) -> float:
        calls.append((text, params))
        return 0.8

    pack = compat_pack("promptkit/sdk/examples/runtime-config/agent.pack.json")
    with pytest.warns(promptkit.EvalConfigWarning, match="response_quality"):
        conv = promptkit.open(pack, "support", evals={"tone_check": tone},
                              variables={"company_name": "Acme"}, **mock("Certainly."))
    with conv:
        conv.send("hi")
    (result,) = conv.eval_results
    assert (result.id, result.passed, result.score) == ("tone-check", True, 0.8)
    assert result.metric == {"name": "tone_score", "type": "gauge"}
    assert calls == [("Certainly.", {"expected_tone": "professional"})]


async def _async_tone(text: str, params: dict[str, Any]) -> bool:
    await asyncio.sleep(0)
    return "sure" in text.lower()


def test_async_custom_eval_in_both_drivers(driver: Driver, tmp_path: Path) -> None:
    pack = write_pack(tmp_path, evals=[{"id": "t", "type": "tone", "trigger": "every_turn"}])
    conv = driver.open(pack, "chat", evals={"tone": _async_tone}, **mock("Sure thing"))
    session(driver, conv, "hi")
    assert results(conv) == [("t", True, 0)]


def test_a_raising_custom_eval_is_a_failed_result(driver: Driver, tmp_path: Path) -> None:
    def broken(text: str, params: dict[str, Any]) -> bool:
        raise RuntimeError("no model")

    pack = write_pack(tmp_path, evals=[{"id": "b", "type": "broken", "trigger": "every_turn"}])
    conv = driver.open(pack, "chat", evals={"broken": broken}, **mock("ok"))
    assert session(driver, conv, "hi") == ["ok"]
    (result,) = conv.eval_results
    assert not result.passed and "RuntimeError: no model" in result.message


# --- llm_judge ----------------------------------------------------------------------------------


def judge_pack(tmp_path: Path, **params: Any) -> Path:
    return write_pack(tmp_path, evals=[{
        "id": "helpful", "type": "llm_judge", "trigger": "every_turn",
        "params": {"criteria": "Is the answer helpful?", "passing_score": 0.7, **params},
        "metric": {"name": "helpfulness", "type": "gauge"}}])


@pytest.fixture
def judge_server() -> Iterator[tuple[FakeServer, threading.Event]]:
    """A judge that answers only once the test releases it."""
    release = threading.Event()

    def reply(request: RecordedRequest) -> Reply:
        release.wait(10)
        return text_reply(['{"score": 0.', '9, "reason": "fine"}'])

    with FakeServer(reply) as server:
        yield server, release


def test_a_slow_judge_never_delays_the_reply(driver: Driver, tmp_path: Path,
                                             judge_server: tuple[FakeServer, threading.Event]
                                             ) -> None:
    server, release = judge_server
    judge = {"provider": "openai", "model": "judge-model", "api_key": KEY,
             "base_url": server.url + "/v1"}

    async def scenario() -> list[promptkit.EvalResult]:
        conv = promptkit.open_async(judge_pack(tmp_path), "chat", judge=judge, **mock("Yes."))
        response = await conv.send("help?")
        assert response.text == "Yes." and conv.eval_results == []  # the judge still waits
        release.set()
        assert await conv.wait_evals(10)
        await conv.aclose()
        return conv.eval_results

    if driver.is_async:
        found = asyncio.run(scenario())
    else:
        conv = promptkit.open(judge_pack(tmp_path), "chat", judge=judge, **mock("Yes."))
        assert conv.send("help?").text == "Yes."
        assert conv.eval_results == []  # send() returned while the judge was still blocked
        release.set()
        assert conv.wait_evals(10)
        conv.close()
        found = conv.eval_results
    (result,) = found
    assert (result.type, result.passed, result.score, result.message) == (
        "llm_judge", True, 0.9, "fine")
    request = server.requests[0].json
    assert request["model"] == "judge-model"
    assert "Is the answer helpful?" in request["messages"][-1]["content"]
    assert "Yes." in request["messages"][-1]["content"]
    assert "JSON" in request["messages"][0]["content"]


def test_judge_defaults_to_the_conversations_own_provider(driver: Driver,
                                                         tmp_path: Path) -> None:
    with FakeServer([text_reply(["It is ", "helpful."]), text_reply([f"```json\n{VERDICT}\n```"])
                     ]) as server:
        conv = driver.open(judge_pack(tmp_path), "chat", provider="openai", model="gpt-4o-mini",
                           api_key=KEY, base_url=server.url + "/v1")
        session(driver, conv, "help?")
    (result,) = conv.eval_results
    assert result.passed and result.score == 0.9
    assert [r.json["model"] for r in server.requests] == ["gpt-4o-mini", "gpt-4o-mini"]


@pytest.mark.parametrize(("reply", "passed", "score", "fragment"), [
    ('Sure! {"score": 8, "reason": "good"} Hope that helps', True, 0.8, "good"),
    ('{"passed": false, "reason": "off topic"}', False, 0.0, "off topic"),
    ("I think it's great", False, None, "malformed judge verdict"),
    ('{"score": "high"}', False, None, "malformed judge verdict"),
    ('{"score": 0.5}', False, 0.5, ""),
])
def test_verdicts_are_read_tolerantly(tmp_path: Path, reply: str, passed: bool,
                                      score: float | None, fragment: str) -> None:
    with promptkit.open(judge_pack(tmp_path), "chat", judge=mock(reply), **mock("Yes.")) as conv:
        conv.send("help?")
    (result,) = conv.eval_results
    assert (result.passed, result.score) == (passed, score)
    assert fragment in result.message


def test_judge_call_failure_is_a_failed_eval(tmp_path: Path) -> None:
    with FakeServer([Reply.json(401, {"error": {"message": "bad key"}})]) as server:
        judge = {"provider": "openai", "model": "m", "api_key": KEY,
                 "base_url": server.url + "/v1"}
        with promptkit.open(judge_pack(tmp_path), "chat", judge=judge, **mock("Yes.")) as conv:
            assert conv.send("help?").text == "Yes."
    (result,) = conv.eval_results
    assert not result.passed and "judge call failed: AuthenticationError" in result.message


def test_max_concurrent_evals_bounds_async_judges(tmp_path: Path) -> None:
    active = {"now": 0, "most": 0}
    lock = threading.Lock()

    def reply(request: RecordedRequest) -> Reply:
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        threading.Event().wait(0.05)
        with lock:
            active["now"] -= 1
        return text_reply([VERDICT])

    pack = write_pack(tmp_path, evals=[
        {"id": f"j{i}", "type": "llm_judge", "trigger": "every_turn",
         "params": {"criteria": "ok?"}} for i in range(4)])
    with FakeServer(reply) as server:
        judge = {"provider": "openai", "model": "m", "api_key": KEY,
                 "base_url": server.url + "/v1"}

        async def go() -> int:
            async with promptkit.open_async(pack, "chat", judge=judge, max_concurrent_evals=2,
                                            **mock("Yes.")) as conv:
                await conv.send("a")
            return len(conv.eval_results)

        assert asyncio.run(go()) == 4
    assert active["most"] == 2


# --- offline, config errors, the corpus -------------------------------------------------------


def test_evaluate_a_recorded_transcript() -> None:
    transcript = [{"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "Hello there, thank you!"},
                  {"role": "user", "text": "bye"},
                  promptkit.Message(role="assistant", text="Goodbye.")]
    found = promptkit.evaluate(compat_pack(EVAL_TEST), "assistant", transcript)
    assert [(r.id, r.passed, r.turn_index) for r in found] == [
        ("greeting_check", True, 0), ("prompt_eval", True, 0),
        ("greeting_check", False, 1), ("prompt_eval", False, 1),
        ("session_check", True, None)]


def test_evaluate_with_tools_called(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, evals=[{"id": "t", "type": "tool_called", "trigger": "every_turn",
                                        "params": {"tools": ["lookup"]}}])
    call = promptkit.ToolCall(id="c1", name="lookup", arguments={})
    transcript = [promptkit.Message(role="user", text="find"),
                  promptkit.Message(role="assistant", tool_calls=(call,)),
                  promptkit.Message(role="tool", tool_result=promptkit.ToolResult(
                      call_id="c1", name="lookup", content="42")),
                  promptkit.Message(role="assistant", text="42"),
                  promptkit.Message(role="user", text="again"),
                  promptkit.Message(role="assistant", text="no")]
    assert [r.passed for r in promptkit.evaluate(pack, "chat", transcript)] == [True, False]


@pytest.mark.parametrize("percentage", [150, -1])
def test_sample_percentage_outside_range_fails_the_open(tmp_path: Path,
                                                        percentage: float) -> None:
    pack = write_pack(tmp_path, evals=[{"id": "s", "type": "contains", "trigger": "sample_turns",
                                        "sample_percentage": percentage,
                                        "params": {"patterns": ["x"]}}])
    loaded = promptkit.pack.loading.load_pack(pack, validate=False)  # our own check, not schema
    with pytest.raises(promptkit.PackValidationError) as caught:
        promptkit.open(loaded, "chat", provider="mock")
    (issue,) = caught.value.issues
    assert issue.path == "$.evals[0].sample_percentage" and "0 to 100" in issue.message
    with pytest.raises(promptkit.PackValidationError, match="sample_percentage"):
        promptkit.open(pack, "chat", provider="mock")  # the schema says so too


def test_bad_eval_regex_fails_the_open(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, prompt_evals=[{"id": "r", "type": "regex",
                                               "trigger": "every_turn",
                                               "params": {"pattern": "[oops"}}])
    with pytest.raises(promptkit.PackValidationError, match=r"prompts\.chat\.evals\[0\]\.params"):
        promptkit.open(pack, "chat", provider="mock")


def _declares_checks(path: Path) -> bool:
    text = path.read_text()
    return '"validators"' in text or '"evals"' in text


CORPUS = sorted(p for p in COMPAT_PACKS.rglob("*.json") if _declares_checks(p))


def test_every_corpus_pack_with_validators_or_evals_opens() -> None:
    import json

    compat_pack("")  # skips without the corpus
    assert len(CORPUS) == 13
    opened, failed = [], []
    for path in CORPUS:
        data = json.loads(path.read_text())
        prompt = next(iter(data["prompts"]))
        variables = {v["name"]: (v.get("validation", {}).get("enum") or ["x"])[0]
                     for v in data["prompts"][prompt].get("variables", [])}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", promptkit.EvalConfigWarning)
                warnings.simplefilter("ignore", promptkit.GuardrailConfigWarning)
                with promptkit.open(path, prompt, variables=variables, **mock("Hello")) as conv:
                    conv.send("hi")
            opened.append(path.name)
        except promptkit.PackValidationError as exc:
            failed.append((path.name, exc.issues[0].path))
    assert len(opened) == 12
    assert failed == [("guardrail-bad-type.pack.json", "$.prompts.chat.validators[0].type")]


def test_unknown_eval_types_of_the_corpus_warn_and_are_skipped() -> None:
    with pytest.warns(promptkit.EvalConfigWarning, match="audio_emotion"):
        conv = promptkit.open(compat_pack("promptkit/sdk/examples/onnx-audio-emotion/"
                                          "caller.pack.json"), "assistant", **mock())
    assert conv._evals == ()


def test_guardrail_failures_and_eval_results_are_events(driver: Driver, tmp_path: Path) -> None:
    """validation.failed comes from the turn engine's one recording point, eval.completed from
    the eval book: both reach conv.on handlers through both drivers."""
    pack = write_pack(tmp_path, validators=[
        {"type": "banned_words", "enabled": True,
         "params": {"words": ["mock"], "message": "[withheld]"}}],
        evals=[{"id": "polite", "type": "contains", "trigger": "every_turn",
                "params": {"patterns": ["hello"]}}])
    conv = driver.open(pack, "chat", **mock("Hello from the mock model."))
    seen: list[promptkit.Event] = []
    conv.on("validation.failed", seen.append)
    conv.on("eval.completed", seen.append)
    texts = session(driver, conv, "hi")
    assert texts == ["[withheld]"]
    failed = [e for e in seen if e.name == "validation.failed"]
    assert len(failed) == 1 and failed[0].data["type"] in ("banned_words", "content_excludes")
    assert failed[0].data["blocked"] is True and failed[0].turn_index == 0
    completed = [e for e in seen if e.name == "eval.completed"]
    assert [e.data["id"] for e in completed] == ["polite"]
