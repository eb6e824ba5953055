"""``RoundResult.response_id`` (the span's ``gen_ai.response.id``) from recorded streams of
every dialect that has one, however the bytes are split; Ollama's streams carry none."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptkit.engine.dialect import RoundResult
from promptkit.providers.anthropic import AnthropicDecoder
from promptkit.providers.gemini import GeminiDecoder
from promptkit.providers.ollama import OllamaDecoder
from promptkit.providers.openai_chat import OpenAIChatDecoder
from promptkit.providers.openai_responses import OpenAIResponsesDecoder

WIRE = Path(__file__).parent / "data" / "wire"

CASES: list[tuple[type[Any], str, str]] = [
    (OpenAIChatDecoder, "openai-chat/text-with-usage.sse", r'"id":\s*"(chatcmpl-[^"]+)"'),
    (OpenAIChatDecoder, "openai-chat/parallel-tool-calls.sse", r'"id":\s*"(chatcmpl-[^"]+)"'),
    (AnthropicDecoder, "anthropic/basic-text.sdk-fixture.sse", r'"id":\s*"(msg_[^"]+)"'),
    (GeminiDecoder, "gemini/function-call-second-turn.sse", r'"responseId":\s*"([^"]+)"'),
    (OpenAIResponsesDecoder, "openai-responses/function-call-2025-03.sse",
     r'"id":\s*"(resp_[^"]+)"'),
]


def decode(decoder_type: type[Any], pieces: list[bytes]) -> RoundResult:
    decoder = decoder_type()
    for piece in pieces:
        decoder.feed(piece)
    decoder.flush()
    result: RoundResult = decoder.finish()
    return result


@pytest.mark.parametrize(("decoder_type", "name", "pattern"), CASES)
def test_the_response_id_is_the_recorded_one(decoder_type: type[Any], name: str,
                                             pattern: str) -> None:
    body = (WIRE / name).read_bytes()
    expected = re.search(pattern, body.decode())
    assert expected is not None
    assert decode(decoder_type, [body]).response_id == expected.group(1)


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(CASES), cuts=st.lists(st.integers(0, 1 << 16), max_size=8))
def test_any_split_gives_the_same_response_id(case: tuple[type[Any], str, str],
                                              cuts: list[int]) -> None:
    decoder_type, name, _ = case
    body = (WIRE / name).read_bytes()
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    assert decode(decoder_type, pieces).response_id == decode(decoder_type, [body]).response_id


def test_ollama_has_no_response_id() -> None:
    lines = [{"model": "llama3.2", "message": {"role": "assistant", "content": "Hi"},
              "done": False},
             {"model": "llama3.2", "message": {"role": "assistant", "content": ""},
              "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 1}]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    result = decode(OllamaDecoder, [body])
    assert result.message.text == "Hi" and result.response_id is None
