"""What the sync and async conversations share: state, variables, tools and turn planning.

No I/O happens here (apart from the in-memory store calls of the sync side); the drivers in
``sync_driver.py`` and ``async_driver.py`` add ``send``/``stream`` and closing.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, overload

from promptkit._errors import (
    ConversationBusyError,
    ConversationClosedError,
    ToolNotRegisteredError,
)
from promptkit.conversation.kept import KeepsHistory, TurnHistory
from promptkit.engine.dialect import ToolDefinition, WireMemo
from promptkit.engine.held import PendingToolCall, decision_message, pending_calls, visible
from promptkit.engine.messages import Message
from promptkit.engine.output import OutputSpec, output_spec
from promptkit.engine.retry import RetryPolicy
from promptkit.engine.sampling import NO_OPTIONS, CallOptions, call_options
from promptkit.engine.timeouts import Timeouts, turn_deadline
from promptkit.engine.tool_round import (
    DEFAULT_TOOL_TIMEOUT,
    ApprovalCheck,
    RegisteredTool,
    ToolHandler,
    result_from_value,
)
from promptkit.engine.turn import TurnPlan
from promptkit.observe.setup import ObserveOptions
from promptkit.observe.watch import ConversationWatch
from promptkit.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from promptkit.checks.evals import EvalResult, EvalSpec
    from promptkit.conversation.evaluating import EvalBook
    from promptkit.conversation.fitting import ContextKeeper
    from promptkit.engine.chunks import Response
    from promptkit.engine.context import ContextPolicy
    from promptkit.engine.guardrails import Guardrail
    from promptkit.engine.media import MediaSource
    from promptkit.pack.model import Pack, PromptSpec
    from promptkit.pack.variables import VariableSet
    from promptkit.providers.binding import Binding
    from promptkit.tools.http import HTTPTool
    from promptkit.tools.mcp import MCPServer

__all__ = ["ConversationCore", "TurnOptions"]

F = TypeVar("F", bound=ToolHandler)
_Core = TypeVar("_Core", bound="ConversationCore")


class ConversationCore(KeepsHistory):
    """Shared state of one conversation with one prompt of a pack."""

    def __init__(
        self,
        *,
        pack: Pack,
        prompt: PromptSpec,
        binding: Binding,
        variables: VariableSet,
        store: Any,
        conversation_id: str | None,
        timeouts: Timeouts,
        max_retries: int,
        tools: ToolRegistry | None = None,
        mcp_servers: Sequence[MCPServer] = (),
        on_conflict: Literal["raise", "reload"] = "raise",
        response_format: Any = None,
        options: CallOptions = NO_OPTIONS,
        observe: ObserveOptions | None = None,
        watch: ConversationWatch | None = None,
        guardrails: tuple[Guardrail, ...] = (),
        evals: tuple[EvalSpec, ...] = (),
        judge: Binding | None = None,
        max_concurrent_evals: int = 10,
        context: ContextPolicy | None = None,
    ) -> None:
        self._pack = pack
        self._prompt = prompt
        self._binding = binding
        self._variables = variables
        self._store = store
        self._id = conversation_id or new_conversation_id()
        self._timeouts = timeouts
        self._retry = _retry_policy(max_retries)
        self._mcp_servers: tuple[MCPServer, ...] = tuple(mcp_servers)
        if on_conflict not in ("raise", "reload"):
            raise ValueError(f"on_conflict must be 'raise' or 'reload', not {on_conflict!r}")
        self._on_conflict = on_conflict
        self._output = output_spec(response_format)
        self._options = options
        self._tools = tools if tools is not None else ToolRegistry()
        self._template = _compile(prompt.system_template)
        self._running = False  # a turn holds the conversation (see _begin_turn)
        self._closed = False
        self._history: TurnHistory | None = None  # see TurnHistory; only turns touch it
        self._wire_memo = WireMemo()  # the kept history's wire form (cleared with it)
        self._watch = watch or ConversationWatch(
            conversation_id=self._id, pack_id=pack.id, pack_version=pack.version,
            prompt_name=prompt.name, base_url=_base_url(binding),
            options=observe)
        # guardrails and evals (compiled by promptkit.checks at open)
        self._guardrails = guardrails
        self._evals = evals
        self._judge = judge
        self._max_concurrent_evals = max_concurrent_evals
        self._eval_book: EvalBook | None = None
        self._eval_runner: Any = None
        self._context: ContextKeeper | None = None  # the ContextPolicy (conversation/fitting.py)
        if context is not None:
            from promptkit.conversation.fitting import keeper_for

            self._context = keeper_for(self, context)

    # --- identity ------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The conversation id (a store key)."""
        return self._id

    @property
    def provider(self) -> str:
        """The provider name this conversation talks to (``"openai"``, ``"mock"`` ...)."""
        return self._binding.provider

    @property
    def model(self) -> str:
        """The model name sent to the provider."""
        return self._binding.model

    @property
    def prompt(self) -> PromptSpec:
        """The pack prompt this conversation runs."""
        return self._prompt

    @property
    def pack(self) -> Pack:
        return self._pack

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(id={self._id!r}, prompt={self._prompt.name!r}, "
                f"provider={self.provider!r}, model={self.model!r})")

    # --- events --------------------------------------------------------------------------

    def on(self, name: str, handler: Callable[[Any], Any]) -> None:
        """Call ``handler(event)`` (a :class:`promptkit.Event`) for each event named ``name``:
        an exact name (``"turn.completed"``), a prefix (``"tool.call.*"``) or ``"*"``.

        Handlers may be ``async def``; one that raises is logged and never breaks a turn.
        Unknown names raise ValueError (listing the names); non-callables TypeError. The
        events and their data: ``docs/observability.md``.
        """
        self._watch.on(name, handler)

    def _closing(self) -> None:
        """Emit ``conversation.closed`` the first time the conversation closes."""
        if not self._closed:
            self._closed = True
            self._watch.closed()

    # --- variables -----------------------------------------------------------------------

    def set_var(self, name: str, value: Any) -> None:
        """Set a template variable; it applies from the next turn on."""
        self._variables.set_many({name: value})

    def set_vars(self, values: Mapping[str, Any]) -> None:
        """Set several variables; values are stringified (``True`` → ``"true"``)."""
        self._variables.set_many(values)

    def get_var(self, name: str) -> str | None:
        """A variable's value (or its pack default), or ``None``."""
        return self._variables.get(name)

    def set_vars_from_env(self, prefix: str) -> None:
        """Set ``PREFIX_USER_NAME=Ada`` as variable ``user_name``, for every such variable."""
        self._variables.set_from_env(prefix)

    @property
    def variables(self) -> dict[str, str]:
        """The effective variables (defaults included), as a copy."""
        return self._variables.snapshot()

    def render_system_prompt(self) -> str:
        """The system prompt as the next turn would send it (raises if variables are missing)."""
        return self._variables.resolve(self._template, self._pack.fragments, self._prompt.name)

    # --- tools ---------------------------------------------------------------------------

    def on_tool(self, name: str, handler: ToolHandler, *,
                timeout: float | None = DEFAULT_TOOL_TIMEOUT,
                requires_approval: ApprovalCheck | bool = False) -> None:
        """Run ``handler`` when the model calls ``name``.

        ``handler(args)`` or ``handler(args, ctx)`` gets the argument dict (and a
        :class:`ToolContext`); a handler with named parameters (``def f(city: str)``) gets them
        as keyword arguments. It may be ``async def``. ``timeout`` (seconds, default 30) turns a
        hung handler into an error result. ``requires_approval`` (``True``, or
        ``check(args)`` returning truthy or a reason) holds matching calls for a human decision:
        the turn ends with ``Response.pending_tools``; ``approve()`` / ``reject()``, then
        ``resume()``.
        """
        self._tools.register(name, handler, timeout=timeout, approval=requires_approval)

    def on_tool_http(self, name: str, tool: HTTPTool) -> None:
        """Call ``tool``, an SSRF-guarded :class:`HTTPTool`, when the model calls ``name``.

            conv.on_tool_http("stock_price", promptkit.HTTPTool("https://api.example.com/{ticker}"))
        """
        from promptkit.tools.http import HTTPTool

        if not isinstance(tool, HTTPTool):
            raise TypeError(f"on_tool_http needs a promptkit.HTTPTool, not {type(tool).__name__}")
        self._tools.register(name, tool, timeout=tool.timeout + 5.0)  # its own timeout first

    def add_mcp_server(self, command: Sequence[str], *, name: str | None = None,
                       env: Mapping[str, str] | None = None,
                       cwd: str | os.PathLike[str] | None = None,
                       allowed_tools: Sequence[str] | None = None,
                       timeout: float = 30.0) -> MCPServer:
        """Start a stdio MCP server and offer its tools as ``mcp__<server>__<tool>``.

        Needs ``pip install 'promptkit-sdk[mcp]'``; blocks while the server starts. The server
        gets a minimal environment plus ``env`` (never this process's API keys); ``timeout``
        bounds each call. It stops when the conversation closes; forks share it (the last one
        to close stops it).
        """
        from promptkit.tools.mcp import MCPServer

        if self._closed:
            raise ConversationClosedError(f"conversation {self._id!r} is closed")
        server = MCPServer(command, name=name, env=env, cwd=cwd,
                           allowed_tools=allowed_tools, timeout=timeout)
        if any(s.name == server.name for s in self._mcp_servers):
            raise ValueError(f"an MCP server named {server.name!r} was already added; pass name=")
        server.start()
        for tool_name, entry in server.registered_tools():
            self._tools.add(tool_name, entry)
        self._mcp_servers = (*self._mcp_servers, server)
        return server

    def _release_mcp_servers(self) -> None:
        servers, self._mcp_servers = self._mcp_servers, ()
        for server in servers:
            server.release()

    def client_tool(self, name: str, *, description: str = "",
                    parameters: Mapping[str, Any] | None = None) -> None:
        """Declare ``name`` a client-side tool: the application runs it.

        A call suspends the turn with a CLIENT_TOOL chunk and ``Response.pending_tools``; send
        the outcome with ``send_tool_result()`` (or ``reject_client_tool()``), then
        ``resume()``. The pack's schema is used when the pack declares the tool, else
        ``parameters``.
        """
        schema = None if name in self._pack.tools else dict(
            parameters or {"type": "object", "properties": {}})
        self._tools.add(name, RegisteredTool.client_side(schema, description))

    def on_tools(self, handlers: Mapping[str, ToolHandler]) -> None:
        """Register several handlers at once."""
        for name, handler in handlers.items():
            self._tools.register(name, handler)

    @overload
    def tool(self, name_or_fn: F, /) -> F: ...

    @overload
    def tool(self, name_or_fn: str | None = None, /, *,
             timeout: float | None = DEFAULT_TOOL_TIMEOUT) -> Callable[[F], F]: ...

    def tool(self, name_or_fn: Any = None, /, *,
             timeout: float | None = DEFAULT_TOOL_TIMEOUT) -> Any:
        """Decorator form of :meth:`on_tool`: ``@conv.tool`` or ``@conv.tool("name")``.

        A function with named, annotated parameters that the pack does not declare becomes a
        tool of its own, its JSON Schema built from the type hints and its description from the
        docstring; for a tool the pack declares, the pack's schema wins.
        """
        if callable(name_or_fn):
            self._tools.register(name_or_fn.__name__, name_or_fn, timeout=timeout)
            return name_or_fn

        def register(fn: F) -> F:
            self._tools.register(name_or_fn or fn.__name__, fn, timeout=timeout)
            return fn

        return register

    def _tool_definitions(self, registered: Mapping[str, RegisteredTool]
                          ) -> tuple[ToolDefinition, ...]:
        """The tools offered to the model: the prompt's pack tools that have a handler, then
        code-defined tools (handlers with a signature schema that the pack does not declare);
        never a blocklisted one."""
        if not registered:
            return ()
        blocked = set(self._prompt.tool_policy.blocklist)
        definitions = []
        for name in self._prompt.tools:
            spec = self._pack.tools.get(name)
            if spec is None or name not in registered or name in blocked:
                continue
            definitions.append(ToolDefinition(name=spec.name, description=spec.description,
                                              parameters=spec.parameters))
        for name, tool in registered.items():
            if tool.schema is not None and name not in self._pack.tools and name not in blocked:
                definitions.append(ToolDefinition(name=name, description=tool.description,
                                                  parameters=tool.schema))
        return tuple(definitions)

    def _wire_tool_choice(self, offered: Sequence[ToolDefinition]) -> str | None:
        """The ``tool_choice`` the engine sends: ``None`` for ``"auto"``, the mode, or the
        model-visible name of the forced tool (the pack lists tools by key).

        Raises :class:`ToolNotRegisteredError` (before any network call) when the forced tool
        is not offered on this turn: no handler is registered for it, or it is blocklisted.
        """
        policy = self._prompt.tool_policy
        key = policy.forced_tool
        if key is None:
            return None if policy.tool_choice == "auto" else policy.tool_choice
        spec = self._pack.tools.get(key)
        name = key if spec is None else spec.name
        if offered and all(definition.name != name for definition in offered):
            raise ToolNotRegisteredError(
                f"prompt {self._prompt.name!r} forces tool {key!r} (tool_policy.tool_choice) "
                f"but it is not offered: register a handler with conv.on_tool({key!r}, ...)")
        return name

    # --- turns ---------------------------------------------------------------------------

    def _check_can_start(self) -> None:
        """Raise now what would stop a turn from starting: a closed or busy conversation."""
        if self._closed:
            raise ConversationClosedError(f"conversation {self._id!r} is closed")
        if self._running:
            raise self._busy()

    def _begin_turn(self) -> None:
        if self._closed:
            raise ConversationClosedError(f"conversation {self._id!r} is closed")
        with _STARTING:  # one lock for every conversation: a lock each would cost 88 bytes
            if self._running:
                raise self._busy()
            self._running = True

    def _busy(self) -> ConversationBusyError:
        return ConversationBusyError(
            f"conversation {self._id!r} is already running a turn; wait for it to finish, "
            "or fork() the conversation for parallel work")

    def _end_turn(self) -> None:
        self._running = False

    def _plan_turn(self, message: str | Message | None, timeout: float | None,
                   images: Iterable[MediaSource] | None = None,
                   documents: Iterable[MediaSource] | None = None,
                   options: Mapping[str, Any] | None = None) -> TurnPlan:
        """Render and validate everything a turn needs; raises before any network call.

        ``message`` is ``None`` for a resumed turn (it continues after held tool calls);
        ``options`` are the per-call :class:`TurnOptions`."""
        call, output = _turn_options(options)
        merged = call.over(self._options)
        if output is None:
            output = self._output
        user = None if message is None else _user_message(message, images, documents)
        system = self.render_system_prompt()
        handlers = self._tools.snapshot()
        tools = self._tool_definitions(handlers)
        policy = self._prompt.tool_policy
        now = time.monotonic()
        tool_choice = self._wire_tool_choice(tools)
        return TurnPlan(
            conversation_id=self._id,
            provider=self.provider,
            model=self.model,
            system=system,
            user_message=user,
            tools=tools,
            handlers=handlers,
            allowed_tools=frozenset(self._prompt.tools) | {t.name for t in tools},
            parameters={**self._prompt.parameters, **merged.parameters},
            tool_choice=tool_choice,
            response_format=None if output is None else output.response_format,
            output=output,
            extra_headers=merged.extra_headers,
            extra_body=merged.extra_body,
            max_rounds=policy.max_rounds,
            max_tool_calls=policy.max_tool_calls_per_turn,
            blocklist=tuple(policy.blocklist),
            retry=self._retry,
            deadline=turn_deadline(self._timeouts, timeout, now),
            started=now,
            observer=self._watch.turn(provider=self.provider, model=self.model, system=system,
                                      user_message=user, parameters=self._prompt.parameters),
            guardrails=self._guardrails,
            memo=self._wire_memo,
        )

    # --- held tool calls (shared by both drivers; pure) ----------------------------------

    @staticmethod
    def _pending_of(history: tuple[Message, ...]) -> list[PendingToolCall]:
        return pending_calls(history)[0]

    @staticmethod
    def _visible(history: tuple[Message, ...]) -> list[Message]:
        return list(visible(history))

    @staticmethod
    def _decision(call_id: str, action: str, **data: Any) -> Message:
        return decision_message(call_id, action, **data)

    @staticmethod
    def _client_result(call_id: str, value: Any) -> Message:
        from promptkit.engine.messages import ToolCall

        result = result_from_value(ToolCall(id=call_id, name=""), value)
        return decision_message(call_id, "result", content=result.content,
                                is_error=result.is_error)

    def _stored_history(self, stored: Any) -> tuple[tuple[Message, ...], int]:
        """``(messages, version)`` of what the store loaded; the context summary stored with
        them is offered to the ContextPolicy."""
        if stored is None:
            return (), 0
        if self._context is not None:
            self._context.offer(getattr(stored.metadata, "summary", None))
        return stored.messages, stored.version

    def _forked(self, fork: _Core) -> _Core:
        """``fork`` with this conversation's context summary (it covers their shared prefix)."""
        if self._context is not None and fork._context is not None:
            fork._context.inherit(self._context)
        return fork

    def _fork_kwargs(self) -> dict[str, Any]:
        from promptkit.conversation.store_binding import MetadataBinding

        conversation_id = new_conversation_id()  # unique, and short however deep forks nest
        variables = self._variables.copy()
        store = self._store
        if isinstance(store, MetadataBinding):  # the fork saves its own variables
            store = store.rebind(conversation_id, variables)
        return {
            "pack": self._pack, "prompt": self._prompt, "binding": self._binding,
            "variables": variables, "store": store, "conversation_id": conversation_id,
            "timeouts": self._timeouts, "max_retries": self._retry.max_retries,
            "on_conflict": self._on_conflict, "response_format": self._output,
            "options": self._options,
            "tools": self._tools.copy(), "watch": self._watch.fork(conversation_id),
            "mcp_servers": [server.retain() for server in self._mcp_servers],
            "guardrails": self._guardrails, "evals": self._evals, "judge": self._judge,
            "max_concurrent_evals": self._max_concurrent_evals,
            "context": None if self._context is None else self._context.policy,
        }

    # --- evals (run in the background by each driver's runner) ---------------------------

    @property
    def eval_results(self) -> list[EvalResult]:
        """The eval results so far (background evals add to it as they finish)."""
        return [] if self._eval_book is None else self._eval_book.snapshot()

    def _turn_completed(self, history: tuple[Message, ...], response: Response) -> None:
        """After a committed turn: start its evals in the background (never waits)."""
        if not self._evals or not response.messages:
            return
        from promptkit.checks.evals import turn_evals
        from promptkit.conversation.evaluating import turn_index_of, turn_input

        index = turn_index_of(history)
        chosen = [s for s in turn_evals(self._evals, self._id, index) if not s.per_session]
        if chosen:
            self._evals_runner().schedule(
                chosen, turn_input(history, response.messages, response.text), index)

    def _evals_runner(self) -> Any:
        if self._eval_runner is None:
            from promptkit.conversation.evaluating import EvalBook

            self._eval_book = EvalBook(self._watch.eval_completed)
            self._eval_runner = self._new_eval_runner(self._eval_book)
        return self._eval_runner

    def _new_eval_runner(self, book: EvalBook) -> Any:
        raise NotImplementedError

    def _session_eval_work(self, history: Sequence[Message]) -> tuple[list[EvalSpec], Any]:
        """The session evals to run at close over ``history``, and their input."""
        if not self._evals or not history:
            return [], None
        from promptkit.checks.evals import session_evals, session_input

        return session_evals(self._evals, self._id), session_input(history)


class TurnOptions(TypedDict, total=False):
    """The per-call options of ``send()`` / ``stream()``: they override the ones given to
    ``open()``, which override the pack's ``parameters`` (see docs/guide.md)."""

    temperature: float
    max_tokens: int
    top_p: float
    stop: str | Sequence[str]
    seed: int
    extra_headers: Mapping[str, str]
    extra_body: Mapping[str, Any]
    response_format: Any


_TURN_OPTIONS = frozenset(TurnOptions.__annotations__)


def _turn_options(options: Mapping[str, Any] | None) -> tuple[CallOptions, OutputSpec | None]:
    """Check per-call options (raising before any network call)."""
    if not options:
        return NO_OPTIONS, None
    unknown = sorted(set(options) - _TURN_OPTIONS)
    if unknown:
        raise TypeError(f"unexpected option(s) {', '.join(unknown)}; a turn takes "
                        f"{', '.join(sorted(_TURN_OPTIONS))}")
    sampling = {k: v for k, v in options.items() if k != "response_format"}
    return call_options(**sampling), output_spec(options.get("response_format"))


def _user_message(message: str | Message, images: Iterable[MediaSource] | None = None,
                  documents: Iterable[MediaSource] | None = None) -> Message:
    if isinstance(message, Message):
        if message.role != "user":
            raise ValueError(f"a turn starts with a user message, not {message.role!r}")
    elif not isinstance(message, str):
        raise TypeError(f"message must be a str or a Message, not {type(message).__name__}")
    else:
        message = Message(role="user", text=message)
    if not images and not documents:
        return message
    from promptkit.engine.media import media_parts_for

    parts = [*message.extra.get("parts", ()), *media_parts_for(images, documents)]
    return replace(message, extra={**message.extra, "parts": parts})


def _base_url(binding: Binding) -> str:
    """The provider endpoint's URL (for logs and ``server.address``), or ``""``."""
    endpoint = getattr(binding.dialect, "endpoint", None)
    return str(getattr(endpoint, "base_url", "") or "")


def new_conversation_id() -> str:
    """A fresh conversation id: a random (version 4) UUID as 32 hex digits, made without the
    cost of a ``uuid.UUID`` object (a conversation per request is a common pattern)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


_STARTING = threading.Lock()  # held only while a turn checks and takes its conversation


@functools.lru_cache(maxsize=32)
def _retry_policy(max_retries: int) -> RetryPolicy:
    """The retry policy for ``max_retries`` (immutable: conversations share it)."""
    return RetryPolicy(max_retries=max_retries)


@functools.lru_cache(maxsize=256)
def _compile(template: str) -> Any:
    """The compiled system template (immutable, so conversations of one prompt share it)."""
    from promptkit.pack.template import CompiledTemplate

    return CompiledTemplate(template)

