"""Test support: data paths and a driver adapter that runs a scenario through the sync or the
async conversation, so one test body checks both."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promptkit
from promptkit import StreamChunk

DATA = Path(__file__).parent / "data"
PACKS = DATA / "packs"
WIRE = DATA / "wire"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Driver:
    """Runs conversation operations through the sync or the async API."""

    kind: str

    @property
    def is_async(self) -> bool:
        return self.kind == "async"

    def open(self, pack: Any, prompt: str, **options: Any) -> Any:
        if self.is_async:
            return promptkit.open_async(pack, prompt, **options)
        return promptkit.open(pack, prompt, **options)

    def stream(self, conv: Any, message: Any, **options: Any) -> list[StreamChunk]:
        if not self.is_async:
            return list(conv.stream(message, **options))

        async def go() -> list[StreamChunk]:
            return [chunk async for chunk in conv.stream(message, **options)]

        return asyncio.run(go())

    def send(self, conv: Any, message: Any, **options: Any) -> promptkit.Response:
        if self.is_async:
            return asyncio.run(conv.send(message, **options))  # type: ignore[no-any-return]
        return conv.send(message, **options)  # type: ignore[no-any-return]

    def fork(self, conv: Any) -> Any:
        return asyncio.run(conv.fork()) if self.is_async else conv.fork()

    def clear(self, conv: Any) -> None:
        if self.is_async:
            asyncio.run(conv.clear())
        else:
            conv.clear()

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn``; if it returns an awaitable (async driver), run it to completion."""
        value = fn()
        if asyncio.iscoroutine(value):
            return asyncio.run(value)
        return value


def texts(chunks: list[StreamChunk]) -> str:
    return "".join(c.text for c in chunks if c.type is promptkit.ChunkType.TEXT)


def kinds(chunks: list[StreamChunk]) -> list[str]:
    return [c.type.value for c in chunks]


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without provider credentials or endpoints, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL")) and k not in ("OLLAMA_HOST",
                                                                     "PROMPTKIT_PROVIDER")}
    env.update(extra)
    return env


def run_cli(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m promptkit.cli.main ARGS`` in a clean provider environment."""
    return subprocess.run([sys.executable, "-m", "promptkit.cli.main", *args], input=stdin,
                          text=True, capture_output=True, env=cli_env(**env), timeout=60,
                          check=False)
