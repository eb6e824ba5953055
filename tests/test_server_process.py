"""The real ``promptkit serve`` command: banner, refusals, SIGTERM draining in-flight streams,
and ``--workers N`` sharing one store (SQLite file or a real redis-server)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from promptkit.server.serve import ServeConfig, ServeError, check
from redis_server import start_or_skip

from serve_support import HELLO, ServeProcess, parse_sse
from support import REPO

TESTS = Path(__file__).parent


def call(url: str, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"content-type": "application/json", **(headers or {})})
    response = conn.getresponse()
    result = response.status, response.read()
    conn.close()
    return result


def create(url: str, headers: dict[str, str] | None = None) -> str:
    status, body = call(url, "POST", "/v1/conversations",
                        {"prompt": "chat", "variables": {"user_name": "Ada"}}, headers)
    assert status == 201, body
    return str(json.loads(body)["id"])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptkit.cli.main", "serve", *args],
                          check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_the_banner_says_url_prompts_store_and_auth_but_never_the_token() -> None:
    token = "tok-banner-7f3e9a1c2b"
    with ServeProcess(str(HELLO), "--provider", "mock",
                      env={"PROMPTKIT_SERVE_TOKEN": token}) as server:
        assert call(server.url, "GET", "/v1/prompts")[0] == 401
        assert call(server.url, "GET", "/v1/prompts",
                    headers={"authorization": f"Bearer {token}"})[0] == 200
    out = server.output
    assert f"URL       http://127.0.0.1:{server.port}/" in out
    assert "prompts   chat" in out and "store     memory" in out
    assert "auth      on" in out and "provider  mock:" in out
    assert token not in out


def test_refusals_say_what_to_do() -> None:
    result = run_cli(str(HELLO), "--provider", "mock", "--host", "0.0.0.0")
    assert result.returncode == 2 and "set a token" in result.stderr
    assert "--no-auth" in result.stderr
    result = run_cli(str(HELLO), "--provider", "mock", "--workers", "2")
    assert result.returncode == 2
    assert "--workers 2 needs a shared store" in result.stderr and "sqlite:PATH" in result.stderr
    result = run_cli(str(HELLO))  # no provider configured: no silent mock
    assert result.returncode == 1 and "ProviderNotConfiguredError" in result.stderr
    assert "--provider mock" in result.stderr
    result = run_cli(str(HELLO), "--provider", "mock", "--store", "ftp://x")
    assert result.returncode == 2 and "unknown --store" in result.stderr
    # the checks that pass
    check(ServeConfig(pack="p", host="0.0.0.0"), token="t")
    check(ServeConfig(pack="p", host="0.0.0.0", no_auth=True), token=None)
    check(ServeConfig(pack="p", host="::1"), token=None)
    with pytest.raises(ServeError):
        check(ServeConfig(pack="p", host="192.168.1.5"), token=None)


def test_without_the_serve_extra_the_command_names_it() -> None:
    code = ("import sys; sys.modules['starlette'] = None; from promptkit.cli.main import main; "
            f"sys.exit(main(['serve', {str(HELLO)!r}, '--provider', 'mock']))")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "pip install 'promptkit-sdk[serve]'" in result.stderr
    code = ("import sys; sys.modules['starlette'] = None; import promptkit.server as s\n"
            "try:\n    s.create_app\nexcept ImportError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True, timeout=60)
    assert "promptkit-sdk[serve]" in result.stdout


def _paced_script(tmp_path: Path, words: int, delay: float) -> str:
    path = tmp_path / "paced.json"
    path.write_text(json.dumps({"defaultResponse": " ".join(f"w{i}" for i in range(words)),
                                "delay": delay}))
    return str(path)


def _stream_in_background(url: str, conversation: str, content: str
                          ) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    result: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", f"/v1/conversations/{conversation}/messages",
                     body=json.dumps({"content": content}),
                     headers={"content-type": "application/json"})
        response = conn.getresponse()
        raw = response.readline()
        started.set()
        try:
            raw += response.read()
        except (http.client.IncompleteRead, ConnectionError) as exc:
            raw += getattr(exc, "partial", b"")
        result["raw"] = raw
        conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result, started


def test_sigterm_drains_in_flight_streams_and_loses_no_committed_turn(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'chats.db'}"
    script = _paced_script(tmp_path, 20, 0.05)  # a one-second reply
    server = ServeProcess(str(HELLO), "--provider", "mock", "--mock-responses", script,
                          "--store", store, "--grace", "10").start()
    try:
        conversation = create(server.url)
        assert parse_sse(call(server.url, "POST", f"/v1/conversations/{conversation}/messages",
                              {"content": "one"})[1])[-1][0] == "done"
        thread, result, started = _stream_in_background(server.url, conversation, "two")
        assert started.wait(10)
        server.terminate()  # mid-stream
        thread.join(20)
        # uvicorn re-raises the SIGTERM after its graceful shutdown: "killed by SIGTERM"
        assert server.wait(20) in (0, -15)
    finally:
        server.stop()
    events = parse_sse(result["raw"])
    assert events[-1][0] == "done"  # the in-flight reply was allowed to finish
    assert "Finished server process" in server.output
    with ServeProcess(str(HELLO), "--provider", "mock", "--store", store) as again:
        messages = json.loads(call(again.url, "GET", f"/v1/conversations/{conversation}")[1])
    assert [m["text"] for m in messages["messages"] if m["role"] == "user"] == ["one", "two"]


def test_past_the_grace_period_a_stream_is_cut_and_commits_nothing(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'chats.db'}"
    script = _paced_script(tmp_path, 100, 0.05)  # a five-second reply
    server = ServeProcess(str(HELLO), "--provider", "mock", "--mock-responses", script,
                          "--store", store, "--grace", "0.5").start()
    try:
        conversation = create(server.url)
        call(server.url, "POST", f"/v1/conversations/{conversation}/messages",
             {"content": "quick"})
        thread, result, started = _stream_in_background(server.url, conversation, "slow")
        assert started.wait(10)
        server.terminate()
        thread.join(20)
        server.wait(20)
    finally:
        server.stop()
    assert b"event: done" not in result["raw"].split(b"\n", 1)[0]
    with ServeProcess(str(HELLO), "--provider", "mock", "--store", store) as again:
        messages = json.loads(call(again.url, "GET", f"/v1/conversations/{conversation}")[1])
    users = [m["text"] for m in messages["messages"] if m["role"] == "user"]
    assert users == ["quick"]  # the committed turn is kept, the cut one left no trace
    assert len(messages["messages"]) == 2


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_workers_share_the_store_and_continue_each_others_conversations(
        kind: str, tmp_path: Path) -> None:
    if kind == "redis":
        (tmp_path / "redis").mkdir()
        redis = start_or_skip(tmp_path / "redis")
        store = redis.url
    else:
        redis = None
        store = f"sqlite:{tmp_path / 'chats.db'}"
    probes = tmp_path / "probes"
    probes.mkdir()
    env = {"PROMPTKIT_PROBE_DIR": str(probes),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    try:
        with ServeProcess(str(HELLO), "--provider", "mock", "--store", store, "--workers", "2",
                          "--setup", "serve_probe:record", "--no-access-log", env=env,
                          cwd=REPO) as server:
            conversation = create(server.url)
            turns = 0
            while turns < 80:
                turns += 1
                status, body = call(server.url, "POST",
                                    f"/v1/conversations/{conversation}/messages",
                                    {"content": f"m{turns}", "stream": turns % 2 == 0},
                                    headers={"connection": "close"})
                assert status == 200, body
                if turns >= 4 and len(list(probes.glob(f"{conversation}.*"))) >= 2:
                    break
            workers = {p.suffix for p in probes.glob(f"{conversation}.*")}
            assert len(workers) == 2, "both workers served the conversation"
            got = json.loads(call(server.url, "GET", f"/v1/conversations/{conversation}")[1])
    finally:
        if redis is not None:
            redis.stop()
    texts = [m["text"] for m in got["messages"]]
    assert texts[0::2] == [f"m{i}" for i in range(1, turns + 1)]
    assert texts[1::2] == [f"Mock response from mock-model to: m{i}"
                           for i in range(1, turns + 1)]
