"""Sampling options set in code (issue 12, item 3): ``temperature=``, ``max_tokens=``, ``top_p=``,
``stop=``, ``seed=``, ``extra_headers=``, ``extra_body=`` at open() and per send()/stream(),
overriding the pack's ``parameters``, in every dialect's request body, through both drivers
over real HTTP (FakeServer records what arrived)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import promptkit
from promptkit.testing import FakeServer, Reply

from support import PACKS, WIRE, Driver

ASSISTANT = PACKS / "assistant.pack.json"
KEY = "sk-sampling-0123456789abcdefghijkl"

# provider → (provider name, api, model, base path, recorded text reply)
DIALECTS: dict[str, tuple[str, str | None, str, str, str]] = {
    "openai": ("openai", None, "gpt-4o-mini", "/v1", "openai-chat/text-with-usage.sse"),
    "responses": ("openai", "responses", "gpt-4.1", "/v1", "openai-responses/text-modern.sse"),
    "anthropic": ("anthropic", None, "claude-sonnet-4-5", "", "anthropic/text.sse"),
    "gemini": ("gemini", None, "gemini-2.5-flash", "/v1beta", "gemini/text.sse"),
    "ollama": ("ollama", None, "llama3.2", "", "ollama/chat-text.CONSTRUCTED.ndjson"),
}


def reply(fixture: str) -> Reply:
    path = WIRE / fixture
    if path.suffix == ".ndjson":
        return Reply(200, {"content-type": "application/x-ndjson"},
                     path.read_bytes().splitlines(keepends=True))
    return Reply.sse(path)


def open_dialect(driver: Driver, dialect: str, server: FakeServer, **options: Any) -> Any:
    name, api, model, base, _ = DIALECTS[dialect]
    options.setdefault("model", model)
    return driver.open(ASSISTANT, "assistant", provider=name, api=api, api_key=KEY,
                       base_url=server.url + base, variables={"user_name": "Ada"}, **options)


OPEN = {"temperature": 0.3, "max_tokens": 64, "top_p": 0.5, "stop": ["END"], "seed": 7,
        "extra_headers": {"X-Trace": "open", "X-Team": "a"}, "extra_body": {"user": "ada"}}
CALL = {"temperature": 0.7, "stop": "STOP", "extra_headers": {"X-Trace": "call"},
        "extra_body": {"metadata": {"k": "v"}}}

# dialect → check of the body sent for OPEN overridden by CALL
EXPECTED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "openai": lambda b: {k: b.get(k) for k in ("temperature", "max_tokens", "top_p", "stop",
                                               "seed", "user", "metadata", "stream")},
    "responses": lambda b: {k: b.get(k) for k in ("temperature", "max_output_tokens", "top_p",
                                                  "stop", "seed", "user", "metadata",
                                                  "stream")},
    "anthropic": lambda b: {k: b.get(k) for k in ("temperature", "max_tokens", "top_p",
                                                  "stop_sequences", "seed", "user",
                                                  "metadata", "stream")},
    "gemini": lambda b: {**b["generationConfig"], "user": b.get("user"),
                         "metadata": b.get("metadata")},
    "ollama": lambda b: {**b["options"], "user": b.get("user"), "metadata": b.get("metadata"),
                         "stream": b.get("stream")},
}
WANTED: dict[str, dict[str, Any]] = {
    "openai": {"temperature": 0.7, "max_tokens": 64, "top_p": 0.5, "stop": ["STOP"], "seed": 7,
               "user": "ada", "metadata": {"k": "v"}, "stream": True},
    "responses": {"temperature": 0.7, "max_output_tokens": 64, "top_p": 0.5, "stop": None,
                  "seed": None, "user": "ada", "metadata": {"k": "v"}, "stream": True},
    "anthropic": {"temperature": 0.7, "max_tokens": 64, "top_p": 0.5,
                  "stop_sequences": ["STOP"], "seed": None, "user": "ada",
                  "metadata": {"k": "v"}, "stream": True},
    "gemini": {"temperature": 0.7, "maxOutputTokens": 64, "topP": 0.5, "stopSequences": ["STOP"],
               "seed": 7, "presencePenalty": 0.2, "frequencyPenalty": 0.1, "user": "ada",
               "metadata": {"k": "v"}},
    "ollama": {"temperature": 0.7, "num_predict": 64, "top_p": 0.5, "stop": ["STOP"], "seed": 7,
               "presence_penalty": 0.2, "frequency_penalty": 0.1, "user": "ada",
               "metadata": {"k": "v"}, "stream": True},
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_call_options_override_open_options_override_the_pack(driver: Driver,
                                                              dialect: str) -> None:
    fixture = DIALECTS[dialect][4]
    with FakeServer([reply(fixture), reply(fixture), reply(fixture)]) as server:
        conv = open_dialect(driver, dialect, server, **OPEN)
        driver.send(conv, "hi", **CALL)
        driver.stream(conv, "again")  # open()'s options, no per-call ones
        driver.send(conv, "third")
        first, second, third = server.requests
    assert EXPECTED[dialect](first.json) == WANTED[dialect]
    assert first.headers["x-trace"] == "call" and first.headers["x-team"] == "a"
    assert second.headers["x-trace"] == "open"
    assert EXPECTED[dialect](second.json)["metadata"] is None  # per-call body keys do not stick
    assert EXPECTED[dialect](second.json)["user"] == "ada"
    assert EXPECTED[dialect](second.json) == EXPECTED[dialect](third.json)
    assert KEY in (first.headers.get("authorization", "") + first.headers.get("x-api-key", "")
                   + first.headers.get("x-goog-api-key", ""))  # auth untouched


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_without_options_the_pack_parameters_are_sent(driver: Driver, dialect: str) -> None:
    with FakeServer([reply(DIALECTS[dialect][4])]) as server:
        conv = open_dialect(driver, dialect, server)
        driver.send(conv, "hi")
        body = server.requests[0].json
    sent = EXPECTED[dialect](body)
    temperature = sent.get("temperature")
    assert temperature == 0.2  # the pack's
    assert "x-trace" not in server.requests[0].headers


def test_reasoning_models_get_max_completion_tokens(driver: Driver) -> None:
    with FakeServer([reply("openai-chat/text-with-usage.sse")] * 2) as server:
        conv = open_dialect(driver, "openai", server, model="o3-mini", max_tokens=99)
        driver.send(conv, "hi")
        driver.send(conv, "hi", max_tokens=5)
        first, second = (r.json for r in server.requests)
    assert first["max_completion_tokens"] == 99 and "max_tokens" not in first
    assert second["max_completion_tokens"] == 5


BAD_VALUES = [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10.0}, "max_tokens"),
    ({"seed": 1.5}, "seed"),
    ({"stop": [""]}, "stop"),
    ({"stop": 3}, "stop"),
    ({"extra_headers": {"Authorization": "Bearer other"}}, "Authorization"),
    ({"extra_headers": {"x-api-key": "k"}}, "x-api-key"),
    ({"extra_headers": {"X-Ok": "a\r\nInjected: 1"}}, "line breaks"),
    ({"extra_headers": {"bad name": "x"}}, "header name"),
    ({"extra_headers": ["X-A"]}, "mapping"),
    ({"extra_body": {"stream": False}}, "stream"),
    ({"extra_body": {"x": object()}}, "JSON"),
]


@pytest.mark.parametrize(("options", "named"), BAD_VALUES)
def test_bad_values_raise_at_open_and_per_call_before_any_request(
        driver: Driver, options: dict[str, Any], named: str) -> None:
    with FakeServer([reply(DIALECTS["openai"][4])]) as server:
        with pytest.raises(promptkit.InvalidParameterError, match=named):
            open_dialect(driver, "openai", server, **options)
        conv = open_dialect(driver, "openai", server)
        with pytest.raises(promptkit.InvalidParameterError, match=named) as caught:
            conv.stream("hi", **options)
        assert not server.requests
        assert conv.messages == []
        assert driver.send(conv, "hi").text  # the conversation is free for the next turn
    assert isinstance(caught.value, promptkit.PromptKitError)
    assert isinstance(caught.value, ValueError)
    assert "Bearer other" not in str(caught.value)  # a header value is never echoed


def test_an_unknown_per_call_option_is_a_type_error(driver: Driver) -> None:
    conv = driver.open(ASSISTANT, "assistant", provider="mock", variables={"user_name": "Ada"})
    with pytest.raises(TypeError, match="temprature"):
        conv.stream("hi", temprature=0.1)


def test_mock_provider_requests_carry_the_options_too(driver: Driver) -> None:
    conv = driver.open(ASSISTANT, "assistant", provider="mock", variables={"user_name": "Ada"},
                       seed=3, mock_responses={"defaultResponse": "ok"})
    driver.send(conv, "hi", top_p=0.25)
    import json

    body = json.loads(conv._binding.options["transport"].requests[0].body)
    assert body["seed"] == 3 and body["top_p"] == 0.25 and body["temperature"] == 0.2


def test_fork_keeps_the_open_options() -> None:
    with FakeServer([reply(DIALECTS["openai"][4])]) as server:
        conv = open_dialect(Driver("sync"), "openai", server, seed=11,
                            extra_headers={"X-Team": "b"})
        conv.fork().send("hi")
        request = server.requests[0]
    assert request.json["seed"] == 11 and request.headers["x-team"] == "b"


def test_pack_open_takes_the_options() -> None:
    pack = promptkit.load_pack(ASSISTANT)
    with FakeServer([reply(DIALECTS["anthropic"][4])]) as server:
        conv = pack.open("assistant", provider="anthropic", model="claude-sonnet-4-5",
                         api_key=KEY, base_url=server.url, variables={"user_name": "Ada"},
                         stop=["\n\n"], max_tokens=10)
        conv.send("hi")
        body = server.requests[0].json
    assert body["stop_sequences"] == ["\n\n"] and body["max_tokens"] == 10
