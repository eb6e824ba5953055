"""Opening a conversation from command-line options, falling back to the offline mock."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from promptkit._errors import (
    MissingVariableError,
    PackError,
    ProviderNotConfiguredError,
)
from promptkit._redact import redact
from promptkit.cli._terminal import safe_text
from promptkit.conversation.sync_driver import Conversation

__all__ = ["Opened", "error_line", "nothing_asked_for", "open_from_args", "parse_vars",
           "report_error"]

FALLBACK_NOTICE = (
    "No LLM provider is configured, so this chat uses the offline mock provider.\n"
    "Set OPENAI_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY, OLLAMA_HOST) or pass --provider"
    " to talk to a real model.\n"
)


@dataclass
class Opened:
    """The conversation the options describe, and what to call after each completed turn
    (a new ``--session`` is announced once its first turn is saved)."""

    conversation: Conversation
    after_turn: Callable[[], None]


def nothing_asked_for(args: argparse.Namespace, pack: Any) -> bool:
    """Whether no provider, model, endpoint or key was asked for anywhere: no option, no pack
    ``provider`` block, nothing in the environment. Only then does the CLI use the mock."""
    from promptkit.providers._select import nothing_configured

    options = (args.provider, args.model, args.base_url, args.api_key_env, args.mock_responses)
    return not any(options) and pack.provider is None and nothing_configured(os.environ)


def open_from_args(args: argparse.Namespace, *, notice: Callable[[str], None],
                   ask: Callable[[str], str] | None = None) -> Opened:
    """Open the conversation the options describe.

    With nothing at all asked for (:func:`nothing_asked_for`) it uses ``mock`` after calling
    ``notice`` with an explanation; anything else asked for but unusable (``--model
    claude-…`` with no ``ANTHROPIC_API_KEY``) is an error naming what to set. Missing
    required variables are asked for with ``ask`` when given (a terminal), otherwise they
    raise :class:`MissingVariableError` here, before any model call.
    """
    import promptkit

    variables = parse_vars(args.var)
    mock_responses = args.mock_responses
    provider = args.provider
    pack = promptkit.load_pack(args.pack)
    options: dict[str, Any] = {
        "model": args.model, "base_url": args.base_url, "variables": variables,
        "mock_responses": mock_responses, "api_key": _key_from_env(args.api_key_env)}
    if getattr(args, "on_conflict", None):
        options["on_conflict"] = args.on_conflict
    if mock_responses and provider is None:
        provider = "mock"
    elif provider is None and nothing_asked_for(args, pack):
        notice(FALLBACK_NOTICE)
        provider = "mock"
        options["mock_responses"] = {"delay": 0.02, "first_delay": 0.3}
    opener: Callable[..., Conversation] = promptkit.open
    after_turn: Callable[[], None] = _nothing
    if getattr(args, "session", None):
        from promptkit.cli.sessions import SessionOpener

        session = SessionOpener(args.session, notice)
        opener, after_turn = session, session.announce_if_saved
    conversation = opener(pack, args.prompt, provider=provider, **options)
    if (conversation.provider != "mock" and not args.model
            and not (pack.provider is not None and pack.provider.model)):
        notice(f"No model was given, so {conversation.model!r} ({conversation.provider}'s "
               "default) is sent; pass --model to choose another.\n")
    _fill_variables(conversation, ask)
    return Opened(conversation, after_turn)


def _nothing() -> None:
    return None


def _key_from_env(name: str | None) -> str | None:
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        raise ProviderNotConfiguredError(f"--api-key-env names {name}, which is not set")
    return value


def _fill_variables(conversation: Conversation, ask: Callable[[str], str] | None) -> None:
    """Ask for each missing variable (``ask`` given) or raise the error naming them all."""
    for _ in range(50):  # one question per missing variable, bounded
        try:
            conversation.render_system_prompt()
            return
        except MissingVariableError as exc:
            if ask is None:
                raise
            name = exc.names[0]
            conversation.set_var(name, ask(f"{name}: "))


def error_line(exc: BaseException) -> str:
    """``Kind: message`` for an error, with keys scrubbed and terminal controls removed."""
    if isinstance(exc, MissingVariableError):
        settings = " ".join(f"--var {name}=VALUE" for name in exc.names)
        where = f" for prompt {exc.prompt!r}" if exc.prompt else ""
        text = f"missing variable(s){where}: {', '.join(exc.names)}; pass {settings}"
    else:
        text = str(exc)
    return safe_text(redact(f"{type(exc).__name__}: {text}"))


def report_error(exc: BaseException) -> int:
    """Print a one-line error (never a traceback for expected failures); exit status 1 or 2."""
    print(f"promptkit: {error_line(exc)}", file=sys.stderr)
    return 2 if isinstance(exc, PackError) else 1


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; rejects items without ``=``."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"promptkit: --var expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value
    return values
