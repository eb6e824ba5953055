"""MCP servers (stdio) as tool providers: :class:`MCPServer`.

The ``mcp`` package (``pip install 'promptkit-sdk[mcp]'``) is imported only when a server
starts. Its stdio client and session live in a private event loop in a daemon thread;
:meth:`MCPServer.call` and the handlers from :meth:`MCPServer.handler` are *blocking*, safe
from any thread and bounded by ``timeout``. The process gets the ``mcp`` package's safe
default environment (``HOME``, ``PATH``, ``SHELL``, ``TERM``, ``USER``, ``LOGNAME``) plus
``env``: the application's API keys are not passed on unless given. Its stderr goes to the
``promptkit.mcp`` logger (DEBUG) and its last lines into the error raised when it exits.
On POSIX it starts through a tiny ``exec`` shim that reports :attr:`MCPServer.pid`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from promptkit._errors import ToolError, present_as_promptkit

if TYPE_CHECKING:
    import anyio
    from mcp import ClientSession

    from promptkit.engine.tool_round import RegisteredTool

__all__ = ["MCPError", "MCPServer", "MCPServerError", "MCPTimeoutError", "MCPToolError"]

logger = logging.getLogger("promptkit.mcp")

INSTALL_HINT = "pip install 'promptkit-sdk[mcp]'"
_NAME_OK = re.compile(r"^[A-Za-z0-9_-]+$")
_RUNNERS = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|py|node|npx|npm|pnpm|yarn|uv|uvx|bun|bunx|"
                      r"deno|pipx|docker|podman)$")
_SUBCOMMANDS = frozenset({"run", "tool", "x", "exec", "dlx", "--"})
_CONNECTION_CLOSED = -32000  # mcp.types.CONNECTION_CLOSED (1.x and 2.x)
_CLOSE_TIMEOUT = 8.0  # the mcp client's own shutdown is bounded at about 4.5 s
_HANDLER_GRACE = 5.0  # registered tool timeout = server timeout + this (ours fires first)
_PID_MARK = b"promptkit-mcp-pid:"
_SHIM = (  # reports its pid on stderr, then becomes the server (exec keeps the pid)
    "import os, sys\nos.write(2, b'promptkit-mcp-pid:%d\\n' % os.getpid())\n"
    "try: os.execvp(sys.argv[1], sys.argv[1:])\nexcept OSError as exc:\n"
    "    os.write(2, f'cannot start {sys.argv[1]!r}: {exc}\\n'.encode()); os._exit(127)\n")


class MCPError(ToolError):
    """An MCP server or one of its tools failed."""


class MCPServerError(MCPError):
    """An MCP server could not start, exited, or was closed."""


class MCPToolError(MCPError):
    """An MCP tool answered with ``isError``; the message is the server's."""


class MCPTimeoutError(MCPError, TimeoutError):
    """An MCP tool did not answer within the timeout."""


present_as_promptkit(MCPError, MCPServerError, MCPToolError, MCPTimeoutError)


@dataclass(frozen=True, slots=True)
class _Tool:
    exposed: str
    name: str
    description: str
    schema: dict[str, Any]


def import_mcp() -> None:
    """Import the optional ``mcp`` package, or raise ImportError saying how to install it."""
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"MCP servers need the optional 'mcp' package: {INSTALL_HINT}",
                          name="mcp") from exc


def server_name(command: Sequence[str]) -> str:
    """A name from a command: the script or package a runner starts (``python server.py`` →
    ``server``, ``npx -y @org/server-git`` → ``server-git``), else the executable's; without
    extension, version, or characters other than ``[A-Za-z0-9_-]``."""
    def stem(arg: str) -> str:
        base = re.split(r"[\\/]", arg.rstrip("/\\"))[-1]
        base = base.split("@")[0] if not base.startswith("@") else base[1:]
        return os.path.splitext(base.split(":")[0])[0]

    pick = stem(command[0])
    if _RUNNERS.match(pick.lower()):
        for before, arg in itertools.pairwise(command):
            if before == "-m":
                pick = arg.rsplit(".", 1)[-1]
                break
            if not (arg.startswith("-") or "=" in arg or arg in _SUBCOMMANDS):
                pick = stem(arg)
                break
    return re.sub(r"[^A-Za-z0-9_-]+", "_", pick).strip("_") or "mcp"


class MCPServer:
    """One stdio MCP server, its tools offered as ``mcp__<server>__<tool>``.

        with MCPServer(["npx", "-y", "@modelcontextprotocol/server-everything"]) as srv:
            print(srv.tools(), srv.call("echo", {"message": "hi"}))

    ``allowed_tools`` (the server's tool names) limits what is offered; ``timeout`` bounds
    each call, ``start_timeout`` the start (spawn, initialize, list tools). Conversation
    forks share a server: :meth:`retain` / :meth:`release` count its users (the last release
    closes it); :meth:`close` stops it whatever the count.
    """

    def __init__(self, command: Sequence[str], *, name: str | None = None,
                 env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None,
                 allowed_tools: Sequence[str] | None = None, timeout: float = 30.0,
                 start_timeout: float = 60.0) -> None:
        if isinstance(command, str | bytes) or not command or not all(
                isinstance(part, str) for part in command):
            raise TypeError("command must be a non-empty list of strings, e.g. "
                            "['python', 'server.py'] (shlex.split splits a command line)")
        if name is not None and not _NAME_OK.match(name):
            raise ValueError(f"MCP server name {name!r} may only use letters, digits, '_', '-'")
        if not (timeout > 0 and start_timeout > 0):
            raise ValueError(f"timeouts must be positive, not {timeout!r} / {start_timeout!r}")
        self.command: tuple[str, ...] = tuple(command)
        self.name: str = name or server_name(command)
        self.timeout, self.start_timeout = float(timeout), float(start_timeout)
        self._env = {str(k): str(v) for k, v in (env or {}).items()}
        self._cwd = None if cwd is None else os.fspath(cwd)
        self._allowed = None if allowed_tools is None else tuple(allowed_tools)
        self._lock = threading.Lock()
        self._state, self._users = "new", 0  # new → starting → running → closed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # runs the loop
        self._serving: concurrent.futures.Future[None] | None = None
        self._scope: anyio.CancelScope | None = None
        self._closing = False  # close() as seen from the loop thread
        self._session: ClientSession | None = None
        self._catalog: dict[str, _Tool] = {}
        self._inflight: set[concurrent.futures.Future[dict[str, Any]]] = set()
        self._exited: str | None = None  # how the server exited, once it has
        self.pid: int | None = None  # the process id once started (None on Windows)
        self._pid_known, self._stderr_done = threading.Event(), threading.Event()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)

    def __enter__(self) -> MCPServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._state == "running" and self._exited is None

    def start(self) -> MCPServer:
        """Spawn the server, initialize the session and list its tools (blocking)."""
        with self._lock:
            if self._state != "new":
                raise MCPServerError(f"MCP server {self.name!r} was already started")
            self._state = "starting"
        try:
            import_mcp()
            self._catalog = self._select(self._spawn())
        except BaseException:
            self.close()
            raise
        with self._lock:
            if self._state != "starting":
                raise MCPServerError(f"MCP server {self.name!r} was closed while starting")
            self._state, self._users = "running", 1
        return self

    def _spawn(self) -> list[dict[str, Any]]:
        from mcp.client.stdio import get_default_environment

        env = get_default_environment() | self._env
        exe, argv = self.command[0], list(self.command)
        if not re.search(r"[\\/]", exe) and shutil.which(exe, path=env.get("PATH")) is None:
            raise MCPServerError(f"cannot start MCP server {self.name!r}: {exe!r} is not on PATH")
        if sys.platform != "win32" and sys.executable:
            argv = [sys.executable, "-I", "-S", "-c", _SHIM, *argv]
        else:
            self._pid_known.set()
        read_fd, write_fd = os.pipe()
        threading.Thread(target=self._read_stderr, args=(read_fd,), daemon=True,
                         name=f"promptkit-mcp-{self.name}-stderr").start()
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run_loop, args=(loop,), daemon=True,
                                        name=f"promptkit-mcp-{self.name}")
        self._thread.start()
        ready: concurrent.futures.Future[list[dict[str, Any]]] = concurrent.futures.Future()
        self._serving = asyncio.run_coroutine_threadsafe(
            self._serve(argv, env, os.fdopen(write_fd, "w"), ready), loop)
        try:
            listed = ready.result(timeout=self.start_timeout + _CLOSE_TIMEOUT)
        except MCPServerError:
            raise
        except Exception as exc:
            self._stderr_done.wait(0.5)
            raise MCPServerError(f"MCP server {self.name!r} failed to start: "
                                 f"{_describe(exc)}{self._tail()}") from exc
        self._pid_known.wait(2.0)
        return listed

    async def _serve(self, argv: list[str], env: dict[str, str], errlog: TextIO,
                     ready: concurrent.futures.Future[list[dict[str, Any]]]) -> None:
        """The session's whole life, in one task of the private loop (as anyio needs)."""
        import anyio
        from mcp import ClientSession, StdioServerParameters, stdio_client

        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=self._cwd)
        try:
            with anyio.CancelScope() as self._scope:
                if self._closing:
                    self._scope.cancel()
                async with stdio_client(params, errlog=errlog) as (read, write):
                    errlog.close()  # the child has its copy: EOF on ours means it is gone
                    async with ClientSession(read, write) as session:
                        with anyio.fail_after(self.start_timeout):
                            await session.initialize()
                            listed = await _list_tools(session)
                        self._session = session
                        ready.set_result(listed)
                        await anyio.sleep_forever()
        except BaseException as exc:  # reported through `ready`, or logged
            leaf = _leaf(exc)
            if ready.done():
                logger.debug("MCP server %r: session ended: %r", self.name, exc)
            elif isinstance(leaf, TimeoutError):
                ready.set_exception(MCPServerError(f"MCP server {self.name!r} did not answer "
                                                   f"initialize within {self.start_timeout:g} s"))
            else:
                ready.set_exception(leaf)
            if not isinstance(exc, Exception):
                raise
        finally:
            errlog.close()
            self._session = None
            if not ready.done():
                ready.set_exception(MCPServerError(
                    f"MCP server {self.name!r} was closed while starting"))
            if not self._closing and self._exited is None:
                self._exited = "(its session ended)"

    def _cancel_serving(self) -> None:  # in the loop thread
        self._closing = True
        if self._scope is not None:
            self._scope.cancel()

    def _read_stderr(self, fd: int) -> None:
        """Forward the server's stderr to the log, keep its tail, learn the pid."""
        with open(fd, "rb") as stream:
            for raw in stream:
                if self.pid is None and raw.startswith(_PID_MARK):
                    with contextlib.suppress(ValueError):
                        self.pid = int(raw[len(_PID_MARK):])
                    self._pid_known.set()
                elif line := raw.decode("utf-8", "replace").strip():
                    self._stderr_tail.append(line)
                    logger.debug("MCP server %r: %s", self.name, line)
        self._pid_known.set()
        self._stderr_done.set()

    def retain(self) -> MCPServer:
        """Count one more user (a fork); returns ``self``."""
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        """Count one user less; the last one closes the server."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.close()

    def close(self) -> None:
        """Stop the session, the server process and the loop thread. Idempotent and bounded
        in time even if the server is dead or stuck (it is then killed)."""
        with self._lock:
            if self._state == "closed":
                return
            self._state = "closed"
            inflight = list(self._inflight)
        for future in inflight:
            future.cancel()
        loop, thread, serving = self._loop, self._thread, self._serving
        if loop is None or thread is None or serving is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(self._cancel_serving)
        done, _ = concurrent.futures.wait([serving], timeout=_CLOSE_TIMEOUT)
        if not done and self.pid is not None and sys.platform != "win32":
            logger.warning("MCP server %r did not shut down in time; killing it", self.name)
            with contextlib.suppress(OSError):  # the mcp client makes it a group leader
                os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=2.0)

    def _select(self, listed: list[dict[str, Any]]) -> dict[str, _Tool]:
        names = [str(tool.get("name", "")) for tool in listed]
        unknown = sorted(set(self._allowed or ()) - set(names))
        if unknown:
            raise MCPServerError(f"MCP server {self.name!r} has no tool {unknown}; "
                                 f"its tools: {sorted(names)}")
        catalog: dict[str, _Tool] = {}
        for tool, name in zip(listed, names, strict=True):
            if self._allowed is not None and name not in self._allowed:
                continue
            exposed = f"mcp__{self.name}__{re.sub(r'[^A-Za-z0-9_-]', '_', name)}"
            if exposed in catalog:  # "a.b" and "a_b": keep the first
                logger.warning("MCP server %r: tool %r skipped (as %r)", self.name, name, exposed)
                continue
            schema = dict(tool.get("inputSchema") or {})
            if schema.setdefault("type", "object") == "object":
                schema.setdefault("properties", {})
            description = str(tool.get("description") or tool.get("title") or "")
            catalog[exposed] = _Tool(exposed, name, description, schema)
        return catalog

    def tools(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(exposed name, description, input schema)`` of each offered tool."""
        if self._state in ("new", "starting"):
            raise MCPServerError(f"MCP server {self.name!r} is not started")
        return [(t.exposed, t.description, dict(t.schema)) for t in self._catalog.values()]

    def handler(self, tool_name: str) -> Callable[[dict[str, Any]], Any]:
        """A blocking ``handler(arguments)`` calling ``tool_name`` (exposed or server name)."""
        self.tools()  # started?
        tool = self._catalog.get(tool_name) or next(
            (t for t in self._catalog.values() if t.name == tool_name), None)
        if tool is None:
            raise ValueError(f"MCP server {self.name!r} offers no tool {tool_name!r}; "
                             f"offered: {sorted(self._catalog)}")
        server_tool = tool.name

        def call_mcp_tool(arguments: dict[str, Any]) -> Any:
            return self.call(server_tool, arguments)

        call_mcp_tool.__qualname__ = call_mcp_tool.__name__ = tool.exposed
        return call_mcp_tool

    def registered_tools(self) -> list[tuple[str, RegisteredTool]]:
        """``(exposed name, RegisteredTool)`` of each offered tool, for a ToolRegistry."""
        from promptkit.engine.tool_round import RegisteredTool

        return [(t.exposed, RegisteredTool(self.handler(t.exposed), False, False,
                                           self.timeout + _HANDLER_GRACE, schema=t.schema,
                                           description=t.description))
                for t in self._catalog.values()]

    def call(self, tool: str, arguments: Mapping[str, Any] | None = None, *,
             timeout: float | None = None) -> Any:
        """Call the server's tool ``tool`` (blocking) and return its content: the text parts
        joined, else the structured content. ``isError`` raises :class:`MCPToolError`; no
        answer within ``timeout`` (default: the server's) raises :class:`MCPTimeoutError`
        (the server stays usable); a dead or closed server raises :class:`MCPServerError`."""
        limit = self.timeout if timeout is None else timeout
        loop = self._loop
        with self._lock:
            if self._state != "running" or loop is None:
                state = "closed" if self._state == "closed" else "not started"
                raise MCPServerError(f"MCP server {self.name!r} is {state}")
            if self._exited is not None:
                raise MCPServerError(f"MCP server {self.name!r} exited {self._exited}; its "
                                     f"tools are unavailable{self._tail()}")
            dead_before = self._stderr_done.is_set()
            future = asyncio.run_coroutine_threadsafe(self._call(tool, dict(arguments or {})),
                                                      loop)
            self._inflight.add(future)
        try:
            result = future.result(timeout=limit)
        except concurrent.futures.CancelledError:
            raise MCPServerError(f"MCP server {self.name!r} was closed while tool {tool!r} "
                                 "ran") from None
        except ConnectionError as exc:  # raised by _call
            raise self._lost(tool, dead_before) from exc.__cause__
        except TimeoutError:
            if future.done():
                raise
            future.cancel()
            raise MCPTimeoutError(f"MCP tool {tool!r} of server {self.name!r} did not answer "
                                  f"within {limit:g} s") from None
        finally:
            with self._lock:
                self._inflight.discard(future)
        return content_value(result)

    async def _call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            raise ConnectionError
        try:
            return _dump(await self._session.call_tool(tool, arguments))
        except Exception as exc:
            code = getattr(getattr(exc, "error", None), "code", None)
            if code == _CONNECTION_CLOSED or isinstance(exc, ConnectionError | EOFError):
                raise ConnectionError from exc
            raise MCPError(f"MCP tool {tool!r} of server {self.name!r} failed: "
                           f"{_describe(exc)}") from exc

    def _lost(self, tool: str, dead_before: bool) -> MCPServerError:
        if self._state == "closed":
            return MCPServerError(f"MCP server {self.name!r} was closed while tool {tool!r} ran")
        self._stderr_done.wait(0.5)  # let the reader catch the server's last words
        with self._lock:
            if self._exited is None:
                self._exited = "" if dead_before else f"while running tool {tool!r}"
            how = self._exited
        return MCPServerError(f"MCP server {self.name!r} exited {how}".rstrip()
                              + f" (connection closed){self._tail()}")

    def _tail(self) -> str:
        text = " | ".join(list(self._stderr_tail)[-3:])
        return f"; its last stderr lines: {text[-500:]}" if text else ""


def content_value(result: Mapping[str, Any]) -> Any:
    """A ``CallToolResult`` (camelCase JSON) as a tool's return value.

    Text blocks are joined with newlines; the structured content is returned only when there
    is no text (the spec asks servers to mirror it as text, and FastMCP-style servers wrap
    plain values as ``{"result": ...}``); other blocks are described.
    """
    parts: list[str] = []
    for block in result.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "resource":  # an embedded resource: its text, else its uri
            resource = block.get("resource") or {}
            parts.append(str(resource.get("text") or f"[resource {resource.get('uri')}]"))
        else:  # images, audio, resource links: described, not inlined
            parts.append(f"[{kind} {block.get('mimeType') or block.get('uri') or ''}]")
    if result.get("isError"):
        raise MCPToolError("\n".join(parts) or "the MCP tool reported an error")
    structured = result.get("structuredContent")
    return "\n".join(parts) if parts or structured is None else structured


async def _list_tools(session: ClientSession) -> list[dict[str, Any]]:
    """Every tool of the server, following pagination (at most 100 pages)."""
    from mcp.types import PaginatedRequestParams

    page = await session.list_tools()
    tools = [_dump(tool) for tool in page.tools]
    for _ in range(100):
        cursor = _dump(page).get("nextCursor")
        if not cursor:
            break
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        tools += [_dump(tool) for tool in page.tools]
    return tools


def _dump(model: Any) -> dict[str, Any]:
    """A pydantic model of the ``mcp`` package as camelCase JSON (the same in 1.x and 2.x)."""
    dumped: dict[str, Any] = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


def _leaf(exc: BaseException) -> BaseException:
    """The first real error in (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    return str(_leaf(exc)) or type(_leaf(exc)).__name__


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The private loop's thread: run until stopped, then cancel leftovers and close."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=2.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
