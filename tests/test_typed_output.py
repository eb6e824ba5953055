"""Typed output (issue 12, item 5): ``response_format=`` takes a dataclass, a TypedDict, a
msgspec.Struct or a pydantic model; the schema is derived and sent, ``Response.parsed`` holds
the decoded instance, and an answer that does not decode is a ResponseParseError that keeps
the raw text and commits nothing. Plus ``Response.to_dict()`` (item 6)."""

from __future__ import annotations

import asyncio
import enum
import json
import pickle
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

import msgspec
import pytest

import promptkit
from promptkit import ChunkType
from promptkit.engine.output import schema_of_type
from promptkit.testing import FakeServer, Reply

from support import PACKS, Driver

ASSISTANT = PACKS / "assistant.pack.json"
ANSWER = '{"city": "Paris", "temp_c": 21.5, "tags": ["sunny"]}'


@dataclass
class Weather:
    """A weather report."""

    city: str
    temp_c: float
    tags: list[str] = field(default_factory=list)


class WeatherDict(TypedDict):
    city: str
    temp_c: float
    tags: NotRequired[list[str]]


class WeatherStruct(msgspec.Struct):
    city: str
    temp_c: float
    tags: list[str] = []


def open_mock(driver: Driver, answer: str = ANSWER, **options: Any) -> Any:
    return driver.open(ASSISTANT, "plain", provider="mock",
                       mock_responses={"defaultResponse": answer}, **options)


def sent(conv: Any, index: int = 0) -> dict[str, Any]:
    return json.loads(conv._binding.options["transport"].requests[index].body)  # type: ignore[no-any-return]


def pydantic_model() -> Any:
    pydantic = pytest.importorskip("pydantic")

    class WeatherModel(pydantic.BaseModel):  # type: ignore[misc, name-defined]
        city: str
        temp_c: float
        tags: list[str] = []

    return WeatherModel


@pytest.mark.parametrize("kind", ["dataclass", "typeddict", "struct", "pydantic"])
def test_each_kind_of_type_gives_a_parsed_instance(driver: Driver, kind: str) -> None:
    output: Any = {"dataclass": Weather, "typeddict": WeatherDict, "struct": WeatherStruct}.get(
        kind) or pydantic_model()
    conv = open_mock(driver, response_format=output)
    response = driver.send(conv, "weather in Paris?")
    parsed = response.parsed
    if kind == "typeddict":
        assert parsed == {"city": "Paris", "temp_c": 21.5, "tags": ["sunny"]}
    else:
        assert isinstance(parsed, output)
        assert (parsed.city, parsed.temp_c, parsed.tags) == ("Paris", 21.5, ["sunny"])
    schema = sent(conv)["response_format"]["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"city", "temp_c", "tags"}
    assert set(schema["required"]) >= {"city", "temp_c"}
    assert json.loads(json.dumps(response.to_dict()))["parsed"]["city"] == "Paris"
    assert len(conv.messages) == 2


def test_streams_deliver_the_parsed_value_in_done(driver: Driver) -> None:
    conv = open_mock(driver, response_format=Weather)
    chunks = driver.stream(conv, "weather?")
    done = chunks[-1]
    assert done.type is ChunkType.DONE and done.response is not None
    assert done.response.parsed == Weather("Paris", 21.5, ["sunny"])


def test_a_per_call_response_format_overrides_the_open_one(driver: Driver) -> None:
    conv = open_mock(driver, response_format={"type": "json_object"})
    first = driver.send(conv, "any JSON")
    second = driver.send(conv, "typed", response_format=WeatherStruct)
    third = driver.send(conv, "any JSON again")
    assert first.parsed == json.loads(ANSWER)
    assert isinstance(second.parsed, WeatherStruct)
    assert third.parsed == json.loads(ANSWER)
    assert sent(conv, 0)["response_format"] == {"type": "json_object"}
    assert sent(conv, 1)["response_format"]["json_schema"]["name"] == "WeatherStruct"


@pytest.mark.parametrize("answer", ["Sure! It is sunny.", '{"city": "Paris"}',
                                    '{"city": "Paris", "temp_c": "warm"}'])
def test_an_answer_that_does_not_decode_is_a_typed_error_and_commits_nothing(
        driver: Driver, answer: str) -> None:
    conv = open_mock(driver, answer, response_format=Weather)
    with pytest.raises(promptkit.ResponseParseError) as caught:
        driver.send(conv, "weather?")
    error = caught.value
    assert error.raw_text == answer and error.output_type == "Weather"
    assert isinstance(error, promptkit.PromptKitError) and "Weather" in str(error)
    assert conv.messages == []  # a failed turn leaves the history as it was
    chunks = driver.stream(conv, "weather?")
    assert chunks[-1].type is ChunkType.ERROR
    assert isinstance(chunks[-1].error, promptkit.ResponseParseError)
    assert "".join(c.text for c in chunks if c.type is ChunkType.TEXT) == answer
    assert conv.messages == []
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is promptkit.ResponseParseError and copy.raw_text == answer


def test_a_fenced_answer_is_accepted(driver: Driver) -> None:
    conv = open_mock(driver, f"```json\n{ANSWER}\n```", response_format=WeatherDict)
    assert driver.send(conv, "weather?").parsed["city"] == "Paris"


def test_anthropic_gets_the_derived_schema_in_its_system_prompt(driver: Driver) -> None:
    text = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":'
            b'"message","role":"assistant","model":"claude-sonnet-4-5","content":[],'
            b'"usage":{"input_tokens":5,"output_tokens":0}}}\n\n'
            b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
            b'"content_block":{"type":"text","text":""}}\n\n'
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":' + json.dumps(ANSWER).encode() + b'}}\n\n'
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
            b'"end_turn"},"usage":{"output_tokens":9}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    with FakeServer([Reply.sse(text)]) as server:
        conv = driver.open(ASSISTANT, "plain", provider="anthropic", model="claude-sonnet-4-5",
                           api_key="test-key-not-real", base_url=server.url,
                           response_format=Weather)
        response = driver.send(conv, "weather?")
        body = server.requests[0].json
    assert response.parsed == Weather("Paris", 21.5, ["sunny"])
    assert '"temp_c"' in body["system"] and "JSON Schema" in body["system"]


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


@dataclass
class Shape:
    colour: Colour
    kind: Literal["circle", "square"]
    size: int | None
    pair: tuple[int, str]
    labels: dict[str, float]
    tree: Node


def test_schema_derivation_covers_the_common_annotations() -> None:
    schema = schema_of_type(Shape)
    props = schema["properties"]
    assert schema["title"] == "Shape" and schema["additionalProperties"] is False
    assert schema["required"] == ["colour", "kind", "size", "pair", "labels", "tree"]
    assert props["colour"] == {"enum": ["red", "blue"]}
    assert props["kind"] == {"enum": ["circle", "square"]}
    assert props["size"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["tree"] == {"$ref": "#/$defs/Node"}
    node = schema["$defs"]["Node"]  # recursive: refers to itself
    assert node["properties"]["children"] == {"type": "array",
                                              "items": {"$ref": "#/$defs/Node"}}
    assert node["required"] == ["name"]
    assert schema_of_type(Weather)["description"] == "A weather report."
    typed = schema_of_type(WeatherDict)
    assert typed["required"] == ["city", "temp_c"]


def test_a_type_that_is_not_a_record_is_refused_at_open(driver: Driver) -> None:
    with pytest.raises(TypeError, match="response_format"):
        open_mock(driver, response_format=int)
    with pytest.raises(TypeError, match="response_format"):
        open_mock(driver, response_format="json")


def test_response_to_dict_is_the_send_json_done_shape(driver: Driver) -> None:
    conv = open_mock(driver, "hello there")
    response = driver.send(conv, "hi")
    data = response.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["text"] == "hello there" and data["provider"] == "mock"
    assert set(data) >= {"text", "finish_reason", "usage", "cost", "model", "provider",
                         "duration", "time_to_first_token", "tool_calls", "tool_results",
                         "pending_tools"}
    assert "parsed" not in data


def test_async_send_raises_the_parse_error_too() -> None:
    async def go() -> None:
        async with promptkit.open_async(ASSISTANT, "plain", provider="mock",
                                        mock_responses={"defaultResponse": "no"},
                                        response_format=WeatherStruct) as conv:
            with pytest.raises(promptkit.ResponseParseError):
                await conv.send("weather?")
            assert conv.messages == []

    asyncio.run(go())
