"""``tool_policy.tool_choice`` naming a tool: accepted by pack validation (an extension to the
schema, said by ``validate``), mapped by every dialect, forced on a turn's first call only."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit import ChunkType
from promptkit.cli.main import main
from promptkit.pack.loading import load_pack_from_dict, load_pack_from_string
from promptkit.testing import FakeServer, Reply

from support import PACKS, WIRE, Driver

ASSISTANT = json.loads((PACKS / "assistant.pack.json").read_text())
KEY = "sk-choice-0123456789abcdefghijklmnop"
CHOICE_PATH = "$.prompts.assistant.tool_policy.tool_choice"


def pack_data(choice: Any, **policy: Any) -> dict[str, Any]:
    data = copy.deepcopy(ASSISTANT)
    data["prompts"]["assistant"]["tool_policy"] = {"tool_choice": choice, **policy}
    return data


# --- pack validation -------------------------------------------------------------------------


def test_a_tool_name_is_accepted_with_a_warning_that_it_extends_the_schema() -> None:
    pack = load_pack_from_dict(pack_data("get_weather"))
    policy = pack.prompt("assistant").tool_policy
    assert policy.tool_choice == "get_weather"
    assert policy.forced_tool == "get_weather"
    [warning] = [w for w in pack.warnings if w.path == CHOICE_PATH]
    assert "extension to the PromptPack schema" in warning.message
    assert "'get_weather'" in warning.message


@pytest.mark.parametrize("mode", ["auto", "required", "none"])
def test_modes_are_not_forced_tools_and_warn_nothing(mode: str) -> None:
    pack = load_pack_from_dict(pack_data(mode))
    assert pack.prompt("assistant").tool_policy.forced_tool is None
    assert not [w for w in pack.warnings if w.path == CHOICE_PATH]


def test_a_name_that_is_not_one_of_the_prompts_tools_is_an_error_with_its_position() -> None:
    text = json.dumps(pack_data("get_stock_price"), indent=2)
    with pytest.raises(promptkit.PackValidationError) as caught:
        load_pack_from_string(text, source="forced.pack.json")
    [issue] = caught.value.issues
    assert issue.path == CHOICE_PATH
    assert "'get_stock_price'" in issue.message and "get_weather, get_time" in issue.message
    line = text.splitlines()[issue.line - 1]  # type: ignore[operator]
    assert '"tool_choice": "get_stock_price"' in line
    assert "forced.pack.json" in str(caught.value)


def test_a_tool_of_the_pack_that_this_prompt_does_not_list_is_an_error() -> None:
    data = pack_data("get_weather")
    data["prompts"]["assistant"]["tools"] = ["get_time"]
    with pytest.raises(promptkit.PackValidationError) as caught:
        load_pack_from_dict(data)
    assert [i.path for i in caught.value.issues] == [CHOICE_PATH]
    assert "its tools are: get_time" in caught.value.issues[0].message


def test_forcing_a_blocklisted_tool_is_an_error() -> None:
    with pytest.raises(promptkit.PackValidationError) as caught:
        load_pack_from_dict(pack_data("get_time", blocklist=["get_time"]))
    [issue] = caught.value.issues
    assert issue.path == CHOICE_PATH and "blocklist" in issue.message


@pytest.mark.parametrize("value", ["", 3, None, ["get_weather"]])
def test_values_that_are_no_name_stay_schema_errors(value: Any) -> None:
    with pytest.raises(promptkit.PackValidationError) as caught:
        load_pack_from_dict(pack_data(value))
    assert {i.path for i in caught.value.issues} == {CHOICE_PATH}


def test_validate_says_it_is_an_extension_and_exits_0(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    path = tmp_path / "forced.pack.json"
    path.write_text(json.dumps(pack_data("get_weather"), indent=2))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if "tool_choice" in x]
    assert line.startswith(f"{path}:") and ": warning: " in line
    assert "extension to the PromptPack schema" in line
    bad = tmp_path / "bad.pack.json"
    bad.write_text(json.dumps(pack_data("nope"), indent=2))
    assert main(["validate", str(bad)]) == 1
    assert "error: " + CHOICE_PATH in capsys.readouterr().out


# --- every dialect, through both drivers -----------------------------------------------------

# provider → (open options, tool-call stream, follow-up stream, the wire's forced tool_choice)
DIALECTS: dict[str, tuple[dict[str, Any], str, str, Any]] = {
    "openai": (
        {"provider": "openai", "model": "gpt-4o-mini", "base": "/v1"},
        "openai-chat/single-tool-call-2024.sse", "openai-chat/text-after-tool-result.sse",
        lambda body: body["tool_choice"] == {"type": "function",
                                             "function": {"name": "get_weather"}}),
    "responses": (
        {"provider": "openai", "api": "responses", "model": "gpt-4.1", "base": "/v1"},
        "openai-responses/function-call-2025-03.sse",
        "openai-responses/text-after-tool-result-2025-03.sse",
        lambda body: body["tool_choice"] == {"type": "function", "name": "get_weather"}),
    "anthropic": (
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "base": ""},
        "anthropic/tool-use-fragmented.sse", "anthropic/text-after-tool-result.sse",
        lambda body: body["tool_choice"] == {"type": "tool", "name": "get_weather"}),
    "gemini": (
        {"provider": "gemini", "model": "gemini-2.5-flash", "base": "/v1beta"},
        "gemini/function-call.sse", "gemini/text-after-tool-result.sse",
        lambda body: body["toolConfig"] == {"functionCallingConfig": {
            "mode": "ANY", "allowedFunctionNames": ["get_weather"]}}),
    "ollama": (
        {"provider": "ollama", "model": "llama3.2", "base": ""},
        "ollama/chat-tool-call.CONSTRUCTED.ndjson", "ollama/chat-text.CONSTRUCTED.ndjson",
        # Ollama cannot force a call: the tools are offered and nothing else is sent
        lambda body: "tool_choice" not in body and "get_weather" in json.dumps(body["tools"])),
}
UNFORCED_KEYS = ("tool_choice", "toolConfig")


def reply(fixture: str) -> Reply:
    path = WIRE / fixture
    if path.suffix == ".ndjson":
        lines = path.read_bytes().splitlines(keepends=True)
        return Reply(200, {"content-type": "application/x-ndjson"}, lines)
    return Reply.sse(path)


def open_forced(driver: Driver, server: FakeServer, dialect: str, data: dict[str, Any]) -> Any:
    options = dict(DIALECTS[dialect][0])
    base = options.pop("base")
    return driver.open(load_pack_from_dict(data), "assistant", api_key=KEY,
                       base_url=server.url + base, variables={"user_name": "Ada"}, **options)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_a_named_tool_is_forced_on_the_first_call_only(driver: Driver, dialect: str) -> None:
    _, first, second, forced = DIALECTS[dialect]
    with FakeServer([reply(first), reply(second)]) as server:
        conv = open_forced(driver, server, dialect, pack_data("get_weather"))
        for name in ("get_weather", "get_capital", "get_current_weather"):
            conv.on_tool(name, lambda args: "sunny")
        chunks = driver.stream(conv, "weather?")
        bodies = [request.json for request in server.requests]
    assert chunks[-1].type is ChunkType.DONE, chunks[-1].error
    assert len(bodies) == 2  # the loop ended: the follow-up was not forced again
    assert forced(bodies[0])
    assert not any(key in bodies[1] for key in UNFORCED_KEYS)


def test_the_wire_gets_the_tool_name_not_its_key(driver: Driver) -> None:
    data = pack_data("weather")
    data["tools"]["weather"] = data["tools"].pop("get_weather")  # key "weather", name get_weather
    data["prompts"]["assistant"]["tools"] = ["weather", "get_time"]
    _, first, second, forced = DIALECTS["openai"]
    with FakeServer([reply(first), reply(second)]) as server:
        conv = open_forced(driver, server, "openai", data)
        conv.on_tool("weather", lambda args: "sunny")
        assert driver.send(conv, "weather?").finish_reason == "stop"
        assert forced(server.requests[0].json)


def test_a_forced_tool_without_a_handler_fails_before_any_request(driver: Driver) -> None:
    data = pack_data("get_weather")
    data["prompts"]["assistant"]["tool_policy"]["blocklist"] = []
    with FakeServer([reply("openai-chat/text-after-tool-result.sse")]) as server:
        conv = open_forced(driver, server, "openai", data)
        conv.on_tool("get_time", lambda args: "noon")  # another tool is offered, not the forced
        with pytest.raises(promptkit.ToolNotRegisteredError, match=r"on_tool\('get_weather'"):
            driver.send(conv, "weather?")
        assert server.requests == []
        assert conv.messages == []
        conv.on_tool("get_weather", lambda args: "sunny")  # the conversation is still usable
        driver.send(conv, "weather?")
        assert server.requests[0].json["tool_choice"]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("choice", ["get_weather", "required"])
def test_a_resumed_turn_is_not_forced_again(driver: Driver, choice: str) -> None:
    script = {"turns": {1: {"tool_calls": [{"name": "get_weather",
                                            "arguments": {"city": "Oslo"}}]},
                        2: "Oslo is cold."}}
    conv = driver.open(load_pack_from_dict(pack_data(choice)), "assistant", provider="mock",
                       mock_responses=script, variables={"user_name": "Ada"})
    conv.on_tool("get_weather", lambda args: "cold", requires_approval=True)
    held = driver.send(conv, "Oslo?")
    driver.run(lambda: conv.approve(held.pending_tools[0].call_id))
    assert driver.run(conv.resume).text == "Oslo is cold."
    first, after_resume = (json.loads(r.body) for r in conv._binding.options["transport"].requests)
    wire = choice if choice == "required" else {"type": "function",
                                                "function": {"name": "get_weather"}}
    assert first["tool_choice"] == wire
    assert "tool_choice" not in after_resume
