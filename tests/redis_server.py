"""A real ``redis-server`` for tests: started on a free 127.0.0.1 port in a temporary directory,
with an append-only file so a restart keeps the data, and stopped afterwards.

    with RedisServer(tmp_path) as server:
        store = RedisStore(server.url)

``.ci/run`` installs the Debian package; where the binary is missing or cannot start, the
fixtures built on this skip with the reason.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer", "RedisUnavailable", "start_or_skip"]


class RedisUnavailable(RuntimeError):
    """redis-server is not installed or did not start; the message says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; :meth:`restart` keeps its port and its data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (the Debian package "
                                   "redis-server; .ci/run installs it)")
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server (on a new free port the first time, the same port afterwards)."""
        if self.process is not None:
            raise RuntimeError("this redis-server is already running")
        last = ""
        for _ in range(3):  # the free port may be taken between choosing and binding it
            port = self.port or _free_port()
            log = self.directory / "redis.log"
            self.process = subprocess.Popen(
                [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                 str(self.directory), "--save", "", "--appendonly", "yes",
                 "--appendfsync", "always", "--daemonize", "no", "--logfile", str(log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                if _ping(port) and self.process.poll() is None:
                    self.port = port
                    return
                time.sleep(0.02)
            self.stop()
            last = log.read_text(errors="replace")[-500:] if log.exists() else "no log"
        raise RedisUnavailable(f"redis-server did not start: {last}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def start_or_skip(directory: Path) -> RedisServer:
    """A started server, or skip the calling test (module) saying why there is none."""
    import pytest

    try:
        server = RedisServer(directory)
        server.start()
    except RedisUnavailable as exc:
        pytest.skip(f"no Redis for this test: {exc}")
    return server
