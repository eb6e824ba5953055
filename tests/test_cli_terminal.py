"""The CLI meets untrusted text and no terminal: control sequences stripped, keys scrubbed,
no prompting without a TTY, slash commands, session notices, conflicts, unknown usage."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promptkit
from promptkit.cli._terminal import TerminalSanitizer, safe_json, safe_text
from promptkit.cli.main import main
from promptkit.testing import FakeServer, Reply

from support import REPO, Driver, cli_env, run_cli

HELLO = REPO / "examples" / "hello.pack.json"
HOSTILE = ["plain \x1b[2J", "cleared\x1b]0;pwned title\x07 ", "\x1b]52;c;ZWNobyBoaQ==\x1b\\",
           "clip \x9b31mred\x9b0m", " bare\x1b", "c esc\x1b[", "1;31", "m split\r\n", "ok\x07"]
CONTROLS = [chr(c) for c in [*range(9), *range(11, 32), *range(127, 160)]]



def openai_sse(pieces: list[str], *, usage: bool = True, model: str = "gpt-4o-mini") -> bytes:
    """An OpenAI Chat stream whose text deltas are ``pieces`` (usage at the end if asked)."""
    events = [{"id": "c1", "object": "chat.completion.chunk", "model": model,
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                            "finish_reason": None}]} for piece in pieces]
    events.append({"id": "c1", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({"id": "c1", "object": "chat.completion.chunk", "model": model,
                       "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5,
                                                "total_tokens": 17}})
    body = "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events)
    return (body + "data: [DONE]\n\n").encode()


def no_controls(text: str) -> bool:
    return not any(c in text for c in CONTROLS if c not in "\n\t")


# --- the sanitiser --------------------------------------------------------------------------


def test_escape_sequences_and_controls_are_removed_whole() -> None:
    assert safe_text("a\x1b[2Jb") == "ab"                      # CSI: clear screen
    assert safe_text("a\x1b]0;title\x07b") == "ab"             # OSC 0: window title (BEL)
    assert safe_text("a\x1b]52;c;aGk=\x1b\\b") == "ab"         # OSC 52: clipboard (ST)
    assert safe_text("a\x9b31mb\x9d0;t\x9cc") == "abc"         # C1 CSI, C1 OSC ... C1 ST
    assert safe_text("a\x1bPq#0\x1b\\b") == "ab"               # DCS (sixel)
    assert safe_text("a\x1bcb\x1b(Bc") == "abc"                # ESC c (reset), charset
    assert safe_text("bare\x1b") == "bare"
    assert safe_text("x\r\ny\tz\x00\x08\x7f\x85") == "x\ny\tz"  # keep \n and \t only
    assert safe_text("ünïcødé — 日本 [bold]x[/]") == "ünïcødé — 日本 [bold]x[/]"


def test_a_sequence_split_across_chunks_is_still_removed() -> None:
    sanitizer = TerminalSanitizer()
    out = "".join(sanitizer.feed(piece) for piece in HOSTILE) + sanitizer.flush()
    assert out == safe_text("".join(HOSTILE))
    assert out == "plain cleared clip red bare esc split\nok"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "é", " ", "\n", "\t", "\x1b", "[", "]", "2", ";", "J",
                                 "m", "P", "\\", "\x07", "\x9b", "\x9c", "\x9d", "\x90", "\r",
                                 "\x00", "0", "c", "("]), max_size=40),
       st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_streaming_sanitiser_matches_the_whole_text_and_is_safe(
        symbols: list[str], cuts: list[int]) -> None:
    text = "".join(symbols)
    bounds = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    sanitizer = TerminalSanitizer()
    out = "".join(sanitizer.feed(p) for p in pieces) + sanitizer.flush()
    assert out == safe_text(text)
    assert no_controls(out)


def test_json_output_escapes_c1_controls_without_changing_the_data() -> None:
    value = {"text": "a\x9b2J\x1b[0m\x7f"}
    line = safe_json(value)
    assert no_controls(line) and json.loads(line) == value


# --- what chat and send print ----------------------------------------------------------------


def test_send_strips_control_sequences_and_raw_keeps_them() -> None:
    with FakeServer([Reply.sse(openai_sse(HOSTILE)) for _ in range(3)]) as server:
        url = server.url + "/v1"
        plain = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                        "--base-url", url, "--model", "gpt-4o-mini")
        raw = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                      "--base-url", url, "--model", "gpt-4o-mini", "--raw")
        as_json = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                          "--base-url", url, "--model", "gpt-4o-mini", "--json")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "plain cleared clip red bare esc split\nok\n"
    # (text mode reads "\r\n" as "\n"; every other byte arrives as the model sent it)
    assert raw.stdout == "".join(HOSTILE).replace("\r\n", "\n") + "\n"
    assert no_controls(as_json.stdout)
    final = json.loads(as_json.stdout.splitlines()[-1])
    assert final["response"]["text"] == "".join(HOSTILE)  # the data itself is unchanged


def test_chat_strips_control_sequences_from_text_tools_and_errors() -> None:
    tool_stream = [
        {"id": "c2", "object": "chat.completion.chunk", "model": "m", "choices": [{
            "index": 0, "finish_reason": None, "delta": {"role": "assistant", "tool_calls": [{
                "index": 0, "id": "call_1", "type": "function", "function": {
                    "name": "get_weather", "arguments": '{"city": "\x1b]52;c;aGk=\x07Lon"}'}}]}}]},
        {"id": "c2", "object": "chat.completion.chunk", "model": "m",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    tool_body = "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in tool_stream)
    replies = [
        Reply.sse(openai_sse(HOSTILE)),
        Reply.sse((tool_body + "data: [DONE]\n\n").encode()),
        Reply.sse(openai_sse(["fine \x9b2J"])),
        Reply.json(400, {"error": {"message": "bad \x1b[2J\x1b]0;x\x07 [/] request"}}),
    ]
    with FakeServer(replies) as server:
        done = run_cli("chat", str(REPO / "examples" / "tools.pack.json"), "assistant",
                       "--base-url", server.url + "/v1", "--model", "gpt-4o-mini",
                       stdin="one\nweather?\ntwo\n/exit\n")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert no_controls(out), repr(out)
    assert "plain cleared clip red bare esc split" in out
    assert "get_weather" in out and "Lon" in out
    assert "BadRequestError" in out and "[/] request" in out  # not read as rich markup


def test_chat_strips_control_sequences_from_thinking() -> None:
    recorded = (REPO / "tests" / "data" / "wire" / "anthropic" / "thinking-then-text.sse")
    hostile = recorded.read_bytes().replace(
        b'"thinking":"This"', b'"thinking":"This\\u001b]0;owned\\u0007\\u001b[2J\\u009b1m"', 1)
    assert hostile != recorded.read_bytes()
    with FakeServer([Reply.sse(hostile)]) as server:
        done = run_cli("chat", str(HELLO), "chat", "--var", "user_name=Ada",
                       "--provider", "anthropic", "--base-url", server.url,
                       "--api-key-env", "TEST_ANTHROPIC_KEY", "--model", "claude-sonnet-4-5",
                       stdin="Is it safe?\n/exit\n", TEST_ANTHROPIC_KEY="opaque-test-key-1")
    assert done.returncode == 0, done.stderr
    assert "This is a straightforward question" in done.stdout
    assert no_controls(done.stdout), repr(done.stdout)


# --- no terminal: variables ---------------------------------------------------------------


def test_chat_without_a_terminal_names_missing_variables_and_does_not_eat_input() -> None:
    done = run_cli("chat", str(HELLO), "chat", "--provider", "mock", stdin="hello\n")
    assert done.returncode == 1
    assert "MissingVariableError" in done.stderr and "user_name" in done.stderr
    assert "--var user_name=VALUE" in done.stderr
    assert "Mock response" not in done.stdout


def test_send_missing_variable_names_the_option() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi", "--provider", "mock")
    assert done.returncode == 1 and "--var user_name=VALUE" in done.stderr


def test_chat_on_a_terminal_asks_for_missing_variables() -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptkit.cli.main", "chat", str(HELLO), "chat",
             "--provider", "mock"], stdin=follower, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=cli_env())
        os.write(leader, b"Ada\nHi\n")
        os.write(leader, b"\x04")  # Ctrl-D at the prompt: leave
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert proc.returncode == 0, err
    assert "user_name:" in out and "Mock response from mock-model to: Hi" in out


# --- slash commands ---------------------------------------------------------------------------


def test_help_history_and_unknown_commands() -> None:
    done = run_cli("chat", str(HELLO), "chat", "--provider", "mock", "--var", "user_name=Ada",
                   stdin="/help\nHello\n/history\n/nonsense now\n//etc/hosts\n/exit\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "/history" in out and "/clear" in out                        # /help
    assert "you› Hello" in out and "ai› Mock response from mock-model to: Hello" in out
    assert "unknown command /nonsense" in out
    assert "to: /nonsense" not in out                                     # not sent
    assert "Mock response from mock-model to: /etc/hosts" in out         # // sends "/…"


# --- sessions: saved notice and conflicts -----------------------------------------------------


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMPTKIT_DATA_DIR", str(tmp_path))
    return tmp_path


def chat_in_process(monkeypatch: pytest.MonkeyPatch, lines: list[str], *extra: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
    return main(["chat", str(HELLO), "chat", "--provider", "mock", "--var", "user_name=Ada",
                 *extra])


def test_a_new_session_is_announced_only_once_saved(
        data_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert chat_in_process(monkeypatch, ["/exit"], "--session", "idle") == 0
    assert "New session" not in capsys.readouterr().err
    assert chat_in_process(monkeypatch, ["first", "second", "/exit"], "--session", "busy") == 0
    captured = capsys.readouterr()
    assert captured.err.count("New session 'busy', saved in") == 1
    assert captured.out.index("to: first") < len(captured.out)
    assert main(["sessions"]) == 0                                        # no action: lists
    listing = capsys.readouterr().out
    assert "busy" in listing and "idle" not in listing


def _conflicting_load(monkeypatch: pytest.MonkeyPatch, trigger: str) -> None:
    """Make another writer append to the session just after a turn on ``trigger`` loads it."""
    from promptkit.engine.messages import Message
    from promptkit.stores.sqlite import SQLiteStore

    original = SQLiteStore.load
    state = {"armed": False}
    # every turn loads the (short) history: the other writer appends right after that load
    monkeypatch.setattr("promptkit.conversation.kept.KEEP_FROM", 10**9)

    class Lines(io.StringIO):
        def readline(self, *args: Any) -> str:
            line = super().readline(*args)
            state["armed"] = state["armed"] or line.strip() == trigger
            return line

    def load(self: SQLiteStore, conversation_id: str) -> Any:
        stored = original(self, conversation_id)
        if state["armed"] and stored is not None:
            state["armed"] = False
            other = SQLiteStore(self.path)
            other.append(conversation_id, [Message(role="user", text="from elsewhere"),
                                           Message(role="assistant", text="noted")],
                         stored.version)
            other.close()
        return stored

    monkeypatch.setattr(SQLiteStore, "load", load)
    monkeypatch.setattr(sys, "stdin", Lines(f"first\n{trigger}\n/exit\n"))


@pytest.mark.parametrize("policy", ["raise", "reload"])
def test_a_store_conflict_says_what_happened(
        data_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], policy: str) -> None:
    _conflicting_load(monkeypatch, "racing")
    assert main(["chat", str(HELLO), "chat", "--provider", "mock", "--var", "user_name=Ada",
                 "--session", "shared", "--on-conflict", policy]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "version 2, expected 1" not in out  # explained, not the store's own words
    monkeypatch.undo()
    monkeypatch.setenv("PROMPTKIT_DATA_DIR", str(data_home))
    assert main(["sessions", "show", "shared", "--json"]) == 0
    texts = [m["text"] for m in json.loads(capsys.readouterr().out)["messages"]
             if m["role"] == "user"]
    if policy == "raise":
        assert "Another process added to this session" in out
        assert "--on-conflict reload" in out
        assert texts == ["first", "from elsewhere"]
    else:
        assert "answering again on the saved history" in out
        assert texts == ["first", "from elsewhere", "racing"]


# --- usage and cost when the server reports none ------------------------------------------------


def test_no_usage_means_cost_none(driver: Driver) -> None:
    with FakeServer([Reply.sse(openai_sse(["hi"], usage=False)),
                     Reply.sse(openai_sse(["hi"]))]) as server:
        conv = driver.open(HELLO, "chat", provider="openai", base_url=server.url + "/v1",
                           model="gpt-4o-mini", variables={"user_name": "Ada"})
        unknown = driver.send(conv, "hello")
        known = driver.send(conv, "again")
    assert unknown.usage.total_tokens == 0 and unknown.cost is None
    assert known.cost is not None and known.cost > 0


def test_cli_shows_usage_unknown_and_json_cost_null() -> None:
    with FakeServer([Reply.sse(openai_sse(["hi"], usage=False)) for _ in range(2)]) as server:
        url = server.url + "/v1"
        chat = run_cli("chat", str(HELLO), "chat", "--var", "user_name=Ada", "--base-url", url,
                       "--model", "local-model", stdin="hello\n/exit\n")
        send = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                       "--base-url", url, "--model", "local-model", "--json")
    assert chat.returncode == 0, chat.stderr
    assert "usage unknown" in chat.stdout and "$0.00000" not in chat.stdout
    final = json.loads(send.stdout.splitlines()[-1])
    assert final["response"]["cost"] is None


def test_the_model_sent_to_a_custom_base_url_is_named() -> None:
    with FakeServer([Reply.sse(openai_sse(["hi"]))]) as server:
        done = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                       OPENAI_BASE_URL=server.url + "/v1")
        sent = server.requests[0].json["model"]
    assert done.returncode == 0, done.stderr
    assert f"{sent!r}" in done.stderr and "--model" in done.stderr


# --- the mock fallback only when nothing was asked for --------------------------------------------


def test_a_model_whose_provider_has_no_key_is_an_error_naming_the_variable() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                   "--model", "claude-sonnet-4-5")
    assert done.returncode == 1 and "ANTHROPIC_API_KEY" in done.stderr
    assert "offline mock" not in done.stderr and done.stdout == ""


def test_a_pack_provider_block_without_its_key_is_an_error(tmp_path: Path) -> None:
    data = json.loads(HELLO.read_text())
    data["provider"] = {"name": "gemini"}
    pack = tmp_path / "gem.pack.json"
    pack.write_text(json.dumps(data))
    done = run_cli("send", str(pack), "chat", "hi", "--var", "user_name=Ada")
    assert done.returncode == 1 and "GEMINI_API_KEY" in done.stderr


def test_a_malformed_base_url_is_a_configuration_error_in_the_cli() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada",
                   "--base-url", "localhost:8000/v1")
    assert done.returncode == 1 and "ProviderConfigError" in done.stderr
    assert "http://" in done.stderr


def test_nothing_asked_for_falls_back_to_the_mock() -> None:
    done = run_cli("send", str(HELLO), "chat", "hi", "--var", "user_name=Ada")
    assert done.returncode == 0 and "offline mock provider" in done.stderr


# --- validate, inspect, examples ------------------------------------------------------------------


def test_validate_exit_codes_match_the_readme(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    claim = ("exits with status 0 if every pack is valid, 1 if any has problems, 2 if a file "
             "cannot be read")
    assert claim in " ".join(readme.split())
    bad = tmp_path / "bad.pack.json"
    bad.write_text("{}")
    assert main(["validate", str(HELLO)]) == 0
    assert main(["validate", str(bad)]) == 1
    assert main(["validate", str(tmp_path / "missing.pack.json")]) == 2


def test_inspect_json_prints_a_json_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pack.json"
    bad.write_text("{\n  oops")
    assert main(["inspect", str(bad), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "PackValidationError" and "bad.pack.json" in error["message"]
    assert main(["inspect", str(tmp_path / "missing.json"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "PackNotFoundError"


def test_the_shipped_examples_validate_without_warnings() -> None:
    packs = sorted(str(p) for p in (REPO / "examples").glob("*.pack.json"))
    done = subprocess.run([sys.executable, "-m", "promptkit.cli.main", "validate", *packs],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stdout + done.stderr
    assert done.stdout.count(": ok (") == len(packs)


def test_provider_config_error_is_exported() -> None:
    assert issubclass(promptkit.ProviderConfigError, promptkit.ProviderNotConfiguredError)
