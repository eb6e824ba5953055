"""The mock provider: scripted replies streamed in the OpenAI Chat Completions wire format.

It is a faithful fake: replies are produced as real SSE bytes by an in-process transport and
decoded by the same dialect as a real OpenAI stream, so offline runs exercise the whole
pipeline. Scripts use PromptKit's mock-responses shape (YAML or JSON)::

    defaultResponse: "Hello from the mock"
    scenarios:
      weather:
        defaultResponse: "..."
        turns:
          1:
            type: tool_calls
            tool_calls:
              - name: get_weather
                arguments: {city: Paris}
          2: "It is sunny in Paris."

Turns are numbered by model call within the conversation: 1 is the first reply; after a
``tool_calls`` turn, the reply that follows the tool results is the next number. Replies
stream word by word; ``delay`` (seconds) paces the words.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptkit._errors import ProviderNotConfiguredError
from promptkit._json import loads
from promptkit.engine.dialect import Endpoint, HTTPRequest
from promptkit.providers.binding import Binding
from promptkit.transport.mock import MockReply, MockTransport

__all__ = ["MockResponses", "MockTurn", "mock_binding"]

_WORDS = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class MockTurn:
    """One scripted reply: text, or tool calls (``(name, arguments)`` pairs), or both."""

    text: str = ""
    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MockResponses:
    """A mock script: a default reply, scenarios with numbered turns, and pacing."""

    default_response: str | None = None
    scenarios: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    scenario: str | None = None
    turns: Mapping[int, Any] = field(default_factory=dict)
    delay: float = 0.0
    first_delay: float = 0.0

    @classmethod
    def load(cls, source: str | os.PathLike[str] | Mapping[str, Any] | MockResponses | None,
             **options: Any) -> MockResponses:
        """Build from a YAML/JSON file path, a mapping in the same shape, or ``None``."""
        if isinstance(source, MockResponses):
            return source
        if source is None:
            return cls(**options)
        if isinstance(source, Mapping):
            data: Mapping[str, Any] = source
        else:
            path = Path(source)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ProviderNotConfiguredError(
                    f"cannot read mock responses {path}: {exc}") from exc
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text) or {}
            if not isinstance(data, Mapping):
                raise ProviderNotConfiguredError(f"mock responses {path} must be a mapping")
        turns = data.get("turns") or {}
        for key in ("delay", "first_delay"):  # pacing may also live in the file (extension)
            if key in data:
                options.setdefault(key, float(data[key]))
        return cls(
            default_response=data.get("defaultResponse"),
            scenarios=data.get("scenarios") or {},
            turns={int(k): v for k, v in turns.items()},
            **options,
        )

    def turn(self, number: int, model: str, last_user_text: str) -> MockTurn:
        """The reply for model call ``number`` (1-based)."""
        scenario = self._scenario()
        turns: Mapping[Any, Any] = self.turns
        if scenario is not None:
            turns = {int(k): v for k, v in (scenario.get("turns") or {}).items()}
        if number in turns:
            return _parse_turn(turns[number])
        if scenario is not None and scenario.get("defaultResponse"):
            return MockTurn(text=str(scenario["defaultResponse"]))
        if self.default_response:
            return MockTurn(text=self.default_response)
        return MockTurn(text=f"Mock response from {model} to: {last_user_text}")

    def _scenario(self) -> Mapping[str, Any] | None:
        if self.scenario is not None:
            if self.scenario not in self.scenarios:
                raise ProviderNotConfiguredError(
                    f"mock scenario {self.scenario!r} not found; available: "
                    f"{', '.join(sorted(self.scenarios)) or 'none'}")
            return self.scenarios[self.scenario]
        if len(self.scenarios) == 1:
            return next(iter(self.scenarios.values()))
        return self.scenarios.get("default")


def _parse_turn(value: Any) -> MockTurn:
    if isinstance(value, str):
        return MockTurn(text=value)
    if not isinstance(value, Mapping):
        raise ProviderNotConfiguredError(f"unsupported mock turn: {value!r}")
    text = value.get("content") or value.get("text") or value.get("response") or ""
    calls = tuple(
        (str(call["name"]), dict(call.get("arguments") or {}))
        for call in value.get("tool_calls") or ()
    )
    return MockTurn(text=str(text), tool_calls=calls)


def _event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def render_sse(turn: MockTurn, *, model: str, prompt_chars: int, call_offset: int = 0
               ) -> list[bytes]:
    """The reply as OpenAI Chat Completions SSE events, one piece per event."""
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
            "model": model}

    def chunk(delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _event({**base, "choices": [choice]})

    pieces = [chunk({"role": "assistant", "content": "" if not turn.tool_calls else None})]
    pieces += [chunk({"content": word}) for word in _WORDS.findall(turn.text)]
    for index, (name, arguments) in enumerate(turn.tool_calls):
        raw = json.dumps(arguments, separators=(",", ":"))
        half = len(raw) // 2
        call_id = f"call_{call_offset + index + 1}_{name}"
        first = {"index": index, "id": call_id, "type": "function",
                 "function": {"name": name, "arguments": raw[:half]}}
        pieces.append(chunk({"tool_calls": [first]}))
        pieces.append(chunk({"tool_calls": [{"index": index,
                                             "function": {"arguments": raw[half:]}}]}))
    pieces.append(chunk({}, "tool_calls" if turn.tool_calls else "stop"))
    output = len(turn.text) + sum(len(json.dumps(a)) for _, a in turn.tool_calls)
    usage = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, output // 4)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    pieces.append(_event({**base, "choices": [], "usage": usage}))
    pieces.append(b"data: [DONE]\n\n")
    return pieces


class MockServerLogic:
    """Answers OpenAI Chat Completions requests from a :class:`MockResponses` script."""

    def __init__(self, responses: MockResponses) -> None:
        self.responses = responses

    def __call__(self, request: HTTPRequest) -> MockReply:
        body = loads(request.body)
        messages: Sequence[Mapping[str, Any]] = body.get("messages", [])
        # one pass over the history (a long conversation sends it all every turn)
        assistants = calls_so_far = prompt_chars = 0
        last_user = ""
        for m in messages:
            role = m.get("role")
            content = m.get("content")
            if role == "assistant":
                assistants += 1
                calls = m.get("tool_calls")
                if calls:
                    calls_so_far += len(calls)
            elif role == "user":
                last_user = content if isinstance(content, str) else str(content or "")
            if content:
                prompt_chars += len(content if isinstance(content, str) else str(content))
        turn = self.responses.turn(1 + assistants, body.get("model", "mock"), last_user)
        pieces = render_sse(turn, model=body.get("model", "mock"), prompt_chars=prompt_chars,
                            call_offset=calls_so_far)
        return MockReply(status=200, headers={"content-type": "text/event-stream"},
                         pieces=pieces, delay=self.responses.delay,
                         first_delay=self.responses.first_delay)


def mock_binding(model: str, responses: object) -> Binding:
    """A :class:`Binding` whose transport is the in-process mock server."""
    from promptkit.providers.openai_chat import OpenAIChatDialect

    options: dict[str, Any] = {}
    source = responses
    if isinstance(responses, Mapping) and ("delay" in responses or "first_delay" in responses):
        options = {k: responses[k] for k in ("delay", "first_delay") if k in responses}
        source = {k: v for k, v in responses.items() if k not in options}
    script = MockResponses.load(source, **options)  # type: ignore[arg-type]
    transport = MockTransport(MockServerLogic(script))
    dialect = OpenAIChatDialect(Endpoint(base_url="mock://local/v1"), name="mock")
    return Binding(provider="mock", model=model, dialect=dialect,
                   sync_transport=lambda: transport,
                   async_transport=transport.as_async,
                   options={"transport": transport})
