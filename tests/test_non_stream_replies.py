"""A 200 answer that is not a stream (``application/json`` when ``stream: true`` was asked, as
LiteLLM's ``/v1/messages`` does), and error bodies sent in stream framing, in every dialect and
through both drivers over real HTTP (FakeServer).

- a complete non-streamed reply is delivered as chunks (text, tool calls, usage) as if streamed;
- an ``{"error": ...}`` body maps to its typed error with the error's own message;
- anything else is a StreamProtocolError quoting the start of the body;
- a non-2xx reply whose error is in SSE framing (``data: {"error": ...}``) gets the error's own
  message, not the raw body.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promptkit
from promptkit import ChunkType, StreamChunk
from promptkit.engine.dialect import Endpoint
from promptkit.providers.anthropic import AnthropicDialect
from promptkit.providers.gemini import GeminiDialect
from promptkit.providers.ollama import OllamaDialect
from promptkit.providers.openai_chat import OpenAIChatDialect
from promptkit.providers.openai_responses import OpenAIResponsesDialect
from promptkit.testing import FakeServer, Reply

from support import PACKS, Driver

ASSISTANT = PACKS / "assistant.pack.json"
KEY = "sk-nonstream-0123456789abcdefghij"
PROVIDERS = ("openai", "anthropic", "responses", "gemini", "ollama")
SSE_PROVIDERS = ("openai", "anthropic", "responses")

# --- complete non-streamed replies, as each API sends them ------------------------------------

TEXT: dict[str, Any] = {
    "openai": {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
               "model": "gpt-4o-mini",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello Ada!",
                                                    "refusal": None},
                            "logprobs": None, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
    "anthropic": {"id": "msg_1", "type": "message", "role": "assistant",
                  "model": "claude-sonnet-4-5",
                  "content": [{"type": "text", "text": "Hello Ada!"}],
                  "stop_reason": "end_turn", "stop_sequence": None,
                  "usage": {"input_tokens": 12, "output_tokens": 3}},
    "responses": {"id": "resp_1", "object": "response", "status": "completed",
                  "model": "gpt-4.1",
                  "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                              "status": "completed",
                              "content": [{"type": "output_text", "text": "Hello Ada!",
                                           "annotations": []}]}],
                  "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello Ada!"}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3,
                                 "totalTokenCount": 15},
               "modelVersion": "gemini-2.5-flash"},
    "ollama": {"model": "llama3.2", "created_at": "2025-01-01T00:00:00Z",
               "message": {"role": "assistant", "content": "Hello Ada!"}, "done": True,
               "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 3},
}

ARGS = {"city": "Paris"}
TOOL: dict[str, Any] = {
    "openai": {"id": "chatcmpl-2", "object": "chat.completion", "model": "gpt-4o-mini",
               "choices": [{"index": 0, "message": {
                   "role": "assistant", "content": None,
                   "tool_calls": [{"id": "call_1", "type": "function",
                                   "function": {"name": "get_weather",
                                                "arguments": json.dumps(ARGS)}}]},
                   "finish_reason": "tool_calls"}],
               "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}},
    "anthropic": {"id": "msg_2", "type": "message", "role": "assistant",
                  "model": "claude-sonnet-4-5",
                  "content": [{"type": "text", "text": "Let me check."},
                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                               "input": ARGS}],
                  "stop_reason": "tool_use", "stop_sequence": None,
                  "usage": {"input_tokens": 20, "output_tokens": 9}},
    "responses": {"id": "resp_2", "object": "response", "status": "completed",
                  "model": "gpt-4.1",
                  "output": [{"type": "function_call", "id": "fc_1", "call_id": "call_1",
                              "name": "get_weather", "arguments": json.dumps(ARGS),
                              "status": "completed"}],
                  "usage": {"input_tokens": 20, "output_tokens": 9, "total_tokens": 29}},
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [
                   {"functionCall": {"name": "get_weather", "args": ARGS}}]},
                   "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 9,
                                 "totalTokenCount": 29}},
    "ollama": {"model": "llama3.2", "message": {
                   "role": "assistant", "content": "",
                   "tool_calls": [{"function": {"name": "get_weather", "arguments": ARGS}}]},
               "done": True, "done_reason": "stop", "prompt_eval_count": 20, "eval_count": 9},
}

# an error envelope on a 200, and the class and message it must give
ERROR: dict[str, tuple[Any, type[Exception], str]] = {
    "openai": ({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests",
                          "code": "rate_limit_exceeded"}},
               promptkit.RateLimitError, "Rate limit reached for gpt-4o-mini"),
    "anthropic": ({"type": "error", "error": {"type": "overloaded_error",
                                              "message": "Overloaded right now"}},
                  promptkit.OverloadedError, "Overloaded right now"),
    "responses": ({"error": {"message": "Invalid API key provided", "type": "invalid_request_error",
                             "code": "invalid_api_key"}},
                  promptkit.AuthenticationError, "Invalid API key provided"),
    "gemini": ({"error": {"code": 429, "message": "Resource has been exhausted",
                          "status": "RESOURCE_EXHAUSTED"}},
               promptkit.RateLimitError, "Resource has been exhausted"),
    "ollama": ({"error": "model 'llama3.2' not found"}, promptkit.APIStatusError,
               "model 'llama3.2' not found"),
}

HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n"


def open_provider(driver: Driver, provider: str, server: FakeServer, **options: Any) -> Any:
    name, api = ("openai", "responses") if provider == "responses" else (provider, None)
    model = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "responses": "gpt-4.1",
             "gemini": "gemini-2.5-flash", "ollama": "llama3.2"}[provider]
    base = server.url + ("/v1beta" if provider == "gemini" else
                         "" if provider in ("anthropic", "ollama") else "/v1")
    options.setdefault("variables", {"user_name": "Ada"})
    options.setdefault("max_retries", 0)
    return driver.open(ASSISTANT, "assistant", provider=name, model=model, api_key=KEY,
                       base_url=base, api=api, **options)


def as_json(obj: Any, *, indent: int | None = 2) -> Reply:
    """A whole JSON reply (pretty-printed, as many servers send it) on a 200."""
    return Reply(200, {"content-type": "application/json"}, [json.dumps(obj, indent=indent)
                                                             .encode()])


def text_of(chunks: list[StreamChunk]) -> str:
    return "".join(c.text for c in chunks if c.type is ChunkType.TEXT)


# --- complete replies --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_complete_json_reply_is_delivered_as_if_streamed(driver: Driver,
                                                            provider: str) -> None:
    indent = None if provider == "ollama" else 2  # Ollama's non-streamed reply is one line
    with FakeServer([as_json(TEXT[provider], indent=indent)]) as server:
        conv = open_provider(driver, provider, server)
        chunks = driver.stream(conv, "hi")
    assert [c.type for c in chunks] == [ChunkType.TEXT, ChunkType.DONE], chunks
    assert text_of(chunks) == "Hello Ada!"
    response = chunks[-1].response
    assert response is not None and response.text == "Hello Ada!"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.finish_reason == "stop"
    assert [m.text for m in conv.messages][-2:] == ["hi", "Hello Ada!"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_complete_tool_call_reply_runs_the_tool_round(driver: Driver, provider: str) -> None:
    indent = None if provider == "ollama" else 2
    replies = [as_json(TOOL[provider], indent=indent), as_json(TEXT[provider], indent=indent)]
    with FakeServer(replies) as server:
        conv = open_provider(driver, provider, server)
        seen: list[Any] = []
        conv.on_tool("get_weather", lambda args: seen.append(args) or "sunny")
        conv.on_tool("get_time", lambda args: "noon")
        chunks = driver.stream(conv, "weather in Paris?")
        follow_up = json.dumps(server.requests[1].json)
    calls = [c.tool_call for c in chunks if c.type is ChunkType.TOOL_CALL]
    assert len(calls) == 1 and calls[0] is not None
    assert (calls[0].name, calls[0].arguments) == ("get_weather", ARGS)
    assert seen == [ARGS]
    assert "sunny" in follow_up and "get_weather" in follow_up
    assert chunks[-1].type is ChunkType.DONE and chunks[-1].response is not None
    assert chunks[-1].response.text == "Hello Ada!"


def test_anthropic_thinking_in_a_complete_reply_arrives_as_thinking(driver: Driver) -> None:
    message = dict(TEXT["anthropic"])
    message["content"] = [{"type": "thinking", "thinking": "Greet her.", "signature": "sig=="},
                          {"type": "text", "text": "Hello Ada!"}]
    with FakeServer([as_json(message)]) as server:
        conv = open_provider(driver, "anthropic", server)
        chunks = driver.stream(conv, "hi")
    assert [(c.type, c.text) for c in chunks[:2]] == [(ChunkType.THINKING, "Greet her."),
                                                       (ChunkType.TEXT, "Hello Ada!")]
    assistant = conv.messages[-1]
    assert assistant.extra["anthropic_thinking"][0]["signature"] == "sig=="


@pytest.mark.parametrize("provider", SSE_PROVIDERS)
def test_a_stream_labelled_as_json_is_still_read_as_a_stream(driver: Driver,
                                                              provider: str) -> None:
    events = {
        "openai": [{"choices": [{"index": 0, "delta": {"content": "Hello"}}]},
                   {"choices": [{"index": 0, "delta": {"content": " Ada!"},
                                 "finish_reason": "stop"}]}, "[DONE]"],
        "anthropic": [{"type": "message_start", "message": {"id": "m", "usage": {}}},
                      {"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}},
                      {"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": "Hello"}},
                      {"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": " Ada!"}},
                      {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
                      {"type": "message_stop"}],
        "responses": [{"type": "response.output_text.delta", "item_id": "m", "delta": "Hello"},
                      {"type": "response.output_text.delta", "item_id": "m", "delta": " Ada!"},
                      {"type": "response.completed", "response": {"status": "completed"}}],
    }[provider]
    pieces = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events]
    with FakeServer([Reply(200, {"content-type": "application/json"}, pieces)]) as server:
        conv = open_provider(driver, provider, server)
        chunks = driver.stream(conv, "hi")
    assert [c.text for c in chunks if c.type is ChunkType.TEXT] == ["Hello", " Ada!"]
    assert chunks[-1].type is ChunkType.DONE


# --- error bodies on a 200 ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_error_body_on_a_200_maps_to_its_typed_error(driver: Driver, provider: str) -> None:
    body, error_class, message = ERROR[provider]
    with FakeServer([as_json(body, indent=None)]) as server:
        conv = open_provider(driver, provider, server)
        chunks = driver.stream(conv, "hi")
    error = chunks[-1].error
    assert isinstance(error, error_class), repr(error)
    assert message in str(error)
    assert "{" not in str(error)  # the error's own message, not the raw body
    assert conv.messages == []  # a failed turn leaves history as it was


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_body_that_is_neither_quotes_its_start(driver: Driver, provider: str) -> None:
    with FakeServer([Reply(200, {"content-type": "text/html"}, [HTML])]) as server:
        conv = open_provider(driver, provider, server)
        with pytest.raises(promptkit.StreamProtocolError) as caught:
            driver.send(conv, "hi")
    assert "<html><head><title>502 Bad Gateway" in str(caught.value)
    assert "text/html" in str(caught.value)
    assert conv.messages == []


@pytest.mark.parametrize("provider", SSE_PROVIDERS)
def test_json_that_is_not_a_reply_is_a_protocol_error(driver: Driver, provider: str) -> None:
    with FakeServer([as_json({"detail": "Not authenticated"})]) as server:
        conv = open_provider(driver, provider, server)
        with pytest.raises(promptkit.StreamProtocolError, match="Not authenticated"):
            driver.send(conv, "hi")


# --- error bodies in stream framing on an error status (item 18) -------------------------------

SSE_ERROR: dict[str, bytes] = {
    "openai": b'data: {"error": {"message": "Rate limit reached for gpt-4o-mini", '
              b'"type": "requests", "code": "rate_limit_exceeded"}}\n\n',
    "anthropic": b'event: error\ndata: {"type": "error", "error": {"type": "rate_limit_error", '
                 b'"message": "Rate limit reached for gpt-4o-mini"}}\n\n',
    "responses": b'event: error\ndata: {"type": "error", "error": {"message": '
                 b'"Rate limit reached for gpt-4o-mini", "code": "rate_limit_exceeded"}}\n\n',
    "gemini": b'data: {"error": {"code": 429, "message": "Rate limit reached for gpt-4o-mini", '
              b'"status": "RESOURCE_EXHAUSTED"}}\n\n',
    "ollama": b'{"error": "Rate limit reached for gpt-4o-mini"}\n',
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_error_status_in_stream_framing_gets_the_errors_own_message(
        driver: Driver, provider: str) -> None:
    kind = "application/x-ndjson" if provider == "ollama" else "text/event-stream"
    replies = [Reply(429, {"content-type": kind, "retry-after": "0"}, [SSE_ERROR[provider]])]
    with FakeServer(replies) as server:
        conv = open_provider(driver, provider, server)
        with pytest.raises(promptkit.RateLimitError) as caught:
            driver.send(conv, "hi")
    text = str(caught.value)
    assert "Rate limit reached for gpt-4o-mini" in text
    assert "data:" not in text and "{" not in text
    assert isinstance(caught.value.body, dict)  # the parsed error event, not raw text


# --- the decoder on its own: chunks never depend on how the bytes were split -------------------

DIALECTS = {
    "openai": OpenAIChatDialect, "anthropic": AnthropicDialect,
    "responses": OpenAIResponsesDialect, "gemini": GeminiDialect, "ollama": OllamaDialect,
}


def decode(provider: str, body: bytes, cuts: list[int], content_type: str) -> tuple[Any, ...]:
    decoder = DIALECTS[provider](Endpoint(base_url="http://127.0.0.1:1")).decoder(content_type)
    chunks: list[StreamChunk] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        if cut > start:
            chunks += decoder.feed(body[start:cut])
            start = cut
    chunks += decoder.flush()
    result = decoder.finish()
    return ([(c.type, c.text) for c in chunks], result.message.text, result.message.tool_calls,
            result.usage, result.finish_reason)


@settings(max_examples=40, deadline=None)
@given(provider=st.sampled_from(PROVIDERS), tool=st.booleans(),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_a_complete_reply_decodes_the_same_however_it_is_split(provider: str, tool: bool,
                                                                cuts: list[int]) -> None:
    obj = (TOOL if tool else TEXT)[provider]
    body = json.dumps(obj, indent=None if provider == "ollama" else 2).encode() + b"\n"
    whole = decode(provider, body, [], "application/json")
    assert decode(provider, body, [c % (len(body) + 1) for c in cuts], "application/json") == whole
    assert whole[1] == ("" if tool and provider != "anthropic" else
                        "Let me check." if tool else "Hello Ada!")


def test_no_content_type_means_the_stream_decoder_as_before() -> None:
    for provider, dialect in DIALECTS.items():
        decoder = dialect(Endpoint(base_url="http://127.0.0.1:1")).decoder()
        assert type(decoder).__name__ != "NonStreamDecoder", provider
