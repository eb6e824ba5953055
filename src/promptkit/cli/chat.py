"""``promptkit chat``: an interactive streaming REPL.

A spinner runs until the first token, text streams as it arrives, and a status line follows
each answer (tokens, cost, time to first token). Ctrl-C during an answer stops that answer and
keeps the conversation; Ctrl-C or Ctrl-D at the prompt (or ``/exit``) leaves. Everything shown
that came from the model, a tool or a server passes through ``_terminal.safe_text`` (no
escape sequences) and is never read as rich markup.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from promptkit._errors import PromptKitError
from promptkit.cli._session import Opened, error_line, open_from_args, report_error
from promptkit.cli._terminal import TerminalSanitizer, safe_text
from promptkit.engine.chunks import ChunkType, Response
from promptkit.stores._protocol import ConflictError

if TYPE_CHECKING:
    from rich.console import Console

    from promptkit.conversation.sync_driver import Conversation

__all__ = ["COMMANDS", "run_chat", "status_line"]

COMMANDS = {
    "/help": "show these commands",
    "/history": "show the conversation so far",
    "/clear": "forget the history (variables stay)",
    "/exit": "leave (also /quit, Ctrl-D)",
}
HELP = "Type a message; /help lists the commands."
_CONFLICT_RETRIES = 3


def status_line(response: Response) -> str:
    """``in 12 · out 34 tokens · $0.00012 · first token 0.21 s · 1.30 s``.

    ``usage unknown`` when the provider reported no token counts (and so no cost), ``cost
    n/a`` when the model's price is unknown.
    """
    usage = response.usage
    if usage.total_tokens == 0:
        parts = ["usage unknown"]
    else:
        parts = [f"in {usage.input_tokens} · out {usage.output_tokens} tokens"]
        parts.append("cost n/a" if response.cost is None else f"${response.cost:.5f}")
    if response.time_to_first_token is not None:
        parts.append(f"first token {response.time_to_first_token:.2f} s")
    parts.append(f"{response.duration:.2f} s")
    if response.tool_calls:
        parts.append(f"{len(response.tool_calls)} tool call(s)")
    return " · ".join(parts)


def shown(text: str) -> str:
    """Untrusted text ready for ``console.print``: no terminal controls, no rich markup."""
    from rich.markup import escape

    return escape(safe_text(text))


def run_chat(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    if getattr(args, "verbose", False):
        from promptkit.observe.logs import install_handler

        install_handler("debug")

    def ask(question: str) -> str:
        return str(console.input(f"[bold]{shown(question)}[/]"))

    # Without a terminal, piped lines are messages, never taken as variable values.
    interactive = sys.stdin.isatty()
    try:
        opened = open_from_args(
            args, notice=lambda text: err.print(f"[yellow]{shown(text)}[/]", end=""),
            ask=ask if interactive else None)
    except (PromptKitError, EOFError, KeyboardInterrupt) as exc:
        return report_error(exc) if isinstance(exc, PromptKitError) else 130
    conversation = opened.conversation
    console.print(f"[dim]{shown(conversation.prompt.name)} · {shown(conversation.provider)} · "
                  f"{shown(conversation.model)} — {HELP}[/]")
    evals_shown = 0
    with conversation:
        while True:
            try:
                message = console.input("[bold cyan]you›[/] ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return 0
            command = message.strip()
            if not command:
                continue
            if command.startswith("//"):  # "//etc" sends "/etc"
                message = message.replace("/", "", 1)
            elif command.startswith("/"):
                if command in ("/exit", "/quit"):
                    return 0
                _command(console, conversation, command)
                continue
            _answer(console, opened, message, args)
            if getattr(args, "evals", False):
                evals_shown = _print_evals(console, conversation, evals_shown)


def _command(console: Console, conversation: Conversation, command: str) -> None:
    """Run a slash command; an unknown one is refused, never sent to the model."""
    if command == "/help":
        for name, what in COMMANDS.items():
            console.print(f"  [bold]{name}[/]  {what}")
        console.print("  A message starting with / is sent by writing // instead.")
    elif command == "/history":
        _history(console, conversation)
    elif command == "/clear":
        conversation.clear()
        console.print("[dim]history cleared[/]")
    else:
        name = shown(command.split(maxsplit=1)[0])
        console.print(f"[red]unknown command {name}[/] — not sent; /help lists the commands "
                      "(start with // to send a message beginning with /)")


def _history(console: Console, conversation: Conversation) -> None:
    messages = conversation.messages
    if not messages:
        console.print("[dim]no messages yet[/]")
    for message in messages:
        if message.role == "user":
            console.print(f"[bold cyan]you›[/] {shown(message.text)}")
        elif message.role == "assistant":
            if message.text:
                console.print(f"[bold green]ai›[/] {shown(message.text)}")
            for call in message.tool_calls:
                console.print(f"[dim]→ {shown(call.name)}({shown(call.raw_arguments)})[/]")
        elif message.role == "tool" and message.tool_result is not None:
            console.print(f"[dim]← {shown(message.tool_result.content[:200])}[/]")


def _answer(console: Console, opened: Opened, message: str, args: argparse.Namespace) -> None:
    """Answer one message; a turn that lost a store race is run again with ``--on-conflict
    reload``, or explained."""
    reload = getattr(args, "on_conflict", "raise") == "reload"
    for _ in range(_CONFLICT_RETRIES if reload else 1):
        response, error = _stream_answer(console, opened.conversation, message, args.timeout)
        if response is not None:
            opened.after_turn()
            return
        if not isinstance(error, ConflictError):
            return
        if reload:
            console.print("[yellow]another process changed this session meanwhile; answering "
                          "again on the saved history[/]")
    if isinstance(error, ConflictError) and not reload:
        console.print("[yellow]Another process added to this session while this answer was "
                      "streaming, so the answer was not saved; your next message continues "
                      "from the saved history. Start chat with --on-conflict reload to answer "
                      "again automatically.[/]")


def _stream_answer(console: Console, conversation: Conversation, message: str,
                   timeout: float | None) -> tuple[Response | None, PromptKitError | None]:
    """Stream one answer; Ctrl-C stops it and keeps the conversation usable."""
    try:
        stream = conversation.stream(message, timeout=timeout)
    except PromptKitError as exc:
        console.print(f"[red]{shown(error_line(exc))}[/]")
        return None, exc
    status = console.status("thinking…", spinner="dots")
    status.start()
    spinning = True
    text, thinking = TerminalSanitizer(), TerminalSanitizer()

    def flush() -> None:
        rest = text.flush()
        if rest:
            console.out(rest, end="", highlight=False)
        rest = thinking.flush()
        if rest:
            console.out(rest, end="", style="dim italic", highlight=False)

    try:
        with stream:
            for chunk in stream:
                if spinning and chunk.type is not ChunkType.ERROR:
                    status.stop()
                    spinning = False
                    console.print("[bold green]ai›[/] ", end="")
                if chunk.type is ChunkType.TEXT:
                    console.out(text.feed(chunk.text), end="", highlight=False)
                elif chunk.type is ChunkType.THINKING:
                    console.out(thinking.feed(chunk.text), end="", style="dim italic",
                                highlight=False)
                elif chunk.type is ChunkType.TOOL_CALL and chunk.tool_call is not None:
                    flush()
                    call = chunk.tool_call
                    arguments = call.raw_arguments or str(call.arguments)
                    console.print(f"\n[dim]→ {shown(call.name)}({shown(arguments)})[/]")
                elif chunk.type is ChunkType.TOOL_RESULT and chunk.tool_result is not None:
                    result = chunk.tool_result
                    style = "red" if result.is_error else "dim"
                    console.print(f"[{style}]← {shown(result.content[:200])}[/]")
                elif chunk.type is ChunkType.VALIDATION and chunk.validation is not None:
                    flush()
                    blocked = chunk.validation
                    console.print(f"\n[bold red]⛔ blocked by guardrail {shown(blocked.type)}[/] "
                                  "[dim](the text above is withdrawn; the reply is now:)[/]")
                elif chunk.type is ChunkType.DONE and chunk.response is not None:
                    flush()
                    if chunk.response.finish_reason == "safety":
                        console.print(f"[bold red]ai›[/] [red]{shown(chunk.response.text)}[/]",
                                      end="")
                    console.print()
                    console.print(f"[dim]{shown(status_line(chunk.response))}[/]")
                elif chunk.type is ChunkType.ERROR and chunk.error is not None:
                    flush()
                    status.stop()
                    spinning = False
                    if isinstance(chunk.error, ConflictError):
                        console.print()  # _answer explains it
                    else:
                        console.print(f"\n[red]{shown(error_line(chunk.error))}[/]")
    except KeyboardInterrupt:
        console.print("\n[yellow]stopped — this answer is not kept; the conversation goes on[/]")
        return None, None
    finally:
        if spinning:
            status.stop()
    return stream.response, stream.error


def _print_evals(console: Console, conversation: Conversation, already: int) -> int:
    """Wait for the evals of the last answer and print the new results; returns the count."""
    conversation.wait_evals(timeout=60)
    results = conversation.eval_results
    for result in results[already:]:
        mark = "[green]✓[/]" if result.passed else "[red]✗[/]"
        score = "" if result.score is None else f" {result.score:.2f}"
        detail = f" — {result.message}" if result.message else ""
        console.print(f"[dim]eval[/] {mark} {shown(result.id)} ({shown(result.type)}){score}"
                      f"{shown(detail)}")
    return len(results)
