"""Named chats: ``promptkit chat PACK PROMPT --session NAME`` and ``promptkit sessions``.

Sessions live in one SQLite file, ``sessions.db``, in the user's data directory (platformdirs:
``~/.local/share/promptkit`` on Linux, ``~/Library/Application Support/promptkit`` on macOS,
``%LOCALAPPDATA%\\promptkit`` on Windows), or in ``$PROMPTKIT_DATA_DIR`` when set. A session
name is the conversation id, so the same chat can be continued from Python with
``promptkit.resume(name, pack, prompt, store=SQLiteStore(path))``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptkit._errors import PromptKitError, StoreError
from promptkit._redact import redact
from promptkit.cli._terminal import safe_json, safe_text
from promptkit.stores._protocol import (
    ConversationInfo,
    InvalidConversationIdError,
    check_conversation_id,
)

if TYPE_CHECKING:
    from promptkit.conversation.sync_driver import Conversation
    from promptkit.pack.model import Pack
    from promptkit.stores.sqlite import SQLiteStore

__all__ = ["DATA_DIR_ENV", "SessionOpener", "data_dir", "run_sessions", "sessions_path"]

DATA_DIR_ENV = "PROMPTKIT_DATA_DIR"
FILE_NAME = "sessions.db"


def data_dir() -> Path:
    """Where promptkit keeps user data: ``$PROMPTKIT_DATA_DIR``, else platformdirs'."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("promptkit", appauthor=False))


def sessions_path() -> Path:
    return data_dir() / FILE_NAME


def open_sessions(*, create: bool) -> SQLiteStore | None:
    """The sessions store; ``None`` when it does not exist yet and ``create`` is false."""
    from promptkit.stores.sqlite import SQLiteStore

    path = sessions_path()
    if not path.exists():
        if not create:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the sessions directory {path.parent}: {exc}"
                             ) from exc
    return SQLiteStore(path)


def check_name(name: str) -> str:
    try:
        return check_conversation_id(name)
    except InvalidConversationIdError:
        raise InvalidConversationIdError(
            f"invalid session name {name!r}: use 1 to 255 characters from A-Z a-z 0-9 . _ : -"
        ) from None


class SessionOpener:
    """A replacement for ``promptkit.open`` that continues session ``name`` if it exists and
    starts it otherwise. A resumed session is announced through ``notice`` at once; a new one
    by :meth:`announce_if_saved`, called after each turn, once a turn has been saved."""

    def __init__(self, name: str, notice: Callable[[str], None]) -> None:
        self.name = check_name(name)
        self.notice = notice
        self._store: SQLiteStore | None = None

    def __call__(self, pack: Pack, prompt: str, **options: Any) -> Conversation:
        from promptkit.conversation.opening import open as open_conversation
        from promptkit.conversation.resuming import resume

        name = self.name
        store = open_sessions(create=True)
        assert store is not None
        stored = store.load(name)
        if stored is None:
            conversation = open_conversation(pack, prompt, store=store, conversation_id=name,
                                             **options)
            self._store = store  # announced once its first turn is saved
            return conversation
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            conversation = resume(name, pack, prompt, store=store, **options)
        for warning in caught:
            self.notice(f"{warning.message}\n")
        turns = sum(1 for m in conversation.messages if m.role == "user")
        self.notice(f"Resumed session {name!r} ({turns} earlier turn(s)).\n")
        return conversation

    def announce_if_saved(self) -> None:
        """Say "New session … saved" the first time the new session is in the store."""
        store = self._store
        if store is not None and store.load(self.name) is not None:
            self._store = None
            self.notice(f"New session {self.name!r}, saved in {store.path}.\n")


# --- promptkit sessions ----------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    """The ``sessions`` sub-command and its actions (called by ``main.build_parser``)."""
    sessions = commands.add_parser(
        "sessions", help="list, show or delete the chats saved with --session",
        description=f"Chats saved with --session live in {FILE_NAME} in the user data "
                    f"directory (or ${DATA_DIR_ENV}).")
    # with no action, `promptkit sessions` lists
    actions = sessions.add_subparsers(dest="action", required=False, metavar="ACTION")
    listing = actions.add_parser("list", help="the saved sessions, most recent first")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = actions.add_parser("show", help="a session's details and transcript")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    delete = actions.add_parser("delete", help="forget a session")
    delete.add_argument("name")


def run_sessions(args: argparse.Namespace) -> int:
    try:
        if args.action in (None, "list"):
            return _list(as_json=getattr(args, "json", False))
        name = check_name(args.name)
        if args.action == "show":
            return _show(name, as_json=args.json)
        return _delete(name)
    except PromptKitError as exc:
        print(f"promptkit: {safe_text(redact(f'{type(exc).__name__}: {exc}'))}",
              file=sys.stderr)
        return 1


def _all(store: SQLiteStore) -> Iterator[ConversationInfo]:
    after = None
    while True:
        page = store.list(after=after, limit=200)
        yield from page
        if len(page) < 200:
            return
        after = page[-1].id


def _list(*, as_json: bool) -> int:
    store = open_sessions(create=False)
    infos = [] if store is None else list(_all(store))
    infos.sort(key=lambda i: i.metadata.updated_at or 0.0, reverse=True)
    if store is not None:
        store.close()
    if as_json:
        print(safe_json([_info_json(i) for i in infos], indent=2))
        return 0
    if not infos:
        print(f"No sessions yet; `promptkit chat PACK PROMPT --session NAME` starts one "
              f"(kept in {sessions_path()}).")
        return 0
    rows = [("NAME", "PACK", "PROMPT", "MESSAGES", "UPDATED")]
    rows += [(i.id, i.metadata.pack_id or "-", i.metadata.prompt or "-", str(i.message_count),
              _when(i.metadata.updated_at)) for i in infos]
    widths = [max(len(row[n]) for row in rows) for n in range(4)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)),
                         row[4]]))
    return 0


def _show(name: str, *, as_json: bool) -> int:
    from promptkit.engine.held import visible

    store = open_sessions(create=False)
    stored = None if store is None else store.load(name)
    if store is not None:
        store.close()
    if stored is None:
        print(f"promptkit: no session named {name!r}", file=sys.stderr)
        return 1
    messages = visible(stored.messages)
    meta = stored.metadata
    if as_json:
        print(safe_json({"name": name, "version": stored.version, **meta.to_dict(),
                         "messages": [m.to_dict() for m in messages]}, indent=2))
        return 0
    out = _safe_print  # the transcript is model output: no terminal controls
    out(f"session   {name}")
    out(f"pack      {meta.pack_id or '-'} {meta.pack_version}".rstrip())
    out(f"prompt    {meta.prompt or '-'}")
    if meta.variables:
        out("variables " + ", ".join(f"{k}={v}" for k, v in sorted(meta.variables.items())))
    out(f"created   {_when(meta.created_at)}")
    out(f"updated   {_when(meta.updated_at)}")
    out()
    for message in messages:
        if message.role == "user":
            out(f"you› {message.text}")
        elif message.role == "assistant":
            if message.text:
                out(f"ai›  {message.text}")
            for call in message.tool_calls:
                out(f"  → {call.name}({call.raw_arguments or json.dumps(call.arguments)})")
        elif message.role == "tool" and message.tool_result is not None:
            result = message.tool_result
            mark = "✗" if result.is_error else "←"
            out(f"  {mark} {result.content[:200]}")
    return 0


def _delete(name: str) -> int:
    store = open_sessions(create=False)
    try:
        if store is None or store.load(name) is None:
            print(f"promptkit: no session named {name!r}", file=sys.stderr)
            return 1
        store.delete(name)
    finally:
        if store is not None:
            store.close()
    print(f"Deleted session {name!r}.")
    return 0


def _safe_print(text: str = "") -> None:
    sys.stdout.write(safe_text(text) + "\n")


def _info_json(info: ConversationInfo) -> dict[str, Any]:
    return {"name": info.id, "version": info.version, "message_count": info.message_count,
            **info.metadata.to_dict()}


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
