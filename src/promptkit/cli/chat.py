"""``promptkit chat``: an interactive streaming REPL.

A spinner runs until the first token, text streams as it arrives, and a status line follows
each answer (tokens, cost, time to first token). Ctrl-C during an answer stops that answer and
keeps the conversation; Ctrl-C or Ctrl-D at the prompt (or ``/exit``) leaves.
"""

from __future__ import annotations

import argparse
import functools
from typing import TYPE_CHECKING

from promptkit._errors import PromptKitError
from promptkit.cli._session import open_from_args, report_error
from promptkit.engine.chunks import ChunkType, Response

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from promptkit.conversation.sync_driver import Conversation, Stream

__all__ = ["run_chat"]

HELP = "Type a message. /clear forgets the history, /exit (or Ctrl-D) quits."


def status_line(response: Response) -> str:
    """``in 12 · out 34 tokens · $0.00012 · first token 0.21 s · 1.30 s``."""
    usage = response.usage
    parts = [f"in {usage.input_tokens} · out {usage.output_tokens} tokens"]
    parts.append("cost n/a" if response.cost is None else f"${response.cost:.5f}")
    if response.time_to_first_token is not None:
        parts.append(f"first token {response.time_to_first_token:.2f} s")
    parts.append(f"{response.duration:.2f} s")
    if response.tool_calls:
        parts.append(f"{len(response.tool_calls)} tool call(s)")
    return " · ".join(parts)


def run_chat(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)

    def ask(question: str) -> str:
        return str(console.input(f"[bold]{question}[/]"))

    try:
        conversation = open_from_args(
            args, notice=lambda text: err.print(f"[yellow]{text}[/]", end=""), ask=ask)
    except (PromptKitError, EOFError, KeyboardInterrupt) as exc:
        return report_error(exc) if isinstance(exc, PromptKitError) else 130
    console.print(f"[dim]{conversation.prompt.name} · {conversation.provider} · "
                  f"{conversation.model} — {HELP}[/]")
    shown = 0
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
            if command in ("/exit", "/quit"):
                return 0
            if command == "/clear":
                conversation.clear()
                console.print("[dim]history cleared[/]")
                continue
            _answer(console, functools.partial(conversation.stream, message,
                                               timeout=args.timeout))
            if getattr(args, "evals", False):
                shown = _print_evals(console, conversation, shown)


def _answer(console: Console, start: Callable[[], Stream]) -> Response | None:
    """Stream one answer; Ctrl-C stops it and keeps the conversation usable."""
    try:
        stream = start()
    except PromptKitError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}[/]")
        return None
    status = console.status("thinking…", spinner="dots")
    status.start()
    spinning = True
    try:
        with stream:
            for chunk in stream:
                if spinning and chunk.type is not ChunkType.ERROR:
                    status.stop()
                    spinning = False
                    console.print("[bold green]ai›[/] ", end="")
                if chunk.type is ChunkType.TEXT:
                    console.out(chunk.text, end="", highlight=False)
                elif chunk.type is ChunkType.THINKING:
                    console.out(chunk.text, end="", style="dim italic", highlight=False)
                elif chunk.type is ChunkType.TOOL_CALL and chunk.tool_call is not None:
                    call = chunk.tool_call
                    shown = call.raw_arguments or call.arguments
                    console.print(f"\n[dim]→ {call.name}({shown})[/]")
                elif chunk.type is ChunkType.TOOL_RESULT and chunk.tool_result is not None:
                    result = chunk.tool_result
                    style = "red" if result.is_error else "dim"
                    console.print(f"[{style}]← {result.content[:200]}[/]")
                elif chunk.type is ChunkType.VALIDATION and chunk.validation is not None:
                    blocked = chunk.validation
                    console.print(f"\n[bold red]⛔ blocked by guardrail {blocked.type}[/] "
                                  "[dim](the text above is withdrawn; the reply is now:)[/]")
                elif chunk.type is ChunkType.DONE and chunk.response is not None:
                    if chunk.response.finish_reason == "safety":
                        console.print(f"[bold red]ai›[/] [red]{chunk.response.text}[/]", end="")
                    console.print()
                    console.print(f"[dim]{status_line(chunk.response)}[/]")
                elif chunk.type is ChunkType.ERROR:
                    status.stop()
                    spinning = False
                    console.print(f"\n[red]{type(chunk.error).__name__}: {chunk.error}[/]")
    except KeyboardInterrupt:
        console.print("\n[yellow]stopped — this answer is not kept; the conversation goes on[/]")
        return None
    finally:
        if spinning:
            status.stop()
    return stream.response


def _print_evals(console: Console, conversation: Conversation, shown: int) -> int:
    """Wait for the evals of the last answer and print the new results; returns the count."""
    conversation.wait_evals(timeout=60)
    results = conversation.eval_results
    for result in results[shown:]:
        mark = "[green]✓[/]" if result.passed else "[red]✗[/]"
        score = "" if result.score is None else f" {result.score:.2f}"
        detail = f" — {result.message}" if result.message else ""
        console.print(f"[dim]eval[/] {mark} {result.id} ({result.type}){score}{detail}")
    return len(results)
