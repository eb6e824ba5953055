"""The promptkit command: validate, inspect, send and the interactive chat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promptkit.cli.main import main
from promptkit.testing import FakeServer, Reply

from support import PACKS, REPO, WIRE, cli_env, run_cli

HELLO = REPO / "examples" / "hello.pack.json"
KEY = "sk-cli-secret-0123456789abcdefghij"



def test_validate_accepts_valid_packs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(HELLO), str(PACKS / "assistant.pack.json")]) == 0
    out = capsys.readouterr().out
    assert f"{HELLO}: ok (1 prompt(s), 0 tool(s))" in out


def test_validate_lists_every_problem_with_positions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pack.json"
    bad.write_text(json.dumps({
        "id": "Bad Id", "name": "x", "version": "1.0.0",
        "template_engine": {"version": "v1", "syntax": "{{variable}}"},
        "prompts": {"chat": {"id": "chat", "name": "Chat", "version": "nope",
                             "system_template": "hi"}},
    }, indent=2))
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:2:9: error: $.id:" in out
    assert "$.prompts.chat.version" in out


def test_validate_reports_malformed_json_and_missing_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.pack.json"
    broken.write_text('{\n  "id": "x",\n  "name": \n}')
    assert main(["validate", str(broken)]) == 1
    assert f"{broken}:4:1: error:" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "missing.json")]) == 2


def test_inspect_shows_prompts_variables_and_tools(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(PACKS / "assistant.pack.json"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    prompt = info["prompts"]["assistant"]
    assert [v["name"] for v in prompt["variables"]] == ["user_name", "style", "language"]
    assert prompt["tools"] == ["get_weather", "get_time"]
    assert sorted(info["tools"]) == ["get_time", "get_weather"]
    assert main(["inspect", str(HELLO)]) == 0
    assert "var  user_name: string (required)" in capsys.readouterr().out


def test_send_streams_text_offline() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi there", "--var", "user_name=Ada")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Mock response from mock-model to: hi there\n"
    assert "offline mock provider" in done.stderr


def test_send_json_prints_one_object_per_chunk() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada", "--json",
                   "--provider", "mock")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["type"] for line in lines][-1] == "done"
    assert "".join(line.get("text", "") for line in lines) == lines[-1]["response"]["text"]
    assert lines[-1]["response"]["usage"]["output_tokens"] > 0
    # the done line is Response.to_dict()
    assert set(lines[-1]["response"]) >= {"text", "usage", "tool_calls", "tool_results",
                                          "pending_tools", "model", "provider"}
    assert done.stderr == ""


def test_send_reports_provider_errors_without_leaking_the_key() -> None:
    body = json.loads((WIRE / "openai-chat" / "error-401-invalid-api-key.json").read_text())
    with FakeServer([Reply.json(401, body)]) as server:
        done = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                       "--provider", "openai", "--base-url", server.url + "/v1",
                       OPENAI_API_KEY=KEY)
    assert done.returncode == 1
    assert "AuthenticationError" in done.stderr
    assert KEY not in done.stderr + done.stdout


def test_send_missing_variable_is_a_clear_error() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi", "--provider", "mock")
    assert done.returncode == 1
    assert "MissingVariableError" in done.stderr and "user_name" in done.stderr


def test_chat_streams_offline_and_keeps_history() -> None:
    done = run_cli("chat", str(HELLO), "chat", "--var", "user_name=Ada",
                   stdin="Hello\nWhat is my name?\n/exit\n")
    assert done.returncode == 0, done.stderr
    assert "offline mock provider" in done.stderr
    assert "Mock response from mock-model to: Hello" in done.stdout
    assert "Mock response from mock-model to: What is my name?" in done.stdout
    assert done.stdout.count("tokens · $0.00000 · first token") == 2


def test_chat_without_a_terminal_does_not_take_piped_lines_as_variables() -> None:
    # (asking on a terminal: test_cli_terminal.test_chat_on_a_terminal_asks_...)
    done = run_cli("chat", str(HELLO), "chat", "--provider", "mock", stdin="Ada\nHi\n")
    assert done.returncode == 1
    assert "user_name" in done.stderr and "--var" in done.stderr


def test_ctrl_c_stops_the_answer_and_keeps_the_conversation(tmp_path: Path) -> None:
    script = tmp_path / "slow.yaml"
    script.write_text("delay: 0.1\nturns:\n  1: " + " ".join(["word"] * 40) + "\n  2: done now\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptkit.cli.main", "chat", str(HELLO), "chat",
         "--var", "user_name=Ada", "--mock-responses", str(script)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(PYTHONUNBUFFERED="1"),
        # A background job inherits SIGINT ignored, and Python then keeps it ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("tell me\n")
    proc.stdin.flush()
    seen = ""
    deadline = time.monotonic() + 20
    while "word word" not in seen and time.monotonic() < deadline:
        seen += os.read(proc.stdout.fileno(), 4096).decode()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate("next\n/exit\n", timeout=30)
    seen += out
    assert proc.returncode == 0, err
    assert "stopped" in seen
    # The stopped turn left no trace in the history, so the next one is the script's turn 1
    # again, this time streamed to its end.
    assert " ".join(["word"] * 40) in seen
    assert seen.count("tokens · $0.00000") == 1


def test_a_requested_model_is_never_answered_by_the_mock() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                   "--model", "gpt-4o", "--json")
    assert done.returncode == 1
    assert "OPENAI_API_KEY" in done.stderr and "offline mock" not in done.stderr
    error = json.loads(done.stdout.splitlines()[-1])["error"]
    assert error["type"] == "ProviderNotConfiguredError"
