"""The CLI and guardrails/evals: validate, inspect, chat (blocked replies, --evals), eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptkit
from promptkit.cli.main import main
from promptkit.stores.sqlite import SQLiteStore
from test_cli import run_cli

from checks_support import compat_pack, write_pack

EVAL_TEST = compat_pack("promptkit/sdk/testdata/packs/eval-test.pack.json")


def test_validate_reports_unknown_types_as_errors(capsys: pytest.CaptureFixture[str]) -> None:
    bad = compat_pack("promptkit/sdk/testdata/packs/guardrail-bad-type.pack.json")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:19:19: error: $.prompts.chat.validators[0].type:" in out
    assert "'pii_leakge'" in out and "nearest known:" in out


def test_validate_warns_on_unusable_params(capsys: pytest.CaptureFixture[str]) -> None:
    pack = compat_pack("promptkit/sdk/testdata/packs/guardrail-bad-params.pack.json")
    agent = compat_pack("promptkit/sdk/examples/runtime-config/agent.pack.json")
    assert main(["validate", str(pack), str(agent)]) == 0
    out = capsys.readouterr().out
    assert "warning: $.prompts.chat.validators[0].params: length: needs" in out
    assert "warning: $.evals[0].type: unknown eval type 'tone_check'" in out


def test_inspect_lists_validators_and_evals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(compat_pack(
        "promptpack-python/examples/packs/customer-support.json"))]) == 0
    out = capsys.readouterr().out
    assert "validator banned_words (enforce, output)" in out
    assert "validator max_length (monitor, output)" in out
    assert main(["inspect", "--json", str(EVAL_TEST)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in info["prompts"]["assistant"]["evals"]] == [
        "greeting_check", "session_check", "prompt_eval"]


def test_chat_shows_a_blocked_reply(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, validators=[{"type": "banned_words", "enabled": True, "params": {
        "words": ["darn"], "message": "Let's keep it clean."}}])
    script = tmp_path / "mock.json"
    script.write_text(json.dumps({"defaultResponse": "oh darn it"}))
    done = run_cli("chat", str(pack), "chat", "--provider", "mock", "--mock-responses",
                   str(script), stdin="hi\n/exit\n")
    assert done.returncode == 0, done.stderr
    assert "blocked by guardrail banned_words" in done.stdout
    assert "Let's keep it clean." in done.stdout and "darn" not in done.stdout


def test_send_json_has_the_validation_chunk(tmp_path: Path) -> None:
    pack = write_pack(tmp_path, validators=[{"type": "max_length", "enabled": True,
                                             "params": {"max_characters": 4}}])
    script = tmp_path / "mock.json"
    script.write_text(json.dumps({"defaultResponse": "far too long"}))
    done = run_cli("send", str(pack), "chat", "hi", "--provider", "mock", "--mock-responses",
                   str(script), "--json")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["type"] for line in lines][-2:] == ["validation", "done"]
    assert lines[-2]["validation"]["blocked"] is True
    assert lines[-1]["response"]["finish_reason"] == "safety"


def test_chat_prints_eval_results(tmp_path: Path) -> None:
    script = tmp_path / "mock.json"
    script.write_text(json.dumps({"defaultResponse": "Hello, thank you"}))
    done = run_cli("chat", str(EVAL_TEST), "assistant", "--provider", "mock", "--evals",
                   "--mock-responses", str(script), stdin="hi\n/exit\n")
    assert done.returncode == 0, done.stderr
    assert "eval ✓ greeting_check (contains) 1.00" in done.stdout
    assert "eval ✓ prompt_eval (contains)" in done.stdout


def test_eval_scores_a_stored_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "store.db"
    store = SQLiteStore(database)
    with promptkit.open(EVAL_TEST, "assistant", provider="mock", store=store,
                        conversation_id="s1", evals=False,
                        mock_responses={"defaultResponse": "Hello! Thank you. Goodbye."}) as conv:
        conv.send("hi")
    with promptkit.open(EVAL_TEST, "assistant", provider="mock", store=store,
                        conversation_id="s2", evals=False,
                        mock_responses={"defaultResponse": "Nope."}) as conv:
        conv.send("hi")
    store.close()
    assert main(["eval", str(EVAL_TEST), "assistant", "--session", "s1",
                 "--store", f"sqlite:///{database}"]) == 0
    out = capsys.readouterr().out
    assert "evals · session s1" in out and "3 passed, 0 failed" in out
    assert main(["eval", str(EVAL_TEST), "assistant", "--session", "s2", "--store",
                 str(database), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert {r["id"]: r["passed"] for r in report["results"]} == {
        "greeting_check": False, "prompt_eval": False, "session_check": False}
    assert main(["eval", str(EVAL_TEST), "assistant", "--session", "nope", "--store",
                 str(database)]) == 1
    assert "ConversationNotFoundError" in capsys.readouterr().err
