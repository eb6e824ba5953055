"""A real llama-cpp-python server for the ``realmodel`` tests: ``python -m llama_cpp.server``
with Gemma 3 270M on a free 127.0.0.1 port, small context, two threads, stopped afterwards.

    with LlamaServer(model_path, log_dir) as server:
        promptkit.open(pack, "chat", provider="llamacpp", base_url=server.base_url)

:func:`skip_reason` says why the suite cannot run here (llama-cpp-python not installed, the
model not fetched); once both are present, a server that does not start is a failure.
"""

from __future__ import annotations

import http.client
import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from fetch_test_model import MODEL_FILE, cache_dir, cached_model

__all__ = ["LlamaServer", "skip_reason"]

#: generous for a busy 2-core machine; the 253 MB model loads in about a second when idle
START_TIMEOUT = 90.0
CONTEXT_TOKENS = 1024
THREADS = 2


def skip_reason() -> str | None:
    """Why the real-model suite cannot run here, or ``None`` when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return ("llama-cpp-python is not installed: pip install -e '.[realmodel]' "
                "(.ci/run does)")
    # in a child process: the [server] extra (fastapi, uvicorn ...) and the native library
    # load there as they will for the server, away from this process's warning filters
    probe = subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"],
                           capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"llama-cpp-python's server cannot be imported ({last}): "
                "pip install -e '.[realmodel]'")
    if cached_model() is None:
        return (f"{MODEL_FILE} is not in {cache_dir()} (or its SHA256 differs): run "
                "python tests/fetch_test_model.py (.ci/run does)")
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/v1/models")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class LlamaServer:
    """One ``llama_cpp.server`` process serving ``model`` with the Gemma chat format."""

    def __init__(self, model: Path, log_dir: Path) -> None:
        self.model = model
        self.log = log_dir / "llama-server.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until ``GET /v1/models`` answers 200."""
        port = _free_port()
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
                   "--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(port),
                   "--n_ctx", str(CONTEXT_TOKENS), "--n_threads", str(THREADS),
                   "--n_threads_batch", str(THREADS), "--verbose", "False"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            if _ready(port):
                self.port = port
                return
            time.sleep(0.1)
        code = self.process.poll()
        self.stop()
        tail = self.log.read_text(errors="replace")[-1500:]
        state = f"exited with {code}" if code is not None else f"not ready in {START_TIMEOUT}s"
        raise RuntimeError(f"llama_cpp.server {state}; its log ends:\n{tail}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; waits for the process to exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
