"""The ``promptkit`` command: chat, send, serve, validate, inspect and eval PromptPack files.

Argument parsing only; each sub-command lives in its own module and loads lazily, so
``promptkit validate`` never imports the HTTP stack and ``chat`` is the only one using rich.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _add_conversation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pack", help="path to a *.pack.json file")
    parser.add_argument("prompt", help="name of a prompt in the pack")
    parser.add_argument("--provider", help="openai, anthropic, gemini, ollama, mock, ...")
    parser.add_argument("--model", help="model name (default: the pack's or the provider's)")
    parser.add_argument("--base-url", help="endpoint of an OpenAI-compatible server")
    parser.add_argument("--api-key-env", metavar="NAME",
                        help="environment variable holding the API key to send (needed with "
                             "--base-url: keys are never taken from the command line)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="set a template variable (repeatable)")
    parser.add_argument("--mock-responses", metavar="FILE",
                        help="PromptKit mock-responses YAML/JSON for --provider mock")
    parser.add_argument("--timeout", type=float, help="deadline for each turn, in seconds")
    parser.add_argument("--session", metavar="NAME",
                        help="continue the saved chat NAME, or start it (see `sessions`)")


def build_parser() -> argparse.ArgumentParser:
    from promptkit import __version__

    parser = argparse.ArgumentParser(
        prog="promptkit", description="Run and check PromptPack conversations.")
    parser.add_argument("--version", action="version", version=f"promptkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="interactive streaming chat with a prompt")
    _add_conversation_options(chat)
    chat.add_argument("--on-conflict", choices=("raise", "reload"), default="raise",
                      help="when another process adds to the same --session meanwhile: "
                           "report it (raise) or answer again on the saved history (reload)")
    chat.add_argument("--verbose", "-v", action="store_true",
                      help="log each provider request and retry to stderr (keys redacted)")
    chat.add_argument("--evals", action="store_true",
                      help="wait for the pack's evals after each answer and print their results")

    send = commands.add_parser("send", help="send one message and stream the answer")
    _add_conversation_options(send)
    send.add_argument("message", help="the user message ('-' reads it from standard input)")
    send.add_argument("--json", action="store_true",
                      help="print one JSON object per chunk instead of text")
    send.add_argument("--raw", action="store_true",
                      help="write the model's text as it is, terminal control sequences "
                           "included (by default they are removed)")

    validate = commands.add_parser("validate", help="check pack files against the schema")
    validate.add_argument("packs", nargs="+", metavar="PACK")

    inspect = commands.add_parser("inspect", help="show a pack's prompts, variables and tools")
    inspect.add_argument("pack")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")

    from promptkit.cli.sessions import add_parser as add_sessions

    add_sessions(commands)
    from promptkit.cli.evals import add_parser as add_eval

    add_eval(commands)

    from promptkit.server.serve import add_parser as add_serve

    add_serve(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        from promptkit.cli.validate import run_validate

        return run_validate(args.packs)
    if args.command == "inspect":
        from promptkit.cli.inspect import run_inspect

        return run_inspect(args.pack, as_json=args.json)
    if args.command == "sessions":
        from promptkit.cli.sessions import run_sessions

        return run_sessions(args)
    if args.command == "eval":
        from promptkit.cli.evals import run_eval

        return run_eval(args)

    if args.command == "serve":
        from promptkit.server.serve import run_serve

        return run_serve(args)
    if args.command == "send":
        from promptkit.cli.send import run_send

        return run_send(args)
    from promptkit.cli.chat import run_chat

    return run_chat(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
