"""ContextPolicy: what a long conversation sends stays inside the model's context window.

A scripted fake provider counts each request's tokens (its text at four characters a token)
and rejects one over its limit the way the provider does: HTTP 400 with the recorded
context-length error body. The policy keeps every request under it, through both drivers,
with tool rounds, for each strategy; the stored history is never truncated.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promptkit
from promptkit import ContextLengthError, ContextPolicy, Message, ToolCall, ToolResult
from promptkit.engine.context import (
    context_window_for,
    fit_history,
    message_tokens,
    turn_groups,
)
from promptkit.stores.sqlite import SQLiteStore
from promptkit.testing import FakeServer, RecordedRequest, Reply

from support import PACKS, WIRE, Driver

ASSISTANT = PACKS / "assistant.pack.json"
KEY = "sk-test-0123456789abcdefghijklmnop"

#: provider → (model, base path, recorded context-length error body, a text reply)
PROVIDERS = {
    "openai": ("gpt-4o-mini", "/v1", "openai-chat/error-400-context-length-exceeded.json",
               "openai-chat/text-after-tool-result.sse"),
    "anthropic": ("claude-haiku-4-5", "", "anthropic/error-400-prompt-too-long.CONSTRUCTED.json",
                  "anthropic/text.sse"),
    "gemini": ("gemini-2.5-flash", "/v1beta", "gemini/error-400-token-count-exceeded.json",
               "gemini/text.sse"),
}
LIMIT = 700  # the fake provider's context window, in its own count


def request_tokens(body: Any) -> int:
    """The fake provider's count: every string in the body but the model name, /4."""
    def chars(value: Any, key: str = "") -> int:
        if isinstance(value, str):
            return 0 if key == "model" else len(value)
        if isinstance(value, dict):
            return sum(chars(v, k) for k, v in value.items())
        if isinstance(value, list):
            return sum(chars(v) for v in value)
        return 0
    return chars(body) // 4


class ContextLimitedProvider:
    """A FakeServer handler: the provider's 400 over ``LIMIT`` tokens, else a text reply."""

    def __init__(self, provider: str, limit: int = LIMIT, reply: str | None = None) -> None:
        _, _, error, text = PROVIDERS[provider]
        self.error = json.loads((WIRE / error).read_text())
        self.reply = WIRE / (reply or text)
        self.limit = limit
        self.sizes: list[int] = []
        self.rejected = 0

    def __call__(self, request: RecordedRequest) -> Reply:
        size = request_tokens(request.json)
        self.sizes.append(size)
        if size > self.limit:
            self.rejected += 1
            return Reply.json(400, self.error)
        return Reply.sse(self.reply)


def open_on(driver: Driver, provider: str, server: FakeServer, **options: Any) -> Any:
    model, base, _, _ = PROVIDERS[provider]
    options.setdefault("variables", {"user_name": "Ada"})
    options.setdefault("max_retries", 0)
    return driver.open(ASSISTANT, "assistant", provider=provider, model=model, api_key=KEY,
                       base_url=server.url + base, **options)


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i:03d}" for i in range(n))  # 7 characters a word


def run_turns(driver: Driver, conv: Any, messages: list[str]) -> list[Any]:
    if not driver.is_async:
        return [conv.send(m) for m in messages]

    async def go() -> list[Any]:
        async with conv:
            return [await conv.send(m) for m in messages]
    return asyncio.run(go())


def history_of(driver: Driver, conv: Any) -> list[Message]:
    return list(conv.messages)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


# --- the fake provider really rejects, the way each provider does --------------------------


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_without_a_policy_the_fake_rejects_a_long_history(driver: Driver, provider: str,
                                                         server: FakeServer) -> None:
    fake = ContextLimitedProvider(provider)
    server.handler = fake
    conv = open_on(driver, provider, server)
    with pytest.raises(ContextLengthError):
        run_turns(driver, conv, [words(60, "mmx") for _ in range(8)])
    assert fake.rejected == 1


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("strategy", ["sliding", "oldest"])
def test_the_policy_keeps_every_request_under_the_limit(driver: Driver, provider: str,
                                                        strategy: str,
                                                        server: FakeServer) -> None:
    fake = ContextLimitedProvider(provider)
    server.handler = fake
    conv = open_on(driver, provider, server,
                   context=ContextPolicy(max_input_tokens=LIMIT, strategy=strategy))
    sent = [words(60, f"t{i}x") for i in range(10)]
    responses = run_turns(driver, conv, sent)
    assert len(responses) == 10 and fake.rejected == 0
    assert max(fake.sizes) <= LIMIT
    assert fake.sizes[-1] < sum(len(m) for m in sent) // 4  # older turns were left out
    # the stored history is complete
    stored = [m.text for m in history_of(driver, conv) if m.role == "user"]
    assert stored == sent
    last = server.requests[-1].json
    dump = json.dumps(last)
    assert "t9x000" in dump and "t3x000" not in dump
    # sliding pins the first turn; oldest does not
    assert ("t0x000" in dump) == (strategy == "sliding")


def test_sliding_is_the_default_strategy_and_budget_comes_from_the_model(server: FakeServer
                                                                         ) -> None:
    assert ContextPolicy().strategy == "sliding"
    assert context_window_for("gpt-4o-mini-2024-07-18") == 128000
    assert context_window_for("openai/gpt-4o") == 128000
    assert context_window_for("llama3.1:8b") == 131072
    assert context_window_for("no-such-model") is None
    # the window minus the prompt's max_tokens (the pack says 256), or minus 1024 by default
    assert ContextPolicy().budget("gpt-4o-mini", {"max_tokens": 256}) == 128000 - 256
    assert ContextPolicy().budget("gpt-4o-mini", {}) == 128000 - 1024
    assert ContextPolicy(reserve_output_tokens=0, context_window=5000).budget(
        "anything", {"max_tokens": 256}) == 5000
    assert ContextPolicy().budget("no-such-model", {}) is None


def test_a_context_window_override_drives_the_budget(driver: Driver, server: FakeServer) -> None:
    fake = ContextLimitedProvider("openai")
    server.handler = fake
    # the pack asks max_tokens 256: a window of LIMIT + 256 leaves LIMIT for input
    conv = open_on(driver, "openai", server,
                   context=ContextPolicy(context_window=LIMIT + 256))
    run_turns(driver, conv, [words(60, f"w{i}x") for i in range(8)])
    assert fake.rejected == 0 and max(fake.sizes) <= LIMIT


# --- tool rounds: a call and its result travel together -----------------------------------


def _assert_tool_pairs(body: dict[str, Any]) -> None:
    """Every OpenAI tool message follows the assistant message that made its call."""
    calls: set[str] = set()
    for message in body["messages"]:
        for call in message.get("tool_calls") or ():
            calls.add(call["id"])
        if message["role"] == "tool":
            assert message["tool_call_id"] in calls
    results = {m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"}
    assert calls <= results


@pytest.mark.parametrize("strategy", ["sliding", "oldest"])
def test_tool_rounds_are_never_split(driver: Driver, server: FakeServer, strategy: str) -> None:
    fake = ContextLimitedProvider("openai")
    tool_reply = WIRE / "openai-chat/tool-call-then-usage.sse"

    def handler(request: RecordedRequest) -> Reply:
        last = request.json["messages"][-1]
        if last["role"] == "user" and "CALL" in last["content"]:
            fake.sizes.append(request_tokens(request.json))
            return Reply.sse(tool_reply)
        return fake(request)

    server.handler = handler
    conv = open_on(driver, "openai", server,
                   context=ContextPolicy(max_input_tokens=LIMIT, strategy=strategy))

    def get_capital(country: str) -> str:
        """The capital of a country."""
        return "Paris " + words(30, "cap")

    conv.tool(get_capital)
    sent = [("CALL " if i % 2 else "") + words(45, f"r{i}x") for i in range(10)]
    run_turns(driver, conv, sent)
    assert fake.rejected == 0 and max(fake.sizes) <= LIMIT
    for request in server.requests:
        _assert_tool_pairs(request.json)
    stored = history_of(driver, conv)
    assert sum(m.tool_result is not None for m in stored) == 5  # all kept in the store


def test_turn_groups_keep_tool_calls_with_results() -> None:
    call = ToolCall(id="c1", name="f", arguments={})
    history = (Message(role="user", text="a"),
               Message(role="assistant", tool_calls=(call,)),
               Message(role="tool", tool_result=ToolResult(call_id="c1", name="f", content="1")),
               Message(role="assistant", text="done"),
               Message(role="user", text="b"), Message(role="assistant", text="ok"))
    groups = turn_groups(history)
    assert [len(g) for g in groups] == [4, 2]
    cost = message_tokens(history[4]) + message_tokens(history[5])
    fitted = fit_history(history, fixed=0, incoming=0, budget=cost, strategy="oldest")
    assert fitted.messages == history[4:] and fitted.dropped == history[:4]


# --- fail, and what cannot fit ------------------------------------------------------------


def test_fail_raises_before_sending(driver: Driver, server: FakeServer) -> None:
    fake = ContextLimitedProvider("openai")
    server.handler = fake
    conv = open_on(driver, "openai", server,
                   context=ContextPolicy(max_input_tokens=LIMIT, strategy="fail"))
    with pytest.raises(ContextLengthError, match=f"over the budget of {LIMIT}"):
        run_turns(driver, conv, [words(60, f"f{i}x") for i in range(8)])
    assert fake.rejected == 0  # it never reached the provider
    assert max(fake.sizes) <= LIMIT
    assert len(history_of(driver, conv)) % 2 == 0  # the failed turn left nothing behind


@pytest.mark.parametrize("strategy", ["sliding", "oldest", "summarize"])
def test_one_huge_message_fails_before_any_network_call(driver: Driver, server: FakeServer,
                                                        strategy: str) -> None:
    server.handler = ContextLimitedProvider("openai")
    conv = open_on(driver, "openai", server, context=ContextPolicy(
        max_input_tokens=LIMIT, strategy=strategy, summarizer=lambda m: "s"))
    with pytest.raises(ContextLengthError) as caught:
        run_turns(driver, conv, [words(1000, "hhx")])
    text = str(caught.value)
    assert "the new message" in text and f"the budget is {LIMIT}" in text
    needed = int(re.search(r"needs about (\d+) tokens", text).group(1))  # type: ignore[union-attr]
    assert 1750 < needed < 1800  # 7,000 characters and the system prompt
    assert server.requests == []
    assert history_of(driver, conv) == []


def test_a_budget_smaller_than_the_system_prompt_fails_at_open(driver: Driver,
                                                               server: FakeServer) -> None:
    with pytest.raises(ValueError, match="cannot hold the system prompt"):
        open_on(driver, "openai", server, context=ContextPolicy(max_input_tokens=5))
    with pytest.raises(ValueError, match="leaves nothing"):
        open_on(driver, "openai", server, context=ContextPolicy(
            context_window=100, reserve_output_tokens=100))
    with pytest.raises(TypeError, match="ContextPolicy"):
        open_on(driver, "openai", server, context={"max_input_tokens": 5})


@pytest.mark.parametrize("bad", [{"strategy": "middle"}, {"max_input_tokens": 0},
                                 {"max_input_tokens": True}, {"reserve_output_tokens": -1},
                                 {"context_window": 1.5}])
def test_bad_policies_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ContextPolicy(**bad)


# --- summarize -----------------------------------------------------------------------------


def test_summarize_with_a_summarizer_folds_once_and_reuses(driver: Driver,
                                                           server: FakeServer) -> None:
    fake = ContextLimitedProvider("openai")
    server.handler = fake
    folded: list[list[Message]] = []

    def summarizer(messages: Any) -> str:
        if not folded:  # nothing is folded while the whole history fits
            assert len(server.requests) >= 4
        folded.append(list(messages))
        return f"SUMMARY{len(folded)} of {len(messages)} messages"

    conv = open_on(driver, "openai", server, context=ContextPolicy(
        max_input_tokens=LIMIT, strategy="summarize", summarizer=summarizer))
    events: list[Any] = []
    conv.on("context.*", events.append)
    sent = [words(60, f"s{i}x") for i in range(8)]
    run_turns(driver, conv, sent)
    assert fake.rejected == 0 and max(fake.sizes) <= LIMIT
    assert 1 <= len(folded) < 8  # not recomputed every turn
    assert [e.name for e in events] == ["context.summarized"] * len(folded)
    assert events[0].data["folded_messages"] == len(folded[0])
    if len(folded) > 1:  # a later fold extends the previous summary
        assert folded[1][0].role == "system" and folded[1][0].text.startswith("SUMMARY1")
    system = server.requests[-1].json["messages"][0]
    assert system["role"] == "system"
    assert f"SUMMARY{len(folded)}" in system["content"]
    assert [m.text for m in history_of(driver, conv) if m.role == "user"] == sent


def test_summarize_by_the_conversations_own_provider(driver: Driver, server: FakeServer) -> None:
    fake = ContextLimitedProvider("openai")
    summaries = 0

    def handler(request: RecordedRequest) -> Reply:
        nonlocal summaries
        system = request.json["messages"][0]["content"]
        if system.startswith("You summarize conversations"):
            summaries += 1
            assert "s0x000" in request.json["messages"][1]["content"]
        return fake(request)

    server.handler = handler
    conv = open_on(driver, "openai", server,
                   context=ContextPolicy(max_input_tokens=LIMIT, strategy="summarize"))
    run_turns(driver, conv, [words(60, f"s{i}x") for i in range(6)])
    assert summaries >= 1 and fake.rejected == 0
    last = server.requests[-1].json["messages"][0]["content"]
    assert "Summary of the earlier conversation:" in last
    assert "The capital of the UK is London." in last  # the fixture's answer as the summary


def test_an_async_summarizer_runs_on_the_async_driver(server: FakeServer) -> None:
    server.handler = ContextLimitedProvider("openai")

    async def summarizer(messages: Any) -> str:
        await asyncio.sleep(0)
        return "ASYNC SUMMARY"

    conv = open_on(Driver("async"), "openai", server, context=ContextPolicy(
        max_input_tokens=LIMIT, strategy="summarize", summarizer=summarizer))
    run_turns(Driver("async"), conv, [words(60, f"a{i}x") for i in range(6)])
    assert "ASYNC SUMMARY" in server.requests[-1].json["messages"][0]["content"]


# --- events ---------------------------------------------------------------------------------


def test_truncation_emits_context_truncated(driver: Driver, server: FakeServer) -> None:
    server.handler = ContextLimitedProvider("openai")
    conv = open_on(driver, "openai", server, context=ContextPolicy(max_input_tokens=LIMIT))
    events: list[Any] = []
    conv.on("context.truncated", events.append)
    run_turns(driver, conv, [words(60, f"e{i}x") for i in range(6)])
    assert events, "a long conversation was truncated"
    data = events[-1].data
    assert data["strategy"] == "sliding" and data["budget"] == LIMIT
    assert data["dropped_messages"] >= 2 and data["estimated_tokens"] <= LIMIT
    assert events[-1].turn_index == 5


def test_fork_keeps_the_policy(server: FakeServer) -> None:
    fake = ContextLimitedProvider("openai")
    server.handler = fake
    conv = promptkit.open(ASSISTANT, "assistant", provider="openai", model="gpt-4o-mini",
                          api_key=KEY, base_url=server.url + "/v1",
                          variables={"user_name": "Ada"},
                          context=ContextPolicy(max_input_tokens=LIMIT))
    conv.send(words(60, "aax"))
    fork = conv.fork()
    for i in range(6):
        fork.send(words(60, f"k{i}x"))
    assert fake.rejected == 0


# --- the provider's reported usage corrects the estimate ------------------------------------


def test_reported_usage_corrects_the_estimate(driver: Driver, server: FakeServer) -> None:
    """A provider that counts 250 hidden tokens per request (as Anthropic's tool-use system
    prompt does) and reports them in usage: after one turn the policy counts them too."""
    hidden = 250
    text = (WIRE / "openai-chat/text-after-tool-result.sse").read_text()
    sizes: list[int] = []
    rejected = 0
    error = json.loads((WIRE / PROVIDERS["openai"][2]).read_text())

    def handler(request: RecordedRequest) -> Reply:
        nonlocal rejected
        size = request_tokens(request.json) + hidden
        sizes.append(size)
        if size > LIMIT:
            rejected += 1
            return Reply.json(400, error)
        return Reply.sse(re.sub(r'"prompt_tokens":\d+', f'"prompt_tokens":{size}',
                                text).encode())

    server.handler = handler
    conv = open_on(driver, "openai", server, context=ContextPolicy(max_input_tokens=LIMIT))
    run_turns(driver, conv, [words(60, f"u{i}x") for i in range(10)])
    assert rejected == 0 and max(sizes) <= LIMIT
    assert hidden - 25 <= conv._context.overhead <= hidden  # our estimate runs a little high


def test_pack_open_and_resume_take_a_policy(server: FakeServer, tmp_path: Any) -> None:
    fake = ContextLimitedProvider("openai")
    server.handler = fake
    pack = promptkit.load_pack(ASSISTANT)
    store = SQLiteStore(tmp_path / "c.db")
    options: dict[str, Any] = {
        "provider": "openai", "model": "gpt-4o-mini", "api_key": KEY,
        "base_url": server.url + "/v1", "variables": {"user_name": "Ada"}, "max_retries": 0,
        "context": ContextPolicy(max_input_tokens=LIMIT)}
    conv = pack.open("assistant", store=store, **options)
    for i in range(5):
        conv.send(words(60, f"p{i}x"))
    options.pop("variables")
    again = promptkit.resume(conv.id, pack, "assistant", store=store, **options)
    for i in range(5):
        again.send(words(60, f"q{i}x"))
    assert fake.rejected == 0 and max(fake.sizes) <= LIMIT
    assert len(again.messages) == 20  # stored in full


# --- properties of the pure fitting -------------------------------------------------------

@st.composite
def histories(draw: Any) -> tuple[Message, ...]:
    messages: list[Message] = []
    for turn in range(draw(st.integers(0, 8))):
        messages.append(Message(role="user", text="u" * draw(st.integers(0, 400))))
        for round_ in range(draw(st.integers(0, 2))):
            call = ToolCall(id=f"c{turn}-{round_}", name="f", raw_arguments="{}")
            messages.append(Message(role="assistant", tool_calls=(call,)))
            messages.append(Message(role="tool", tool_result=ToolResult(
                call_id=call.id, name="f", content="r" * draw(st.integers(0, 300)))))
        messages.append(Message(role="assistant", text="a" * draw(st.integers(0, 400))))
    return tuple(messages)


@settings(max_examples=200, deadline=None)
@given(history=histories(), budget=st.integers(20, 800), fixed=st.integers(0, 50),
       strategy=st.sampled_from(["sliding", "oldest"]))
def test_fitting_keeps_whole_turns_within_the_budget(history: tuple[Message, ...], budget: int,
                                                     fixed: int, strategy: Any) -> None:
    incoming = 10
    try:
        fitted = fit_history(history, fixed=fixed, incoming=incoming, budget=budget,
                             strategy=strategy)
    except ContextLengthError:
        assert fixed + incoming > budget
        return
    sent = fitted.messages
    assert fitted.tokens <= budget
    assert fitted.tokens == fixed + incoming + sum(map(message_tokens, sent))
    assert len(sent) + len(fitted.dropped) == len(history)
    groups = turn_groups(history)
    kept = turn_groups(sent)
    assert all(g in groups for g in kept)  # whole turns only
    calls = {c.id for m in sent for c in m.tool_calls}
    results = {m.tool_result.call_id for m in sent if m.tool_result is not None}
    assert calls == results  # never a call without its result, nor the reverse
    if kept:  # the newest turns that fit, and (sliding) the first one
        rest = kept[1:] if strategy == "sliding" and kept[0] == groups[0] else kept
        assert list(rest) == groups[len(groups) - len(rest):]
        if groups[len(groups) - len(rest) - 1:] and len(rest) < len(groups):
            dropped_newest = groups[len(groups) - len(rest) - 1]
            if not (strategy == "sliding" and dropped_newest == groups[0]):
                assert fitted.tokens + sum(map(message_tokens, dropped_newest)) > budget
