"""``promptkit eval PACK PROMPT --session ID [--store URL]``: score a stored conversation.

The conversation is read from ``--store`` (``redis://…``, ``sqlite:///path``, or a SQLite file
path; default the CLI's own sessions file) and scored with the prompt's evals
(``promptkit.evaluate``). A table, or ``--json``; exit status 1 when any eval failed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from promptkit._errors import ConversationNotFoundError, PromptKitError
from promptkit.cli._session import report_error

__all__ = ["add_parser", "run_eval"]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("eval", help="score a stored conversation with a prompt's evals")
    parser.add_argument("pack", help="path to a *.pack.json file")
    parser.add_argument("prompt", help="name of a prompt in the pack")
    parser.add_argument("--session", required=True, metavar="ID",
                        help="the conversation id (a `promptkit chat --session` name)")
    parser.add_argument("--store", metavar="URL",
                        help="redis://host:port/db, sqlite:///path or a SQLite file "
                             "(default: the CLI's sessions file)")
    parser.add_argument("--judge", metavar="PROVIDER:MODEL", help="the model for llm_judge evals")
    parser.add_argument("--json", action="store_true", help="one JSON document")


def open_store(url: str | None) -> Any:
    """The store a ``--store`` value names."""
    if url is None:
        from promptkit.cli.sessions import open_sessions

        store = open_sessions(create=False)
        if store is None:
            raise ConversationNotFoundError("(no saved sessions yet)")
        return store
    if url.startswith(("redis://", "rediss://", "unix://")):
        from promptkit.stores import RedisStore

        return RedisStore(url)
    from promptkit.stores.sqlite import SQLiteStore

    path = url.removeprefix("sqlite://") if url.startswith("sqlite:///") else url
    return SQLiteStore(path)


def run_eval(args: argparse.Namespace) -> int:
    from promptkit.conversation.offline import evaluate
    from promptkit.engine.held import visible

    try:
        store = open_store(args.store)
        try:
            stored = store.load(args.session)
        finally:
            getattr(store, "close", lambda: None)()
        if stored is None:
            raise ConversationNotFoundError(args.session)
        results = evaluate(args.pack, args.prompt, visible(stored.messages), judge=args.judge,
                           conversation_id=args.session)
    except PromptKitError as exc:
        return report_error(exc)
    failed = [r for r in results if not r.passed]
    if args.json:
        print(json.dumps({"session": args.session, "passed": not failed,
                          "results": [r.to_dict() for r in results]}, indent=2,
                         ensure_ascii=False))
    else:
        _table(args.session, results)
    return 1 if failed else 0


def _table(session: str, results: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not results:
        console.print(f"session {session}: no evals ran")
        return
    table = Table(title=f"evals · session {session}")
    for column in ("id", "type", "trigger", "turn", "result", "score", "message"):
        table.add_column(column)
    for r in results:
        table.add_row(r.id, r.type, r.trigger, "session" if r.turn_index is None
                      else str(r.turn_index), "[green]pass[/]" if r.passed else "[red]FAIL[/]",
                      "" if r.score is None else f"{r.score:.2f}", r.message)
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
