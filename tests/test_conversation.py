"""The turn engine through both drivers, against the in-process mock provider."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

import promptkit
from promptkit import ChunkType
from promptkit.testing import MockResponses

from support import PACKS, Driver, kinds, texts

ASSISTANT = PACKS / "assistant.pack.json"
TOOLS = PACKS / "tools.pack.json"

WEATHER_SCRIPT = {
    "turns": {
        1: {"type": "tool_calls",
            "tool_calls": [{"name": "get_weather",
                            "arguments": {"city": "Paris", "country": "FR"}}]},
        2: "It is sunny in Paris.",
    }
}


def open_mock(driver: Driver, pack: Any = ASSISTANT, prompt: str = "assistant",
              script: Any = None, **options: Any) -> Any:
    options.setdefault("variables", {"user_name": "Ada"})
    return driver.open(pack, prompt, provider="mock", mock_responses=script, **options)


def sent_bodies(conv: Any) -> list[dict[str, Any]]:
    transport = conv._binding.options["transport"]
    return [json.loads(r.body) for r in transport.requests]


def test_send_returns_the_response(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "Hello Ada, nice to meet you."})
    response = driver.send(conv, "Hi!")
    assert response.text == "Hello Ada, nice to meet you."
    assert response.finish_reason == "stop"
    assert response.provider == "mock"
    assert response.model == "mock-model"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.cost == 0.0
    assert response.duration >= 0
    assert response.time_to_first_token is not None
    assert response.message.role == "assistant"
    assert [m.role for m in conv.messages] == ["user", "assistant"]


def test_stream_yields_text_then_exactly_one_done(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "one two three"})
    chunks = driver.stream(conv, "count")
    assert kinds(chunks) == ["text", "text", "text", "done"]
    assert [c.text for c in chunks[:3]] == ["one ", "two ", "three"]
    done = chunks[-1]
    assert done.response is not None and done.response.text == "one two three"
    assert all(c.error is None for c in chunks)


def test_history_grows_and_is_sent_each_turn(driver: Driver) -> None:
    conv = open_mock(driver, script={"turns": {1: "first", 2: "second"}})
    assert driver.send(conv, "a").text == "first"
    assert driver.send(conv, "b").text == "second"
    bodies = sent_bodies(conv)
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert [m.text for m in conv.messages] == ["a", "first", "b", "second"]


def test_system_prompt_is_rendered_with_fragments_and_defaults(driver: Driver) -> None:
    conv = open_mock(driver)
    driver.send(conv, "hi")
    system = sent_bodies(conv)[0]["messages"][0]
    assert system == {"role": "system",
                      "content": "You help Ada. Answer in a friendly tone. Language: en."}


def test_variables_are_re_resolved_every_turn(driver: Driver) -> None:
    conv = open_mock(driver)
    driver.send(conv, "hi")
    conv.set_var("style", "formal")
    conv.set_vars({"language": "fr"})
    driver.send(conv, "again")
    systems = [b["messages"][0]["content"] for b in sent_bodies(conv)]
    assert "friendly" in systems[0] and "formal" in systems[1]
    assert systems[1].endswith("Language: fr.")
    assert conv.get_var("style") == "formal"


def test_pack_parameters_reach_the_request(driver: Driver) -> None:
    conv = open_mock(driver)
    driver.send(conv, "hi")
    body = sent_bodies(conv)[0]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 256 and body["top_p"] == 0.9
    assert body["frequency_penalty"] == 0.1 and body["presence_penalty"] == 0.2
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_missing_variable_fails_before_any_request(driver: Driver) -> None:
    conv = open_mock(driver, variables={})
    with pytest.raises(promptkit.MissingVariableError) as info:
        conv.stream("hi")
    assert info.value.names == ("user_name",)
    assert sent_bodies(conv) == []
    conv.set_var("user_name", "Ada")  # the conversation stays usable
    assert driver.send(conv, "hi").text


def test_invalid_variable_is_rejected_where_it_is_set(driver: Driver) -> None:
    conv = open_mock(driver)
    with pytest.raises(promptkit.InvalidVariableError):
        conv.set_var("style", "sarcastic")
    with pytest.raises(promptkit.InvalidVariableError):
        open_mock(driver, variables={"user_name": "Ada", "language": "english"})
    assert conv.get_var("style") == "friendly"


def test_tool_loop_streams_calls_results_then_answer(driver: Driver) -> None:
    conv = open_mock(driver, script=WEATHER_SCRIPT)
    seen: list[dict[str, Any]] = []

    def get_weather(args: dict[str, Any]) -> dict[str, Any]:
        seen.append(args)
        return {"temp_c": 21, "conditions": "sunny"}

    conv.on_tool("get_weather", get_weather)
    chunks = driver.stream(conv, "Weather in Paris?")
    assert kinds(chunks) == ["tool_call", "tool_result", "text", "text", "text", "text", "text",
                             "done"]
    call = chunks[0].tool_call
    assert call is not None and call.name == "get_weather"
    assert call.arguments == {"city": "Paris", "country": "FR"}
    result = chunks[1].tool_result
    assert result is not None and not result.is_error
    assert json.loads(result.content) == {"temp_c": 21, "conditions": "sunny"}
    assert seen == [{"city": "Paris", "country": "FR"}]
    response = chunks[-1].response
    assert response is not None
    assert response.text == "It is sunny in Paris."
    assert [c.name for c in response.tool_calls] == ["get_weather"]
    follow_up = sent_bodies(conv)[1]["messages"]
    assert follow_up[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert follow_up[-1] == {"role": "tool", "tool_call_id": call.id,
                             "content": '{"temp_c": 21, "conditions": "sunny"}'}
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant"]


def test_only_registered_prompt_tools_are_offered(driver: Driver) -> None:
    conv = open_mock(driver)
    driver.send(conv, "hi")
    assert "tools" not in sent_bodies(conv)[0]
    conv.on_tool("get_weather", lambda args: "ok")
    conv.on_tool("get_time", lambda args: "noon")  # blocklisted by the prompt's tool_policy
    driver.send(conv, "again")
    offered = [t["function"]["name"] for t in sent_bodies(conv)[1]["tools"]]
    assert offered == ["get_weather"]


def test_usage_is_summed_over_rounds_not_history(driver: Driver) -> None:
    conv = open_mock(driver, script={**WEATHER_SCRIPT, "defaultResponse": "ok"})
    conv.on_tool("get_weather", lambda args: "sunny")
    first = driver.send(conv, "Weather?")
    second = driver.send(conv, "Thanks")
    assert first.usage.output_tokens > 0
    # The second turn is one round: its usage is that round's, not the history's total.
    bodies = sent_bodies(conv)
    assert len(bodies) == 3
    assert second.usage.input_tokens == max(1, sum(
        len(str(m.get("content") or "")) for m in bodies[2]["messages"]) // 4)


@pytest.mark.parametrize("kind", ["decorator", "named", "mapping", "async", "context"])
def test_handler_registration_forms(driver: Driver, kind: str) -> None:
    conv = open_mock(driver, script=WEATHER_SCRIPT)
    if kind == "decorator":
        @conv.tool
        def get_weather(args: dict[str, Any]) -> str:
            return f"sunny in {args['city']}"
    elif kind == "named":
        @conv.tool("get_weather")
        def weather(args: dict[str, Any]) -> str:
            return f"sunny in {args['city']}"
    elif kind == "mapping":
        conv.on_tools({"get_weather": lambda args: f"sunny in {args['city']}"})
    elif kind == "async":
        async def weather_async(args: dict[str, Any]) -> str:
            await asyncio.sleep(0)
            return f"sunny in {args['city']}"
        conv.on_tool("get_weather", weather_async)
    else:
        def weather_ctx(args: dict[str, Any], ctx: promptkit.ToolContext) -> str:
            assert ctx.tool_name == "get_weather" and ctx.conversation_id == conv.id
            return f"sunny in {args['city']} ({ctx.call_id})"
        conv.on_tool("get_weather", weather_ctx)
    chunks = driver.stream(conv, "Weather?")
    result = next(c.tool_result for c in chunks if c.type is ChunkType.TOOL_RESULT)
    assert result is not None and result.content.startswith("sunny in Paris")
    assert not result.is_error


def test_handler_error_becomes_an_error_result_the_model_sees(driver: Driver) -> None:
    conv = open_mock(driver, script=WEATHER_SCRIPT)

    def broken(args: dict[str, Any]) -> str:
        raise RuntimeError("weather service down")

    conv.on_tool("get_weather", broken)
    response = driver.send(conv, "Weather?")
    assert response.text == "It is sunny in Paris."
    result = response.tool_results[0]
    assert result.is_error and "weather service down" in result.content
    assert sent_bodies(conv)[1]["messages"][-1]["content"] == result.content


def test_unregistered_tool_call_becomes_an_error_result(driver: Driver) -> None:
    script = {"turns": {1: {"tool_calls": [{"name": "launch_rockets", "arguments": {}}]},
                        2: "Sorry, I cannot do that."}}
    conv = open_mock(driver, script=script)
    response = driver.send(conv, "Launch!")
    assert response.text == "Sorry, I cannot do that."
    assert response.tool_results[0].is_error
    assert "launch_rockets" in response.tool_results[0].content


def test_unserialisable_result_becomes_an_error_result(driver: Driver) -> None:
    conv = open_mock(driver, script=WEATHER_SCRIPT)
    conv.on_tool("get_weather", lambda args: object())
    response = driver.send(conv, "Weather?")
    assert response.tool_results[0].is_error
    assert "not JSON" in response.tool_results[0].content


def test_runaway_tool_loop_stops_with_tool_loop_limit(driver: Driver) -> None:
    loop = {"type": "tool_calls", "tool_calls": [{"name": "get_weather",
                                                   "arguments": {"city": "Paris"}}]}
    conv = open_mock(driver, script={"turns": dict.fromkeys(range(1, 10), loop)})
    conv.on_tool("get_weather", lambda args: "sunny")
    chunks = driver.stream(conv, "loop forever")
    assert chunks[-1].type is ChunkType.ERROR
    assert isinstance(chunks[-1].error, promptkit.ToolLoopLimitError)
    assert "max_rounds" in str(chunks[-1].error)
    assert kinds(chunks).count("tool_call") == 2  # the prompt's tool_policy.max_rounds
    assert conv.messages == []  # a failed turn commits nothing
    with pytest.raises(promptkit.ToolLoopLimitError):
        driver.send(conv, "again")


def test_second_turn_while_streaming_is_refused(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "a b c"})
    first = conv.stream("one")
    driver.run(first.__aenter__ if driver.is_async else first.__enter__)  # the turn starts
    with pytest.raises(promptkit.ConversationBusyError):
        conv.stream("two")
    driver.run(first.close)
    assert driver.send(conv, "three").text == "a b c"


def test_sync_turns_from_two_threads_never_interleave() -> None:
    conv = promptkit.open(ASSISTANT, "assistant", provider="mock",
                          variables={"user_name": "Ada"},
                          mock_responses={"defaultResponse": "x", "delay": 0.01})
    outcomes: list[str] = []

    def worker() -> None:
        try:
            conv.send("hello")
            outcomes.append("ok")
        except promptkit.ConversationBusyError:
            outcomes.append("busy")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") >= 1
    assert len(conv.messages) == 2 * outcomes.count("ok")


def test_breaking_out_of_a_stream_commits_nothing_and_frees_the_conversation(
        driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "one two three four"})
    if driver.is_async:
        async def take_one() -> None:
            async with conv.stream("hi") as stream:
                async for _ in stream:
                    break
        asyncio.run(take_one())
    else:
        with conv.stream("hi") as stream:
            for _ in stream:
                break
    assert conv.messages == []
    assert driver.send(conv, "again").text == "one two three four"


def test_fork_copies_history_and_variables_independently(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "ok"})
    driver.send(conv, "first")
    child = driver.fork(conv)
    assert child.id != conv.id
    assert [m.text for m in child.messages] == ["first", "ok"]
    child.set_var("style", "formal")
    driver.send(child, "child only")
    assert conv.get_var("style") == "friendly"
    assert len(conv.messages) == 2 and len(child.messages) == 4
    second = driver.fork(conv)
    assert second.id not in (conv.id, child.id)


def test_clear_forgets_history(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "ok"})
    driver.send(conv, "first")
    driver.clear(conv)
    assert conv.messages == []
    driver.send(conv, "again")
    assert len(sent_bodies(conv)[-1]["messages"]) == 2  # system + the new user message


def test_closed_conversation_refuses_turns(driver: Driver) -> None:
    conv = open_mock(driver)
    driver.run(conv.aclose if driver.is_async else conv.close)
    with pytest.raises(promptkit.ConversationClosedError):
        conv.stream("hi")


def test_context_managers_close(driver: Driver) -> None:
    if driver.is_async:
        async def go() -> Any:
            async with open_mock(driver) as conv:
                await conv.send("hi")
            return conv
        conv = asyncio.run(go())
    else:
        with open_mock(driver) as conv:
            conv.send("hi")
    assert conv.closed


def test_turn_timeout_ends_a_slow_turn(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "a b c d e f g h", "delay": 0.2})
    chunks = driver.stream(conv, "slow", timeout=0.5)
    assert chunks[-1].type is ChunkType.ERROR
    error = chunks[-1].error
    assert isinstance(error, promptkit.TurnTimeout) and isinstance(error, TimeoutError)
    assert 0 < len(texts(chunks)) < len("a b c d e f g h")
    assert conv.messages == []


def test_send_raises_the_error_of_a_failed_turn(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "a b c d e f", "delay": 0.2})
    with pytest.raises(promptkit.TurnTimeout):
        driver.send(conv, "slow", timeout=0.3)


def test_message_objects_are_accepted(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "ok"})
    response = driver.send(conv, promptkit.Message(role="user", text="hello"))
    assert response.text == "ok"
    with pytest.raises(ValueError):
        conv.stream(promptkit.Message(role="assistant", text="nope"))


def test_mock_scenarios_from_yaml(tmp_path: Any, driver: Driver) -> None:
    script = tmp_path / "mock.yaml"
    script.write_text(
        "defaultResponse: fallback\n"
        "scenarios:\n"
        "  greet:\n"
        "    turns:\n"
        "      1: Hello there\n"
        "      2:\n"
        "        content: Second reply\n")
    conv = open_mock(driver, script=MockResponses.load(script, delay=0.0))
    assert driver.send(conv, "a").text == "Hello there"
    assert driver.send(conv, "b").text == "Second reply"
    assert driver.send(conv, "c").text == "fallback"


def test_a_loaded_pack_opens_many_conversations(driver: Driver) -> None:
    pack = promptkit.load_pack(ASSISTANT)
    assert pack.prompt_names == ["assistant", "plain"]
    assert sorted(pack.tools) == ["get_time", "get_weather"]
    options = {"provider": "mock", "mock_responses": {"defaultResponse": "ok"}}
    first = (pack.open_async if driver.is_async else pack.open)(
        "assistant", variables={"user_name": "Ada"}, **options)
    second = (pack.open_async if driver.is_async else pack.open)("plain", **options)
    assert first.id != second.id
    assert driver.send(first, "hi").text == driver.send(second, "hi").text == "ok"
    with pytest.raises(promptkit.PromptNotFoundError) as info:
        pack.open("nope")
    assert info.value.available == ("assistant", "plain")
    assert "assistant, plain" in str(info.value)


def test_break_without_with_frees_the_conversation_at_once(driver: Driver) -> None:
    conv = open_mock(driver, script={"defaultResponse": "one two three four"})
    if driver.is_async:
        async def go() -> str:
            async for _ in conv.stream("hi"):
                break
            conv.stream("never iterated")  # created and dropped: frees the conversation too
            return (await conv.send("again")).text
        assert asyncio.run(go()) == "one two three four"
    else:
        for _ in conv.stream("hi"):
            break
        conv.stream("never iterated")
        assert conv.send("again").text == "one two three four"
    assert [m.text for m in conv.messages] == ["again", "one two three four"]


def test_forced_tool_choice_applies_to_the_first_round_only(driver: Driver, tmp_path: Any
                                                             ) -> None:
    data = json.loads(ASSISTANT.read_text())
    data["prompts"]["assistant"]["tool_policy"] = {"tool_choice": "required"}
    path = tmp_path / "required.pack.json"
    path.write_text(json.dumps(data))
    conv = open_mock(driver, pack=path, script=WEATHER_SCRIPT)
    conv.on_tool("get_weather", lambda args: "sunny")
    assert driver.send(conv, "Weather?").text == "It is sunny in Paris."
    first, second = sent_bodies(conv)
    assert first["tool_choice"] == "required"
    assert "tool_choice" not in second  # the model may answer after the tool ran
