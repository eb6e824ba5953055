"""``promptkit chat/send --session NAME`` and ``promptkit sessions list|show|delete``: named chats
in a SQLite file in the user's data directory (``PROMPTKIT_DATA_DIR`` in these tests)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promptkit.cli.main import main
from promptkit.cli.sessions import DATA_DIR_ENV, data_dir, sessions_path

from support import PACKS

HELLO = str(PACKS / "hello.pack.json")


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv(DATA_DIR_ENV, str(home))
    return home


def send(*args: str) -> int:
    return main(["send", HELLO, "chat", *args, "--provider", "mock"])


def test_send_with_a_session_then_list_show_and_delete(
        capsys: pytest.CaptureFixture[str], data_home: Path) -> None:
    assert send("hi there", "--session", "ada", "--var", "user_name=Ada") == 0
    first = capsys.readouterr()
    assert f"New session 'ada', saved in {data_home / 'sessions.db'}" in first.err
    assert "Mock response" in first.out
    assert send("again", "--session", "ada") == 0  # no --var: the saved name is used
    assert "Resumed session 'ada' (1 earlier turn(s))" in capsys.readouterr().err

    assert main(["sessions", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PACK", "PROMPT", "MESSAGES", "UPDATED"]
    assert lines[1].split()[:4] == ["ada", "hello-example", "chat", "4"]

    assert main(["sessions", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["message_count"], listed["variables"]) == (
        "ada", 4, {"user_name": "Ada"})

    assert main(["sessions", "show", "ada"]) == 0
    shown = capsys.readouterr().out
    assert "variables user_name=Ada" in shown and "pack      hello-example 1.0.0" in shown
    assert "you› hi there" in shown and "you› again" in shown and "ai›  Mock response" in shown

    assert main(["sessions", "show", "ada", "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"] * 2
    assert detail["pack_id"] == "hello-example" and detail["version"] == 2

    assert main(["sessions", "delete", "ada"]) == 0
    assert "Deleted session 'ada'." in capsys.readouterr().out
    assert main(["sessions", "list"]) == 0
    assert "No sessions yet" in capsys.readouterr().out
    assert main(["sessions", "show", "ada"]) == 1
    assert "no session named 'ada'" in capsys.readouterr().err
    assert main(["sessions", "delete", "ada"]) == 1


def test_listing_before_any_session_creates_nothing(
        capsys: pytest.CaptureFixture[str], data_home: Path) -> None:
    assert main(["sessions", "list"]) == 0
    assert "No sessions yet" in capsys.readouterr().out
    assert main(["sessions", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not data_home.exists()


def test_invalid_session_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert send("hi", "--session", "my chat", "--var", "user_name=A") == 1
    assert "invalid session name 'my chat'" in capsys.readouterr().err
    assert main(["sessions", "show", "../../etc"]) == 1
    assert "invalid session name" in capsys.readouterr().err


def test_a_session_belongs_to_its_pack(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    assert send("hi", "--session", "s", "--var", "user_name=A") == 0
    other = json.loads(Path(HELLO).read_text())
    other["id"] = "another-pack"
    path = tmp_path / "other.pack.json"
    path.write_text(json.dumps(other))
    capsys.readouterr()
    assert main(["send", str(path), "chat", "hi", "--session", "s", "--provider", "mock"]) == 1
    assert "belongs to pack 'hello-example', not 'another-pack'" in capsys.readouterr().err
    # A new version of the same pack continues, with a notice rather than a Python warning.
    other["id"] = "hello-example"
    other["version"] = "2.0.0"
    path.write_text(json.dumps(other))
    assert main(["send", str(path), "chat", "hi", "--session", "s", "--provider", "mock"]) == 0
    err = capsys.readouterr().err
    assert "saved with version 1.0.0 of pack 'hello-example'; continuing it with version " \
           "2.0.0" in err and "Warning" not in err


def test_chat_session_in_process(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for line in ("first message", "second message"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(f"{line}\n/exit\n"))
        assert main(["chat", HELLO, "chat", "--provider", "mock", "--session", "talk",
                     "--var", "user_name=Ada"]) == 0
    captured = capsys.readouterr()
    assert "Resumed session 'talk' (1 earlier turn(s))" in captured.err
    assert main(["sessions", "show", "talk", "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert [m["text"] for m in detail["messages"] if m["role"] == "user"] == [
        "first message", "second message"]


def test_chat_session_resumes_in_a_new_process(data_home: Path) -> None:
    env = {**os.environ, DATA_DIR_ENV: str(data_home)}
    command = [sys.executable, "-m", "promptkit.cli.main", "chat", HELLO, "chat",
               "--provider", "mock", "--session", "work"]
    first = subprocess.run([*command, "--var", "user_name=Ada"], input="remember me\n",
                           text=True, capture_output=True, env=env, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(command, input="do you?\n/exit\n", text=True, capture_output=True,
                            env=env, timeout=60, check=False)
    assert second.returncode == 0, second.stderr
    assert "Resumed session 'work' (1 earlier turn(s))" in second.stderr
    shown = subprocess.run([sys.executable, "-m", "promptkit.cli.main", "sessions", "show",
                            "work"], text=True, capture_output=True, env=env, timeout=60,
                           check=False)
    assert "you› remember me" in shown.stdout and "you› do you?" in shown.stdout


def test_the_default_data_dir_is_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv(DATA_DIR_ENV)
    assert data_dir() == Path(platformdirs.user_data_dir("promptkit", appauthor=False))
    assert sessions_path().name == "sessions.db"
    monkeypatch.setenv(DATA_DIR_ENV, "~/pk")
    assert data_dir() == Path.home() / "pk"
