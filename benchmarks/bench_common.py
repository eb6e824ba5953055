"""What the benchmark clients share: the workload's constants and the job description."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACK = HERE / "bench.pack.json"
SYSTEM = "You are a helpful assistant. Answer briefly."
USER = "Hello! Tell me something interesting."
TOOL_USER = "What's the weather in London?"
MODEL = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-5"
TOOLS_OPENAI = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city name"},
        "country": {"type": "string", "description": "The country code or name"}},
        "required": ["city", "country"]}}}]
TOOLS_ANTHROPIC = [{"name": "get_weather", "description": "Get current weather for a city",
                    "input_schema": TOOLS_OPENAI[0]["function"]["parameters"]}]  # type: ignore[index]
WEATHER = {"city": "London", "temperature": 22.5, "conditions": "Partly cloudy"}
H_OPENAI = {"content-type": "application/json", "accept": "text/event-stream",
            "authorization": "Bearer x"}
H_ANTHROPIC = {"content-type": "application/json", "accept": "text/event-stream",
               "x-api-key": "x", "anthropic-version": "2023-06-01"}

perf = time.perf_counter


@dataclass
class Job:
    """What one client process does (decoded from the JSON argument)."""

    client: str
    mode: str  # cpu | idle | conc | check
    base: str  # http://127.0.0.1:PORT
    streams: int = 1  # cpu: streams in the measured loop
    chunks: int = 30
    first: float = 0.0
    gap: float = 0.0
    tools: bool = False
    concurrency: int = 1
    rounds: int = 1

    def prefix(self, chunks: int | None = None, first: float | None = None,
               gap: float | None = None) -> str:
        """Base URL carrying the stream settings (every SDK keeps a base URL's path)."""
        c = self.chunks if chunks is None else chunks
        f = self.first if first is None else first
        g = self.gap if gap is None else gap
        return f"{self.base}/cfg/chunks={c},first={f},gap={g},tools={int(self.tools)}"


class Outcome:
    __slots__ = ("n", "ttft")

    def __init__(self) -> None:
        self.n = 0
        self.ttft: float | None = None
