"""Opening a conversation from command-line options, falling back to the offline mock."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from promptkit._errors import MissingVariableError, PackError, ProviderNotConfiguredError
from promptkit.conversation.sync_driver import Conversation

__all__ = ["open_from_args", "parse_vars"]

FALLBACK_NOTICE = (
    "No LLM provider is configured, so this chat uses the offline mock provider.\n"
    "Set OPENAI_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY, OLLAMA_HOST) or pass --provider"
    " to talk to a real model.\n"
)


def open_from_args(args: argparse.Namespace, *, notice: Callable[[str], None],
                   ask: Callable[[str], str] | None = None) -> Conversation:
    """Open the conversation the options describe.

    With no provider configured and none asked for, falls back to ``mock`` after calling
    ``notice`` with an explanation. Missing required variables are asked for with ``ask`` when
    given (interactive chat), otherwise the MissingVariableError propagates.
    """
    import promptkit

    variables = parse_vars(args.var)
    mock_responses = args.mock_responses
    provider = args.provider
    if mock_responses and provider is None:
        provider = "mock"
    options = {"model": args.model, "base_url": args.base_url, "variables": variables,
               "mock_responses": mock_responses, "api_key": _key_from_env(args.api_key_env)}
    pack = promptkit.load_pack(args.pack)
    opener = promptkit.open
    if getattr(args, "session", None):
        from promptkit.cli.sessions import session_opener

        opener = session_opener(args.session, notice)
    try:
        conversation = opener(pack, args.prompt, provider=provider, **options)
    except ProviderNotConfiguredError:
        if provider is not None:
            raise
        notice(FALLBACK_NOTICE)
        pacing = {"delay": 0.02, "first_delay": 0.3}
        options["mock_responses"] = mock_responses or pacing
        options["model"] = None  # the mock's own model name: no real model's prices
        conversation = opener(pack, args.prompt, provider="mock", **options)
    if ask is not None:
        _ask_missing(conversation, ask)
    return conversation


def _key_from_env(name: str | None) -> str | None:
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        raise ProviderNotConfiguredError(f"--api-key-env names {name}, which is not set")
    return value


def _ask_missing(conversation: Conversation, ask: Callable[[str], str]) -> None:
    for _ in range(20):  # one question per missing variable, bounded
        try:
            conversation.render_system_prompt()
            return
        except MissingVariableError as exc:
            name = exc.names[0]
            conversation.set_var(name, ask(f"{name}: "))


def report_error(exc: BaseException) -> int:
    """Print a one-line error (never a traceback for expected failures); exit status 1 or 2."""
    kind = type(exc).__name__
    print(f"promptkit: {kind}: {exc}", file=sys.stderr)
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
