"""Test support for ``promptkit serve``: a live uvicorn on 127.0.0.1 (in a thread, or the real
``promptkit serve`` command in a subprocess), and a small SSE reader."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import uvicorn

from support import REPO

HELLO = REPO / "examples" / "hello.pack.json"
TOOLS = REPO / "examples" / "tools.pack.json"
WEATHER = REPO / "examples" / "mock" / "weather.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def parse_sse(raw: bytes) -> list[tuple[str, Any]]:
    """``(event, data)`` pairs of an SSE body (data decoded as JSON when it is JSON)."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        text = "\n".join(data)
        try:
            events.append((name, json.loads(text)))
        except ValueError:
            events.append((name, text))
    return events


class ServeProcess:
    """The real ``promptkit serve PACK ...`` command, on a free port."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None,
                 cwd: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "promptkit.cli.main", "serve", *args,
                     "--port", str(self.port)]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self, timeout: float = 20) -> ServeProcess:
        self.process = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.output += self.process.stdout.read() if self.process.stdout else ""
                raise RuntimeError(f"promptkit serve exited:\n{self.output}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"promptkit serve did not listen:\n{self.output}")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 20) -> int:
        assert self.process is not None
        out, _ = self.process.communicate(timeout=timeout)
        self.output += out or ""
        return self.process.returncode

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.wait(5)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_lines(response: Any) -> Iterator[bytes]:
    """Lines of a streaming ``http.client`` response."""
    while True:
        line = response.readline()
        if not line:
            return
        yield line
