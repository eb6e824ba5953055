"""Small pure pieces: retry policy, pricing, the memory store, tool results, timeouts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import promptkit
from promptkit import Message, ToolCall, Usage
from promptkit.engine.pricing import cost_of, price_for
from promptkit.engine.retry import RetryPolicy
from promptkit.engine.tool_round import result_from_exception, result_from_value
from promptkit.stores import ConflictError, MemoryStore


def _status(cls: type[promptkit.APIStatusError], retry_after: float | None = None,
            **kw: Any) -> promptkit.APIStatusError:
    return cls("x", status_code=500, retry_after=retry_after, **kw)


def test_retry_policy_backoff_and_hints() -> None:
    policy = RetryPolicy(max_retries=3)
    server = _status(promptkit.ServerError)
    delays = [policy.delay(n, server) for n in range(3)]
    assert all(d is not None for d in delays)
    assert 0.375 <= delays[0] <= 0.5 and 0.75 <= delays[1] <= 1.0 and 1.5 <= delays[2] <= 2.0
    assert policy.delay(3, server) is None  # attempts exhausted
    assert policy.delay(0, _status(promptkit.ServerError, retry_after=1.5)) == 1.5
    assert policy.delay(0, _status(promptkit.RateLimitError, retry_after=3600)) is None
    assert policy.delay(0, _status(promptkit.AuthenticationError)) is None
    assert policy.delay(0, _status(promptkit.RateLimitError, retryable=False)) is None
    assert policy.delay(0, promptkit.APIConnectionError("reset")) is not None
    assert policy.delay(0, promptkit.TurnTimeout("late")) is None
    assert policy.delay(0, promptkit.MissingVariableError(["x"])) is None
    capped = RetryPolicy(max_retries=20, max_delay=8.0)
    assert capped.delay(15, server) is not None and capped.delay(15, server) <= 8.0  # type: ignore[operator]


def test_pricing_by_name_prefix_and_user_prices() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=500_000)
    price = price_for("gpt-4o-mini-2024-07-18")
    assert price is not None and price.input == 0.15
    assert cost_of("gpt-4o-mini", usage) == pytest.approx(0.5 * 0.15 + 0.5 * 0.075 + 0.6)
    assert price_for("openai/gpt-4o") == price_for("gpt-4o")
    assert price_for("gpt-4o-mini") != price_for("gpt-4o")
    assert cost_of("my-finetune-v2", usage) is None
    promptkit.set_price("my-finetune", input=1.0, output=2.0)
    assert cost_of("my-finetune-v2", usage) == pytest.approx(3.0)


def test_memory_store_versions_fork_and_conflicts() -> None:
    store = MemoryStore()
    user = Message(role="user", text="hi")
    assert store.load("c") is None
    assert store.append("c", [user], expected_version=0) == 1
    with pytest.raises(ConflictError):
        store.append("c", [user], expected_version=0)
    assert isinstance(ConflictError("x"), promptkit.StoreError)
    store.fork("c", "d")
    store.append("d", [user], expected_version=1)
    assert len(store.load("c").messages) == 1  # type: ignore[union-attr]
    assert len(store.load("d").messages) == 2  # type: ignore[union-attr]
    with pytest.raises(promptkit.StoreError):
        store.fork("c", "d")
    store.delete("c")
    assert store.load("c") is None


def test_memory_store_evicts_only_when_asked() -> None:
    store = MemoryStore(max_conversations=2)
    for name in "abc":
        store.append(name, [Message(role="user", text=name)], expected_version=0)
    assert store.load("a") is None and store.load("c") is not None


def test_messages_round_trip_through_dicts() -> None:
    call = ToolCall(id="1", name="f", arguments={"a": [1, 2]}, raw_arguments='{"a":[1,2]}')
    message = Message(role="assistant", text="", tool_calls=(call,), usage=Usage(input_tokens=3),
                      finish_reason="tool_calls", extra={"signature": "abc"})
    assert Message.from_dict(message.to_dict()) == message
    with pytest.raises(ValueError):
        Message(role="robot", text="x")  # type: ignore[arg-type]


@dataclasses.dataclass
class Weather:
    city: str
    temp: float


class PydanticLike:
    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {"mode": mode}


CALL = ToolCall(id="c1", name="t")


@pytest.mark.parametrize(("value", "content"), [
    ("plain text", "plain text"),
    ({"a": 1}, '{"a": 1}'),
    ([1, "x"], '[1, "x"]'),
    (Weather("Paris", 21.5), '{"city": "Paris", "temp": 21.5}'),
    (PydanticLike(), '{"mode": "json"}'),
    (None, "null"),
    ({"ü": "é"}, '{"ü": "é"}'),
])
def test_tool_results_are_serialised(value: Any, content: str) -> None:
    result = result_from_value(CALL, value)
    assert (result.content, result.is_error, result.call_id) == (content, False, "c1")


def test_huge_tool_results_are_capped_visibly() -> None:
    result = result_from_value(CALL, "x" * 100, limit=10)
    assert result.content.startswith("x" * 10)
    assert "[truncated: 90 more characters]" in result.content
    assert not result.is_error


def test_exceptions_become_error_results() -> None:
    result = result_from_exception(CALL, KeyError("city"))
    assert result.is_error and "'city'" in result.content


def test_timeouts_validate() -> None:
    with pytest.raises(ValueError):
        promptkit.Timeouts(idle=0)
    assert promptkit.Timeouts(total=None).total is None


def test_user_prices_are_case_insensitive_and_do_not_shadow_longer_names() -> None:
    promptkit.set_price("My-Model", input=1.0, output=1.0)
    assert price_for("my-model-2025") is not None
    promptkit.set_price("gpt-4o", input=9.0, output=9.0)
    mini = price_for("gpt-4o-mini-2024-07-18")
    assert mini is not None and mini.input == 0.15  # the bundled longer name still wins
    exact = price_for("gpt-4o-2024-08-06")
    assert exact is not None and exact.input == 9.0
    promptkit.set_price("gpt-4o", input=2.5, output=10.0, cached_input=1.25)  # restore


def test_reasoning_models_get_max_completion_tokens() -> None:
    from promptkit.engine.dialect import Endpoint, ModelRequest
    from promptkit.providers.openai_chat import OpenAIChatDialect

    dialect = OpenAIChatDialect(Endpoint(base_url="http://x/v1"))

    def body(model: str) -> dict[str, Any]:
        import json

        request = ModelRequest(model=model, system="", messages=(),
                               parameters={"max_tokens": 100})
        return json.loads(dialect.build_request(request).body)  # type: ignore[no-any-return]

    for model in ("o3-mini", "o1", "gpt-5", "gpt-5-mini", "openai/o4-mini"):
        assert body(model)["max_completion_tokens"] == 100 and "max_tokens" not in body(model)
    for model in ("gpt-4o", "llama3.2", "o1x"):
        assert body(model)["max_tokens"] == 100
