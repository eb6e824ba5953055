"""A persistent store in one SQLite file (standard library ``sqlite3``): the CLI's default.

Design:

* **WAL journal**: readers never block the writer, and a process killed at any moment leaves
  the file consistent; a turn is either wholly in the file or not at all.
* **One transaction per append**, opened with ``BEGIN IMMEDIATE`` so the version check and the
  write happen under the database's write lock: two processes appending to one conversation
  serialise, and the loser gets :class:`ConflictError` instead of interleaving its turn.
* ``synchronous=FULL`` by default: a committed turn survives a power cut, not only a crash
  (``synchronous="NORMAL"`` trades that for ~no fsync per turn; a killed *process* still loses
  nothing committed).
* **Versioned schema**: the ``promptkit_migrations`` table records applied migrations, which run
  once, in one transaction, whoever opens the file first. ``PRAGMA application_id`` marks the
  file as ours, so a foreign SQLite file or a corrupted one fails with a clear StoreError.
* **Threads and processes**: a small pool of connections, one per concurrent caller; every
  operation takes a connection, runs its transaction and gives it back.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from promptkit._errors import StoreError
from promptkit.engine.messages import Message
from promptkit.stores._protocol import (
    ConflictError,
    ContextSummary,
    ConversationExistsError,
    ConversationInfo,
    ConversationMetadata,
    HistoryCache,
    StoredConversation,
    check_conversation_id,
    check_page,
    decode_message,
    decode_summary,
    decode_variables,
    encode_message,
    encode_summary,
    encode_variables,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

#: "PkKt": marks a SQLite file as a promptkit store (``PRAGMA application_id``).
APPLICATION_ID = 0x506B4B74

#: (version, description, SQL) in order; a released migration is never edited, only appended.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "conversations and messages", """
        CREATE TABLE conversations (
            id            TEXT PRIMARY KEY,
            incarnation   TEXT NOT NULL,
            version       INTEGER NOT NULL,
            message_count INTEGER NOT NULL,
            pack_id       TEXT NOT NULL DEFAULT '',
            prompt        TEXT NOT NULL DEFAULT '',
            pack_version  TEXT NOT NULL DEFAULT '',
            variables     TEXT NOT NULL DEFAULT '{}',
            created_at    REAL NOT NULL,
            updated_at    REAL NOT NULL
        );
        CREATE TABLE messages (
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            seq             INTEGER NOT NULL,
            turn            INTEGER NOT NULL,
            data            TEXT NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        ) WITHOUT ROWID;
    """),
    # A ContextPolicy summary (encode_summary's JSON, '' for none). Adding a column with a
    # constant default rewrites no row.
    (2, "context summaries", """
        ALTER TABLE conversations ADD COLUMN summary TEXT NOT NULL DEFAULT '';
    """),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

_COLUMNS = ("id, version, message_count, pack_id, prompt, pack_version, variables, created_at, "
            "updated_at, incarnation")

Synchronous = Literal["FULL", "NORMAL", "EXTRA"]


class SQLiteStore:
    """A :class:`~promptkit.stores.ConversationStore` in a SQLite file, safe to share between
    threads and processes.

        store = SQLiteStore("chats.db")
        conv = promptkit.open("hello.pack.json", "chat", store=store, conversation_id="ada")

    ``timeout`` is how long a writer waits for another process's transaction to finish (seconds)
    before failing with StoreError. The decoded histories of the ``cache_size`` most recently
    used conversations are kept, so a turn reads only the messages appended since the last
    one. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0,
                 synchronous: Synchronous = "FULL", cache_size: int = 256) -> None:
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ValueError("SQLiteStore needs a file path; use MemoryStore for memory")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be 'FULL', 'NORMAL' or 'EXTRA'")
        self._path = Path(path).expanduser()
        self._timeout = timeout
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []
        self._closed = False
        self._cache = HistoryCache(cache_size)
        self._finalizer = weakref.finalize(self, _close_all, self._all)
        try:
            with self._connection() as db:
                self._migrate(db)
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self._path)!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection; later calls raise StoreError. Idempotent."""
        with self._lock:
            self._closed = True
            self._idle.clear()
        self._finalizer()

    # --- the protocol --------------------------------------------------------------------

    def load(self, conversation_id: str) -> StoredConversation | None:
        check_conversation_id(conversation_id)
        incarnation, cached = self._cache.get(conversation_id)
        with self._connection() as db, _read(db):
            found = db.execute(f"SELECT {_COLUMNS}, summary FROM conversations WHERE id = ?",
                               (conversation_id,)).fetchone()
            if found is None:
                return None
            row, summary = found[:-1], found[-1]
            if row[-1] != incarnation or len(cached) > row[2]:
                cached = ()
            data = db.execute("SELECT data FROM messages WHERE conversation_id = ? AND "
                              "seq >= ? ORDER BY seq", (conversation_id, len(cached))).fetchall()
        info = self._info(row, decode_summary(summary))
        try:
            messages = cached + tuple(decode_message(text) for (text,) in data)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self._path}: conversation {conversation_id!r} has a message "
                             f"that cannot be read: {exc}") from exc
        if data:
            self._cache.put(conversation_id, row[-1], messages)
        return StoredConversation(id=conversation_id, messages=messages, version=info.version,
                                  metadata=info.metadata)

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int, *, metadata: ConversationMetadata | None = None) -> int:
        check_conversation_id(conversation_id)
        encoded = [encode_message(m) for m in messages]  # before taking the write lock
        variables = None if metadata is None else encode_variables(metadata.variables)
        summary = encode_summary(None if metadata is None else metadata.summary)
        with self._connection() as db, _write(db):
            row = db.execute("SELECT version, message_count, incarnation FROM conversations "
                             "WHERE id = ?", (conversation_id,)).fetchone()
            version, count, incarnation = (0, 0, uuid.uuid4().hex) if row is None else row
            if version != expected_version:
                raise ConflictError(f"conversation {conversation_id!r} is at version "
                                    f"{version}, expected {expected_version}")
            now = time.time()
            if row is None:
                meta = metadata or ConversationMetadata()
                db.execute(
                    f"INSERT INTO conversations ({_COLUMNS}, summary) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (conversation_id, 1, len(encoded), meta.pack_id, meta.prompt,
                     meta.pack_version, variables or "{}", now, now, incarnation, summary))
            elif metadata is None:
                db.execute("UPDATE conversations SET version = ?, message_count = ?, "
                           "updated_at = ? WHERE id = ?",
                           (version + 1, count + len(encoded), now, conversation_id))
            else:
                db.execute(
                    "UPDATE conversations SET version = ?, message_count = ?, updated_at = ?, "
                    "pack_id = CASE pack_id WHEN '' THEN ? ELSE pack_id END, "
                    "prompt = CASE ? WHEN '' THEN prompt ELSE ? END, "
                    "pack_version = CASE ? WHEN '' THEN pack_version ELSE ? END, "
                    "summary = CASE ? WHEN '' THEN summary ELSE ? END, "
                    "variables = ? WHERE id = ?",
                    (version + 1, count + len(encoded), now, metadata.pack_id,
                     metadata.prompt, metadata.prompt, metadata.pack_version,
                     metadata.pack_version, summary, summary, variables, conversation_id))
            db.executemany(
                "INSERT INTO messages (conversation_id, seq, turn, data) VALUES (?, ?, ?, ?)",
                [(conversation_id, count + i, version + 1, text)
                 for i, text in enumerate(encoded)])
        self._cache.extend(conversation_id, incarnation, count, messages)
        return version + 1

    def check_writable(self, conversation_id: str) -> None:
        """Raise StoreError if an append would fail because the database cannot be written
        (a read-only or immutable file, directory or file system), writing nothing.

        The drivers call it before the model is asked, so an answer is never paid for and then
        lost. SQLite decides when it opens a connection whether that connection may write, so
        each pooled connection is probed once: a write statement that changes no row, rolled
        back.
        """
        check_conversation_id(conversation_id)
        with self._connection() as db:
            if db.may_write:
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM messages WHERE 0")
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc) and "read-only" not in str(exc):
                    raise
                raise StoreError(
                    f"{self._path} cannot be written ({exc}): the turn was not sent; check "
                    "the permissions of the file and its directory") from exc
            finally:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            db.may_write = True

    def fork(self, source_id: str, target_id: str) -> None:
        check_conversation_id(source_id)
        check_conversation_id(target_id)
        with self._connection() as db, _write(db):
            if db.execute("SELECT 1 FROM conversations WHERE id = ?",
                          (target_id,)).fetchone() is not None:
                raise ConversationExistsError(f"conversation {target_id!r} already exists")
            now = time.time()
            db.execute(
                f"INSERT INTO conversations ({_COLUMNS}, summary) SELECT ?, version, "
                "message_count, pack_id, prompt, pack_version, variables, ?, ?, ?, summary "
                "FROM conversations WHERE id = ?",
                (target_id, now, now, uuid.uuid4().hex, source_id))
            db.execute("INSERT INTO messages (conversation_id, seq, turn, data) "
                       "SELECT ?, seq, turn, data FROM messages WHERE conversation_id = ?",
                       (target_id, source_id))

    def head(self, conversation_id: str) -> tuple[int, str]:
        check_conversation_id(conversation_id)
        with self._connection() as db, _read(db):
            row = db.execute("SELECT version, incarnation FROM conversations WHERE id = ?",
                             (conversation_id,)).fetchone()
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    def delete(self, conversation_id: str) -> None:
        check_conversation_id(conversation_id)
        with self._connection() as db, _write(db):
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        self._cache.discard(conversation_id)

    def list(self, *, prefix: str = "", after: str | None = None,
             limit: int = 100) -> builtins.list[ConversationInfo]:
        check_page(prefix, after, limit)
        with self._connection() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM conversations WHERE substr(id, 1, ?) = ? AND id > ? "
                "ORDER BY id LIMIT ?", (len(prefix), prefix, after or "", limit)).fetchall()
        return [self._info(row) for row in rows]

    # --- plumbing ------------------------------------------------------------------------

    def _info(self, row: tuple[Any, ...], summary: ContextSummary | None = None
              ) -> ConversationInfo:
        (conversation_id, version, count, pack_id, prompt, pack_version, variables, created,
         updated, _) = row
        try:
            values = decode_variables(variables)
        except ValueError as exc:
            raise StoreError(f"{self._path}: conversation {conversation_id!r} has unreadable "
                             f"variables: {exc}") from exc
        return ConversationInfo(
            id=conversation_id, version=version, message_count=count,
            metadata=ConversationMetadata(pack_id=pack_id, prompt=prompt,
                                          pack_version=pack_version, variables=values,
                                          created_at=created, updated_at=updated,
                                          summary=summary))

    @contextlib.contextmanager
    def _connection(self) -> Iterator[_Connection]:
        """A connection of the pool for one operation; sqlite3 errors become StoreError."""
        with self._lock:
            if self._closed:
                raise StoreError(f"{self!r} is closed")
            db = self._idle.pop() if self._idle else None
        healthy = True
        try:
            if db is None:
                db = self._connect()
            yield db
        except sqlite3.Error as exc:
            healthy = False
            raise self._error(exc) from exc
        finally:
            if db is not None:
                if db.in_transaction:  # only after a failed COMMIT/ROLLBACK
                    healthy = False
                with self._lock:
                    keep = healthy and not self._closed
                    if keep:
                        self._idle.append(db)
                    else:
                        with contextlib.suppress(ValueError):
                            self._all.remove(db)
                if not keep:
                    with contextlib.suppress(sqlite3.Error):
                        db.close()

    def _connect(self) -> _Connection:
        # isolation_level=None: no implicit transactions; we BEGIN explicitly.
        db = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None,
                             check_same_thread=False, factory=_Connection)
        try:
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            db.close()
            raise
        with self._lock:
            self._all.append(db)
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]  # reads the header
        if app_id not in (0, APPLICATION_ID):
            raise self._foreign(f"its application_id is {app_id:#x}")
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            # Needs no other connection in the middle of a transaction; retried by the timeout.
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self._path}: cannot use WAL journaling (got {mode!r})")
        with _write(db):
            tables = {name for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "promptkit_migrations" not in tables:
                if tables or app_id == APPLICATION_ID:
                    raise self._foreign("it has other tables (" + ", ".join(sorted(tables)) + ")"
                                        if tables else "its migrations table is missing")
                db.execute("CREATE TABLE promptkit_migrations (version INTEGER PRIMARY KEY, "
                           "description TEXT NOT NULL, applied_at REAL NOT NULL)")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            applied = db.execute(
                "SELECT coalesce(max(version), 0) FROM promptkit_migrations").fetchone()[0]
            if applied > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._path}: the store's schema is version {applied}, newer than this "
                    f"promptkit understands ({SCHEMA_VERSION}); upgrade promptkit")
            for version, description, script in MIGRATIONS:
                if version > applied:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO promptkit_migrations VALUES (?, ?, ?)",
                               (version, description, time.time()))

    def _foreign(self, why: str) -> StoreError:
        return StoreError(f"{self._path} is not a promptkit conversation store: {why}. "
                          "Point SQLiteStore at a new file or at one it created.")

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
                "not a database" in text or "malformed" in text or "corrupt" in text):
            return StoreError(f"{self._path} is corrupted or not a promptkit conversation "
                              f"store ({text}); move it aside to start afresh")
        if "locked" in text or "busy" in text:
            return StoreError(f"{self._path}: the database stayed locked by another "
                              f"connection for more than {self._timeout} s ({text})")
        return StoreError(f"{self._path}: {text}")


class _Connection(sqlite3.Connection):
    """A pooled connection that remembers whether it was found able to write."""

    may_write = False


@contextlib.contextmanager
def _write(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction holding the write lock from its start (no lock upgrade races)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextlib.contextmanager
def _read(db: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: every query inside sees the same snapshot."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def _close_all(connections: builtins.list[_Connection]) -> None:
    for db in connections:
        with contextlib.suppress(sqlite3.Error):
            db.close()
    connections.clear()
