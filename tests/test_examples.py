"""Every example program runs offline (mock provider) and prints what its tutorial shows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support import REPO

EXAMPLES = REPO / "examples"
HELLO = str(EXAMPLES / "mock" / "hello.yaml")
WEATHER = str(EXAMPLES / "mock" / "weather.yaml")


def run_example(name: str, script: str | None = HELLO, stdin: str = "") -> str:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL")) and k != "OLLAMA_HOST"}
    env["PROMPTKIT_PROVIDER"] = "mock"
    if script:
        env["PROMPTKIT_MOCK_RESPONSES"] = script
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], input=stdin, text=True,
                          capture_output=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_covered() -> None:
    covered = set(CASES)
    assert covered == {p.name for p in EXAMPLES.glob("*.py")}


def _first(out: str) -> None:
    assert "Assistant: Hello Ada! It's lovely to meet you." in out
    assert "Assistant: Your name is Ada" in out
    assert "History: 4 messages" in out


def _streaming(out: str) -> None:
    assert out.startswith("Assistant: Hello Ada!") and out.rstrip().endswith("[Done]")


def _collect(out: str) -> None:
    assert "Total length: 57 characters" in out and "Tokens:" in out


def _progress(out: str) -> None:
    assert "[Complete - 57 characters in 12 chunks, first token after" in out


def _chat(out: str) -> None:
    assert out.count("You: ") == 3
    assert "Assistant: Hello Ada!" in out and "Assistant: Your name is Ada" in out


def _errors(out: str) -> None:
    assert "[Bad argument:" in out and "[Missing variable: user_name]" in out
    assert "Hello Ada!" in out


def _timeout(out: str) -> None:
    assert "Hello Ada!" in out


def _tools(out: str) -> None:
    assert "[calling get_weather({'city': 'London', 'country': 'GB'})]" in out
    assert '"temperature": 22.5' in out
    assert "22.5°C and partly cloudy in London" in out


def _variables(out: str) -> None:
    assert "The customer's name is Bob." in out
    assert "region: us-west | missing: None" in out
    assert "Bob Carol" in out and "4 4" in out


def _async(out: str) -> None:
    assert "Hello Ada!" in out and "(" in out


CASES = {
    "01_first_conversation.py": (HELLO, "", _first),
    "02_basic_streaming.py": (HELLO, "", _streaming),
    "03_collect_full_response.py": (HELLO, "", _collect),
    "04_progress_tracking.py": (HELLO, "", _progress),
    "05_interactive_chat.py": (HELLO, "Hello\nWhat is my name?\nquit\n", _chat),
    "06_error_handling.py": (HELLO, "", _errors),
    "07_timeout.py": (HELLO, "", _timeout),
    "08_tools_weather.py": (WEATHER, "", _tools),
    "09_variables_and_fork.py": (None, "", _variables),
    "10_async_streaming.py": (HELLO, "", _async),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example(name: str) -> None:
    script, stdin, check = CASES[name]
    check(run_example(name, script, stdin))
