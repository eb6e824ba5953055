"""The official SDK clients measured against the floors: ``openai`` and ``anthropic``."""

from __future__ import annotations

import json
from typing import Any

from bench_common import (
    CLAUDE,
    MODEL,
    SYSTEM,
    TOOL_USER,
    TOOLS_ANTHROPIC,
    TOOLS_OPENAI,
    USER,
    WEATHER,
    Job,
    Outcome,
    perf,
)


class OpenAISDK:
    """``AsyncOpenAI`` (defaults), ``stream=True`` with ``include_usage``."""

    async def setup(self, job: Job) -> None:
        import openai

        self.root = openai.AsyncOpenAI(base_url=job.base + "/v1", api_key="x")
        self.clients: dict[str, Any] = {}

    def _client(self, prefix: str) -> Any:
        """The one client, its base URL carrying the stream settings (same connection pool)."""
        client = self.clients.get(prefix)
        if client is None:
            client = self.clients[prefix] = self.root.with_options(base_url=prefix + "/v1")
        return client

    async def stream(self, prefix: str, tools: bool) -> Outcome:
        client = self._client(prefix)
        out = Outcome()
        started = perf()
        messages: list[Any] = [{"role": "system", "content": SYSTEM},
                               {"role": "user", "content": TOOL_USER if tools else USER}]
        extra: dict[str, Any] = {"tools": TOOLS_OPENAI} if tools else {}
        call_id, args = await self._one(client, messages, extra, out, started)
        if tools:
            messages += [{"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": "get_weather", "arguments": args}}]},
                {"role": "tool", "tool_call_id": call_id, "content": json.dumps(WEATHER)}]
            await self._one(client, messages, extra, out, started)
        return out

    async def _one(self, client: Any, messages: list[Any], extra: dict[str, Any], out: Outcome,
                   started: float) -> tuple[str, str]:
        call_id, args = "", []
        stream = await client.chat.completions.create(
            model=MODEL, messages=messages, stream=True,
            stream_options={"include_usage": True}, **extra)
        async with stream:
            async for chunk in stream:
                if chunk.choices:
                    delta = chunk.choices[0].delta
                    if delta.content:
                        if out.ttft is None:
                            out.ttft = perf() - started
                        out.n += 1
                    elif delta.tool_calls:
                        call = delta.tool_calls[0]
                        call_id = call.id or call_id
                        args.append(call.function.arguments or "")
        return call_id, "".join(args)

    async def close(self) -> None:
        await self.root.close()


class AnthropicSDK:
    """``AsyncAnthropic`` (defaults), ``messages.create(stream=True)`` (raw events)."""

    async def setup(self, job: Job) -> None:
        import anthropic

        self.root = anthropic.AsyncAnthropic(base_url=job.base, api_key="x")
        self.clients: dict[str, Any] = {}

    def _client(self, prefix: str) -> Any:
        client = self.clients.get(prefix)
        if client is None:
            client = self.clients[prefix] = self.root.with_options(base_url=prefix)
        return client

    async def stream(self, prefix: str, tools: bool) -> Outcome:
        client = self._client(prefix)
        out = Outcome()
        started = perf()
        messages: list[Any] = [{"role": "user", "content": TOOL_USER if tools else USER}]
        extra: dict[str, Any] = {"tools": TOOLS_ANTHROPIC} if tools else {}
        call_id, args = await self._one(client, messages, extra, out, started)
        if tools:
            messages += [
                {"role": "assistant", "content": [{"type": "tool_use", "id": call_id,
                                                   "name": "get_weather",
                                                   "input": json.loads(args)}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id,
                                              "content": json.dumps(WEATHER)}]}]
            await self._one(client, messages, extra, out, started)
        return out

    async def _one(self, client: Any, messages: list[Any], extra: dict[str, Any], out: Outcome,
                   started: float) -> tuple[str, str]:
        call_id, args = "", []
        stream = await client.messages.create(model=CLAUDE, max_tokens=1024, system=SYSTEM,
                                              messages=messages, stream=True, **extra)
        async with stream:
            async for event in stream:
                kind = event.type
                if kind == "content_block_delta":
                    if event.delta.type == "text_delta":
                        if out.ttft is None:
                            out.ttft = perf() - started
                        out.n += 1
                    elif event.delta.type == "input_json_delta":
                        args.append(event.delta.partial_json)
                elif kind == "content_block_start" and event.content_block.type == "tool_use":
                    call_id = event.content_block.id
        return call_id, "".join(args)

    async def close(self) -> None:
        await self.root.close()
