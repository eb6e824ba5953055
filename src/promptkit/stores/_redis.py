"""Conversations in Redis, shared by processes on many machines: RedisStore and AsyncRedisStore.

Layout under ``prefix`` (default ``promptkit``), for conversation id ``ID``::

    PREFIX:meta:ID       hash: version, message_count, pack_id, prompt, pack_version,
                         variables (JSON), created_at, updated_at, token, incarnation,
                         summary (JSON, once a ContextPolicy made one)
    PREFIX:messages:ID   list: one JSON message per item, oldest first
    PREFIX:index         sorted set of ids (all scores 0, so ordered by id: list() pages by id)

An append is one Lua script, which Redis runs atomically: it checks the version, pushes the
messages, bumps the version and the updated time and refreshes the TTL, or does nothing. Each
append carries a random token kept in the hash, so when a connection drops after Redis ran the
script but before the reply arrived, the client's automatic retry is recognised as the same
append (it succeeds once) instead of failing with a ConflictError or writing the turn twice.
Held tool calls live in the history, so any process sharing the store can approve them.

Loading is a Lua script too (one atomic read). It is given the ``incarnation`` (a random token
set when the id is created) and length of the history this client has cached, and returns only
the messages appended since, so a turn costs O(new messages), not O(history).

Both classes share the pure parts (keys, arguments, decoding) defined here; only the calls
differ. Cluster mode is not supported (fork and the index touch keys of different slots).
"""

from __future__ import annotations

import builtins
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from promptkit._errors import StoreError
from promptkit.engine.messages import Message
from promptkit.stores._protocol import (
    ConflictError,
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

__all__ = ["AsyncRedisStore", "RedisStore"]

_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,100}")
_CHUNK = 1000  # Lua's unpack() handles a few thousand values at most

APPEND = """
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local expected = tonumber(ARGV[1])
if version ~= expected then
  if version == expected + 1 and redis.call('HGET', KEYS[1], 'token') == ARGV[5] then
    return {1, version, '', -1}
  end
  return {0, version, '', -1}
end
local before = tonumber(redis.call('HGET', KEYS[1], 'message_count') or '0')
if version == 0 then
  before = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'message_count', 0, 'pack_id', ARGV[7],
             'prompt', ARGV[8], 'pack_version', ARGV[9], 'variables', ARGV[10],
             'incarnation', ARGV[5])
elseif ARGV[6] == '1' then
  if (redis.call('HGET', KEYS[1], 'pack_id') or '') == '' then
    redis.call('HSET', KEYS[1], 'pack_id', ARGV[7])
  end
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'prompt', ARGV[8]) end
  if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'pack_version', ARGV[9]) end
  redis.call('HSET', KEYS[1], 'variables', ARGV[10])
end
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'summary', ARGV[11]) end
for i = 12, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('HSET', KEYS[1], 'version', version + 1, 'updated_at', ARGV[2], 'token', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'message_count', #ARGV - 11)
redis.call('ZADD', KEYS[3], 0, ARGV[4])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {1, version + 1, redis.call('HGET', KEYS[1], 'incarnation') or '', before}
"""

LOAD = """
local meta = redis.call('HGETALL', KEYS[1])
if #meta == 0 then return {meta, {}, 0} end
local start = 0
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'incarnation') == ARGV[1] then
  start = tonumber(ARGV[2])
end
return {meta, redis.call('LRANGE', KEYS[2], start, -1), start}
"""

FORK = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[3], unpack(redis.call('HGETALL', KEYS[1])))
redis.call('HSET', KEYS[3], 'created_at', ARGV[1], 'updated_at', ARGV[1],
           'incarnation', ARGV[4])
redis.call('HDEL', KEYS[3], 'token')
local n = redis.call('LLEN', KEYS[2])
for i = 0, n - 1, 1000 do
  redis.call('RPUSH', KEYS[4], unpack(redis.call('LRANGE', KEYS[2], i, i + 999)))
end
redis.call('ZADD', KEYS[5], 0, ARGV[3])
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
end
return 1
"""


class _Layout:
    """Keys and script arguments: everything both Redis stores compute the same way."""

    def __init__(self, prefix: str, ttl: float | None, cache_size: int) -> None:
        if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
            raise ValueError(f"invalid key prefix {prefix!r}: use A-Z a-z 0-9 . _ -")
        if ttl is not None and not ttl > 0:
            raise ValueError("ttl must be a positive number of seconds")
        self.prefix = prefix
        self.ttl = ttl
        self.ttl_ms = 0 if ttl is None else max(1, int(ttl * 1000))
        self.index = f"{prefix}:index"
        self.probe = f"{prefix}:writable-probe"  # never written: deleted to test for writes
        self.cache = HistoryCache(cache_size)

    def meta(self, conversation_id: str) -> str:
        return f"{self.prefix}:meta:{check_conversation_id(conversation_id)}"

    def messages(self, conversation_id: str) -> str:
        return f"{self.prefix}:messages:{check_conversation_id(conversation_id)}"

    def append_call(self, conversation_id: str, messages: Sequence[Message],
                    expected_version: int, metadata: ConversationMetadata | None
                    ) -> tuple[list[str], list[Any]]:
        if not isinstance(expected_version, int) or expected_version < 0:
            raise ValueError("expected_version must be a non-negative integer")
        meta = metadata or ConversationMetadata()
        keys = [self.meta(conversation_id), self.messages(conversation_id), self.index]
        args: list[Any] = [
            expected_version, repr(time.time()), self.ttl_ms, conversation_id, uuid.uuid4().hex,
            "0" if metadata is None else "1", meta.pack_id, meta.prompt, meta.pack_version,
            encode_variables(meta.variables), encode_summary(meta.summary)]
        args += [encode_message(m) for m in messages]
        return keys, args

    def fork_call(self, source_id: str, target_id: str) -> tuple[list[str], list[Any]]:
        keys = [self.meta(source_id), self.messages(source_id), self.meta(target_id),
                self.messages(target_id), self.index]
        return keys, [repr(time.time()), self.ttl_ms, target_id, uuid.uuid4().hex]

    def load_call(self, conversation_id: str
                  ) -> tuple[list[str], list[Any], tuple[Message, ...]]:
        """The LOAD script's keys and arguments, and the cached history they refer to."""
        incarnation, cached = self.cache.get(conversation_id)
        keys = [self.meta(conversation_id), self.messages(conversation_id)]
        return keys, [incarnation, len(cached)], cached

    def append_result(self, conversation_id: str, messages: Sequence[Message],
                      expected_version: int, result: Any) -> int:
        ok, version = int(result[0]), int(result[1])
        if not ok:
            raise ConflictError(f"conversation {conversation_id!r} is at version {version}, "
                                f"expected {expected_version}")
        before = int(result[3])
        if before >= 0:
            self.cache.extend(conversation_id, _text(result[2]), before, messages)
        return version

    @staticmethod
    def head(found: Any) -> tuple[int, str]:
        """``(version, incarnation)`` from ``HMGET meta version incarnation``."""
        version, incarnation = found
        if version is None:
            return 0, ""
        return int(version), _text(incarnation or "")

    @staticmethod
    def fork_result(target_id: str, result: Any) -> None:
        if int(result) == 0:
            raise ConversationExistsError(f"conversation {target_id!r} already exists")

    def stored(self, conversation_id: str, result: Any, cached: tuple[Message, ...]
               ) -> StoredConversation | None:
        """Decode the LOAD script's reply: the hash, the messages from ``start`` on, and
        ``start`` (``len(cached)`` when the cached history was still valid, else 0)."""
        flat, items, start = result
        if not flat:
            return None
        meta = {_text(k): v for k, v in zip(flat[::2], flat[1::2], strict=True)}
        info = self.info(conversation_id, meta, summary=True)
        incarnation = _text(meta.get("incarnation", ""))
        if int(start) != len(cached):
            cached = ()
        try:
            messages = cached + tuple(decode_message(item) for item in items)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"redis: conversation {conversation_id!r} has a message that "
                             f"cannot be read: {exc}") from exc
        if items:
            self.cache.put(conversation_id, incarnation, messages)
        return StoredConversation(id=conversation_id, messages=messages, version=info.version,
                                  metadata=info.metadata)

    @staticmethod
    def info(conversation_id: str, meta: Mapping[Any, Any], *,
             summary: bool = False) -> ConversationInfo:
        """The hash as a ConversationInfo; its summary only with ``summary`` (a load)."""
        fields = {_text(k): _text(v) for k, v in meta.items()}
        try:
            return ConversationInfo(
                id=conversation_id, version=int(fields.get("version", 0)),
                message_count=int(fields.get("message_count", 0)),
                metadata=ConversationMetadata(
                    pack_id=fields.get("pack_id", ""), prompt=fields.get("prompt", ""),
                    pack_version=fields.get("pack_version", ""),
                    variables=decode_variables(fields.get("variables")),
                    created_at=_float(fields.get("created_at")),
                    updated_at=_float(fields.get("updated_at")),
                    summary=decode_summary(fields.get("summary")) if summary else None))
        except ValueError as exc:
            raise StoreError(f"redis: conversation {conversation_id!r} has unreadable "
                             f"metadata: {exc}") from exc

    @staticmethod
    def lex_range(prefix: str, after: str | None) -> tuple[str, str]:
        """ZRANGEBYLEX bounds for ids starting with ``prefix``, strictly after ``after``."""
        if after is not None and after >= prefix:
            low = f"({after}"
        else:
            low = f"[{prefix}" if prefix else "-"
        high = f"({prefix[:-1]}{chr(ord(prefix[-1]) + 1)}" if prefix else "+"
        return low, high


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _float(value: str | None) -> float | None:
    return float(value) if value else None


INSTALL_HINT = "pip install 'promptkit-sdk[redis]'"


def import_redis() -> None:
    """Import the optional ``redis`` package, or raise ImportError naming the extra."""
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"the Redis stores need the optional 'redis' package: {INSTALL_HINT}",
                          name="redis") from exc


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    """Translate the redis package's errors into StoreError, once, at the boundary."""
    import redis

    try:
        yield
    except redis.exceptions.ConnectionError as exc:
        raise StoreError(f"redis: cannot {action}: the server is unreachable ({exc})") from exc
    except redis.exceptions.TimeoutError as exc:
        raise StoreError(f"redis: cannot {action}: timed out ({exc})") from exc
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"redis: cannot {action}: {exc}") from exc


def _client_options(retry: Any) -> dict[str, Any]:
    """Options of a client the store creates: bounded waits, and a dropped connection retried
    with backoff (about 1 s in all by default), so a restarted server is reconnected to."""
    import redis

    return {"socket_connect_timeout": 5.0, "socket_timeout": 30.0, "health_check_interval": 30,
            "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
            "retry": retry}


class RedisStore:
    """A :class:`~promptkit.stores.ConversationStore` in Redis.

        store = RedisStore("redis://localhost:6379/0", ttl=7 * 24 * 3600)
        conv = promptkit.open("hello.pack.json", "chat", store=store, conversation_id="ada")

    ``url_or_client`` is a ``redis://`` URL (the store then owns its client, which reconnects
    and retries a dropped command a few times, with backoff) or a ``redis.Redis`` client you
    configure and close. ``ttl`` (seconds) makes a conversation expire that long after its
    last append or fork; by default nothing expires. The decoded histories of the
    ``cache_size`` most recently used conversations are kept in this process.
    """

    def __init__(self, url_or_client: Any = "redis://localhost:6379/0", *,
                 prefix: str = "promptkit", ttl: float | None = None,
                 retries: int = 6, cache_size: int = 256) -> None:
        import_redis()
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self._layout = _Layout(prefix, ttl, cache_size)
        if isinstance(url_or_client, str):
            retry = Retry(ExponentialBackoff(cap=0.5, base=0.02), retries)
            self._client = redis.Redis.from_url(url_or_client, **_client_options(retry))
            self._owned = True
        else:
            self._client = url_or_client
            self._owned = False
        self._append = self._client.register_script(APPEND)
        self._fork = self._client.register_script(FORK)
        self._load = self._client.register_script(LOAD)

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client in use."""
        return self._client

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._layout.prefix!r}, ttl={self._layout.ttl!r})"

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client if the store created it (from a URL)."""
        if self._owned:
            self._client.close()

    def load(self, conversation_id: str) -> StoredConversation | None:
        keys, args, cached = self._layout.load_call(conversation_id)
        with _redis_errors("load"):
            result = self._load(keys=keys, args=args)
        return self._layout.stored(conversation_id, result, cached)

    def append(self, conversation_id: str, messages: Sequence[Message],
               expected_version: int, *, metadata: ConversationMetadata | None = None) -> int:
        keys, args = self._layout.append_call(conversation_id, messages, expected_version,
                                              metadata)
        with _redis_errors("append"):
            result = self._append(keys=keys, args=args)
        return self._layout.append_result(conversation_id, messages, expected_version, result)

    def head(self, conversation_id: str) -> tuple[int, str]:
        with _redis_errors("load"):
            found = self._client.hmget(self._layout.meta(conversation_id),
                                       ["version", "incarnation"])
        return self._layout.head(found)

    def check_writable(self, conversation_id: str) -> None:
        """Raise StoreError if the server refuses writes (a read-only replica, an ACL without
        write permission), by a write that changes nothing: one round trip per turn."""
        check_conversation_id(conversation_id)
        with _redis_errors("take the turn"):
            self._client.delete(self._layout.probe)

    def fork(self, source_id: str, target_id: str) -> None:
        keys, args = self._layout.fork_call(source_id, target_id)
        with _redis_errors("fork"):
            result = self._fork(keys=keys, args=args)
        self._layout.fork_result(target_id, result)

    def delete(self, conversation_id: str) -> None:
        layout = self._layout
        with _redis_errors("delete"):
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(layout.meta(conversation_id), layout.messages(conversation_id))
            pipe.zrem(layout.index, conversation_id)
            pipe.execute()
        layout.cache.discard(conversation_id)

    def list(self, *, prefix: str = "", after: str | None = None,
             limit: int = 100) -> builtins.list[ConversationInfo]:
        check_page(prefix, after, limit)
        layout = self._layout
        found: builtins.list[ConversationInfo] = []
        low, high = layout.lex_range(prefix, after)
        with _redis_errors("list"):
            while len(found) < limit:
                ids = [_text(i) for i in self._client.zrangebylex(
                    layout.index, low, high, start=0, num=limit - len(found))]
                if not ids:
                    break
                pipe = self._client.pipeline(transaction=False)
                for conversation_id in ids:
                    pipe.hgetall(layout.meta(conversation_id))
                expired = []
                for conversation_id, meta in zip(ids, pipe.execute(), strict=True):
                    if meta:
                        found.append(layout.info(conversation_id, meta))
                    else:  # expired by its TTL (or deleted meanwhile): tidy the index
                        expired.append(conversation_id)
                if expired:
                    self._client.zrem(layout.index, *expired)
                low = f"({ids[-1]}"
        return found


class AsyncRedisStore:
    """The asyncio twin of :class:`RedisStore` (``redis.asyncio``); same layout and options.

        store = AsyncRedisStore("redis://localhost:6379/0")
        async with promptkit.open_async(pack, "chat", store=store) as conv: ...
        await store.aclose()
    """

    def __init__(self, url_or_client: Any = "redis://localhost:6379/0", *,
                 prefix: str = "promptkit", ttl: float | None = None,
                 retries: int = 6, cache_size: int = 256) -> None:
        import_redis()
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        self._layout = _Layout(prefix, ttl, cache_size)
        if isinstance(url_or_client, str):
            retry = Retry(ExponentialBackoff(cap=0.5, base=0.02), retries)
            self._client = redis.asyncio.Redis.from_url(url_or_client, **_client_options(retry))
            self._owned = True
        else:
            self._client = url_or_client
            self._owned = False
        self._append = self._client.register_script(APPEND)
        self._fork = self._client.register_script(FORK)
        self._load = self._client.register_script(LOAD)

    @property
    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` client in use."""
        return self._client

    def __repr__(self) -> str:
        return f"AsyncRedisStore(prefix={self._layout.prefix!r}, ttl={self._layout.ttl!r})"

    async def __aenter__(self) -> AsyncRedisStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if the store created it (from a URL)."""
        if self._owned:
            await self._client.aclose()

    async def load(self, conversation_id: str) -> StoredConversation | None:
        keys, args, cached = self._layout.load_call(conversation_id)
        with _redis_errors("load"):
            result = await self._load(keys=keys, args=args)
        return self._layout.stored(conversation_id, result, cached)

    async def append(self, conversation_id: str, messages: Sequence[Message],
                     expected_version: int, *,
                     metadata: ConversationMetadata | None = None) -> int:
        keys, args = self._layout.append_call(conversation_id, messages, expected_version,
                                              metadata)
        with _redis_errors("append"):
            result = await self._append(keys=keys, args=args)
        return self._layout.append_result(conversation_id, messages, expected_version, result)

    async def head(self, conversation_id: str) -> tuple[int, str]:
        with _redis_errors("load"):
            found = await self._client.hmget(self._layout.meta(conversation_id),
                                             ["version", "incarnation"])
        return self._layout.head(found)

    async def check_writable(self, conversation_id: str) -> None:
        """Raise StoreError if the server refuses writes (see RedisStore.check_writable)."""
        check_conversation_id(conversation_id)
        with _redis_errors("take the turn"):
            await self._client.delete(self._layout.probe)

    async def fork(self, source_id: str, target_id: str) -> None:
        keys, args = self._layout.fork_call(source_id, target_id)
        with _redis_errors("fork"):
            result = await self._fork(keys=keys, args=args)
        self._layout.fork_result(target_id, result)

    async def delete(self, conversation_id: str) -> None:
        layout = self._layout
        with _redis_errors("delete"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(layout.meta(conversation_id), layout.messages(conversation_id))
                pipe.zrem(layout.index, conversation_id)
                await pipe.execute()
        layout.cache.discard(conversation_id)

    async def list(self, *, prefix: str = "", after: str | None = None,
                   limit: int = 100) -> builtins.list[ConversationInfo]:
        check_page(prefix, after, limit)
        layout = self._layout
        found: builtins.list[ConversationInfo] = []
        low, high = layout.lex_range(prefix, after)
        with _redis_errors("list"):
            while len(found) < limit:
                ids = [_text(i) for i in await self._client.zrangebylex(
                    layout.index, low, high, start=0, num=limit - len(found))]
                if not ids:
                    break
                async with self._client.pipeline(transaction=False) as pipe:
                    for conversation_id in ids:
                        pipe.hgetall(layout.meta(conversation_id))
                    metas = await pipe.execute()
                expired = []
                for conversation_id, meta in zip(ids, metas, strict=True):
                    if meta:
                        found.append(layout.info(conversation_id, meta))
                    else:
                        expired.append(conversation_id)
                if expired:
                    await self._client.zrem(layout.index, *expired)
                low = f"({ids[-1]}"
        return found
