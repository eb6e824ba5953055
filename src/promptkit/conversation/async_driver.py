"""The asyncio driver: :class:`AsyncConversation` and :class:`AsyncStream`.

It runs the same turn engine as the blocking driver with asyncio I/O: the asyncio HTTP transport,
tool handlers as tasks (blocking ones in threads), ``asyncio.sleep`` for backoff. Timeouts use
one watchdog timer per model call that is re-armed only when it fires, so the per-chunk cost
is a clock read, not a timer; a stream shorter than the idle timeout arms exactly one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from promptkit._errors import APIConnectionError, PromptKitError, ProviderError, TurnTimeout
from promptkit.conversation.checking import run_checks_async
from promptkit.conversation.core import ConversationCore, TurnOptions
from promptkit.conversation.kept import TurnHistory
from promptkit.conversation.stream import StreamFacade, TurnRun, connection_error
from promptkit.engine.chunks import Response, StreamChunk
from promptkit.engine.dialect import ModelRequest, RoundDecoder
from promptkit.engine.guardrails import RunChecks
from promptkit.engine.held import HeldKind, PendingToolCall, PendingToolError, check_decision
from promptkit.engine.messages import Message, ToolResult
from promptkit.engine.timeouts import RoundClock
from promptkit.engine.tool_round import (
    Invocation,
    result_from_exception,
    result_from_value,
    timed_out,
)
from promptkit.engine.turn import (
    Backoff,
    CallModel,
    Commit,
    Emit,
    RoundOutcome,
    RunTools,
    TurnPlan,
)
from promptkit.stores._protocol import ConflictError
from promptkit.transport._base import AsyncBody

if TYPE_CHECKING:
    from promptkit.conversation.evaluating import AsyncEvalRunner, EvalBook
    from promptkit.engine.media import MediaSource

__all__ = ["AsyncConversation", "AsyncStream"]


_MAX_CONCURRENT_TOOLS = 10
_DRAIN_SECONDS = 0.05
_DECISION_ATTEMPTS = 5
_CONFLICT_ATTEMPTS = 5


class _Watchdog:
    """Cancels the reading task when the round clock's current limit passes.

    The reader only moves ``clock.limit`` (a clock read per network read); the timer notices
    when it fires and re-arms itself for the new limit. It is first armed for the earliest
    moment the limit can ever have (``now + idle`` when that comes before the first-token
    limit: content can only move the limit to at least that), so the reader never has to
    re-arm it.
    """

    __slots__ = ("_handle", "_loop", "_task", "clock", "error")

    def __init__(self, clock: RoundClock, now: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.clock = clock
        self.error: ProviderError | None = None
        self._handle = self._arm(min(clock.limit, now + clock.idle), now)

    def _arm(self, when: float, now: float) -> asyncio.TimerHandle:
        # RoundClock uses time.monotonic(), as does the default event loop's clock.
        delay = min(max(0.0, when - now), 86400.0)
        return self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        now = time.monotonic()
        if now >= self.clock.limit:
            self.error = self.clock.expired_error()
            if self._task is not None:
                self._task.cancel()
        else:
            self._handle = self._arm(self.clock.limit, now)

    def stop(self) -> None:
        self._handle.cancel()

    def claim(self) -> ProviderError | None:
        """After a CancelledError: our timeout (the cancellation is then consumed), or None."""
        if self.error is not None and self._task is not None:
            self._task.uncancel()
        return self.error


class AsyncStream(StreamFacade):
    """The chunks of one turn, as they arrive: ``async for`` it, ``async with`` it.

        async with conv.stream("Tell me a story") as stream:
            async for chunk in stream:
                print(chunk.text, end="")
    """

    def __init__(self, conversation: AsyncConversation, plan: TurnPlan) -> None:
        turn = _AsyncTurn(conversation, plan)
        self._attach(turn, turn.run())
        # An abandoned async generator is closed later, in a task the event loop schedules;
        # watching the stream itself releases the conversation the moment it is dropped.
        turn.watch(self)

    def __aiter__(self) -> AsyncStream:
        return self  # the stream, not its generator: iterating keeps the stream alive

    def __anext__(self) -> Awaitable[StreamChunk]:
        return self._chunks.__anext__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> AsyncStream:
        self._turn.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the turn now (if still running) and release its connection. Idempotent."""
        self._turn.closing()
        await self._chunks.aclose()
        self._turn.release()

    async def close(self) -> None:
        """Alias of :meth:`aclose`."""
        await self.aclose()

    async def until_done(self) -> Response:
        """Drain the stream and return the Response, raising the turn's error if it failed."""
        async for _ in self._chunks:
            pass
        return self._turn.outcome()

    async def text(self) -> str:
        """Drain the stream and return the final answer's text."""
        return (await self.until_done()).text


class _AsyncTurn(TurnRun):
    """One turn run with asyncio; ``run()`` is the async generator an AsyncStream wraps."""

    __slots__ = ()
    conversation: AsyncConversation

    async def run(self) -> AsyncGenerator[StreamChunk, None]:
        conversation = self.conversation
        self.start()  # busy or closed since stream() was called: raised from the iteration
        engine = None
        try:
            self.prepare(await conversation._turn_history())
            if self.fold is not None:  # ContextPolicy "summarize": one extra model call
                keeper = conversation._context
                assert keeper is not None
                keeper.folded(self, self.fold,
                              await keeper.summarize_async(conversation, self.fold))
            await conversation._check_writable()
            engine = self.engine()
            action: Any = next(engine)
            while True:
                kind = type(action)
                if kind is CallModel:
                    # The model call's read loop is inlined here rather than a nested async
                    # generator: every chunk then costs one generator hop, not two.
                    call = _ModelCall(self, action.request)
                    guard = action.guard
                    try:
                        try:
                            decoder = await call.open()
                            read = call.read
                            clock = call.clock
                            monotonic = time.monotonic
                            events = 0
                            while not decoder.done:
                                data = await read()
                                if not data:
                                    break
                                chunks = decoder.feed(data)
                                if decoder.events != events:
                                    events = decoder.events
                                    clock.content(monotonic())
                                if guard is not None and chunks:  # streaming guardrails
                                    call.delivered = True
                                    chunks = guard.feed(chunks)
                                    if guard.tripped is not None:
                                        for chunk in chunks:
                                            yield chunk
                                        break
                                for chunk in chunks:
                                    call.delivered = True
                                    yield chunk
                            tail = decoder.flush() if guard is None or guard.tripped is None \
                                else []
                            if guard is not None and tail:
                                call.delivered = True
                                tail = guard.feed(tail)
                            for chunk in tail:
                                call.delivered = True
                                yield chunk
                            if guard is not None and guard.tripped is not None:
                                outcome = call.blocked()  # call.close() drops the response
                            else:
                                outcome = await call.finish()
                        except asyncio.CancelledError:
                            timeout_error = call.watchdog.claim()
                            if timeout_error is None:
                                raise
                            raise timeout_error from None
                    except APIConnectionError as exc:
                        outcome = call.failed(connection_error(exc, call.decoder))
                    except PromptKitError as exc:
                        outcome = call.failed(exc)
                    finally:
                        call.close()
                    action = engine.send(outcome)
                elif kind is Emit:
                    yield action.chunk
                    action = next(engine)
                elif kind is RunTools:
                    action = engine.send(await self._run_tools(action.runs))
                elif kind is Backoff:
                    self.backoff_allowed(action.seconds)
                    await asyncio.sleep(action.seconds)
                    action = next(engine)
                elif kind is Commit:
                    self.committed(action.messages,
                                   await conversation._append(action.messages, self.version))
                    action = next(engine)
                elif kind is RunChecks:
                    action = engine.send(await run_checks_async(action.checks))
                else:  # pragma: no cover - the engine yields nothing else
                    raise AssertionError(f"unknown action {action!r}")
        except StopIteration as stop:
            self.response = stop.value
        except PromptKitError as exc:
            self.error = exc
        finally:
            if engine is not None:
                engine.close()
            self.release()
        final = self.final_chunk()
        if final is not None:
            yield final

    async def _run_tools(self, runs: Sequence[Invocation]) -> list[ToolResult]:
        """Run a round's handlers, each within its timeout, and all within the turn's deadline:
        one in the turn's own task, several concurrently as tasks (at most 10 at once);
        results in call order."""
        remaining = self.time_left_for_tools()
        limit = asyncio.Semaphore(_MAX_CONCURRENT_TOOLS)

        async def bounded(run: Invocation) -> ToolResult:
            async with limit:
                return await _timed(run)

        try:
            async with asyncio.timeout(None if remaining == float("inf") else remaining):
                if len(runs) == 1:  # the common case: no extra task
                    return [await _timed(runs[0])]
                return list(await asyncio.gather(*(bounded(run) for run in runs)))
        except TimeoutError:
            raise TurnTimeout("the turn passed its deadline while its tools ran") from None


class _ModelCall:
    """One model call of a turn: its clock and watchdog, the open response and its decoder.

    The turn's ``run()`` drives the read loop itself; this holds the rest (opening, ending,
    failing and cleaning up) so that loop stays short.
    """

    __slots__ = ("body", "clock", "decoder", "delivered", "headers_at", "read", "request",
                 "turn", "watchdog")

    def __init__(self, turn: _AsyncTurn, request: ModelRequest) -> None:
        now = time.monotonic()
        self.turn = turn
        self.request = request
        self.clock = RoundClock.start(turn.conversation._timeouts, turn.plan.deadline, now)
        self.watchdog = _Watchdog(self.clock, now)
        self.body: AsyncBody | None = None
        self.decoder: RoundDecoder | None = None
        self.delivered = False

    async def open(self) -> RoundDecoder:
        """Send the request; return the decoder for its streamed reply (or raise its error)."""
        conversation = self.turn.conversation
        dialect = conversation._binding.dialect
        http_request = dialect.build_request(self.request)
        body = self.body = await conversation._transport().open(
            http_request, connect_timeout=conversation._timeouts.connect)
        self.headers_at = time.monotonic()
        if body.status >= 300:
            data = await body.read_all()
            raise dialect.map_error(body.status, body.headers, data)
        self.read = body.read
        decoder = self.decoder = dialect.decoder(body.headers.get("content-type", ""))
        return decoder

    async def finish(self) -> RoundOutcome:
        """The outcome once the reply ended (or raise the error that ended it)."""
        decoder = self.decoder
        body = self.body
        assert decoder is not None and body is not None
        result = decoder.finish()
        if decoder.done and not body.at_eof():
            await _drain(body)
        return RoundOutcome(result=result, delivered=self.delivered,
                            first_content_at=self.clock.first_content_at,
                            status=body.status, headers=body.headers, headers_at=self.headers_at)

    def failed(self, error: PromptKitError) -> RoundOutcome:
        return RoundOutcome(error=error, delivered=self.delivered)

    def blocked(self) -> RoundOutcome:
        """A guardrail stopped the reply; the response is closed unread."""
        return RoundOutcome(blocked=True, delivered=True,
                            first_content_at=self.clock.first_content_at)

    def close(self) -> None:
        self.watchdog.stop()
        if self.body is not None:
            self.body.close()


async def _drain(body: AsyncBody) -> None:
    """Read the little left after the dialect's terminator (the HTTP body's end usually
    follows at once) so the connection goes back to the pool; give up after 50 ms."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while await body.read():
                pass
    except (TimeoutError, APIConnectionError):
        pass


async def _timed(run: Invocation) -> ToolResult:
    """Run one handler within its own timeout (an error result when it passes)."""
    try:
        async with asyncio.timeout(run.tool.timeout):
            return await _invoke(run)
    except TimeoutError:
        return timed_out(run)


async def _invoke(run: Invocation) -> ToolResult:
    """Await an async handler, or run a blocking one in a thread, and wrap the outcome."""
    try:
        if run.tool.is_async:
            value = await run.invoke()
        else:
            value = await asyncio.to_thread(run.invoke)
            if asyncio.iscoroutine(value):
                value = await value
    except Exception as exc:
        return result_from_exception(run.call, exc)
    return result_from_value(run.call, value)


class AsyncConversation(ConversationCore):
    """A conversation with one prompt of a pack, driven from asyncio code.

    Open one with :func:`promptkit.open_async`; it mirrors :class:`Conversation` method for
    method, with ``send``, ``clear``, ``fork`` and ``aclose`` awaited and ``stream`` returning
    an :class:`AsyncStream`.

        async with promptkit.open_async("hello.pack.json", "chat") as conv:
            print((await conv.send("Hello!")).text)
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Load the HTTP client library now: inside the first turn its import (about 0.1 s of
        # CPU) would add to that turn's time to first token.
        self._binding.async_transport()

    async def send(self, message: str | Message, *, timeout: float | None = None,
                   images: Iterable[MediaSource] | None = None,
                   documents: Iterable[MediaSource] | None = None,
                   **options: Unpack[TurnOptions]) -> Response:
        """Run one turn and return its Response; raises the turn's error if it fails.

        ``options`` are the per-call options of :meth:`Conversation.send`. With
        ``on_conflict="reload"`` a turn that lost a race with another writer of the same
        conversation (ConflictError) is run again on the reloaded history.
        """
        attempts = _CONFLICT_ATTEMPTS if self._on_conflict == "reload" else 1
        for attempt in range(attempts):
            try:
                return await self.stream(message, timeout=timeout, images=images,
                                         documents=documents, **options).until_done()
            except ConflictError:
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(self, message: str | Message, *, timeout: float | None = None,
               images: Iterable[MediaSource] | None = None,
               documents: Iterable[MediaSource] | None = None,
               **options: Unpack[TurnOptions]) -> AsyncStream:
        """Prepare one turn and return its :class:`AsyncStream` of chunks; the turn starts
        when the stream is first iterated (or entered with ``async with``).

        Problems found before any network call (closed or busy conversation, missing or invalid
        variables or options, unreadable media) raise here; failures during the turn arrive as
        an ERROR chunk. ``images`` and ``documents`` attach files, URLs or bytes to the
        message; ``options`` are :meth:`send`'s.
        """
        self._check_can_start()
        return AsyncStream(self, self._plan_turn(message, timeout, images, documents, options))

    @property
    def messages(self) -> list[Message]:
        """The committed history (completed turns only), oldest first."""
        return self._visible(self._load_now()[0])

    # --- held tool calls: approvals and client-side tools -------------------------------

    @property
    def pending_tools(self) -> list[PendingToolCall]:
        """The last turn's held tool calls, with the decisions taken so far."""
        return self._pending_of(self._load_now()[0])

    async def approve(self, call_id: str, args: Mapping[str, Any] | None = None) -> None:
        """Approve a held call, optionally with edited arguments (merged over the model's)."""
        await self._decide(call_id, "approval",
                           self._decision(call_id, "approved", arguments=dict(args or {})))

    async def reject(self, call_id: str, reason: str = "") -> None:
        """Refuse a held call; the model is told it was rejected, and why."""
        await self._decide(call_id, "approval",
                           self._decision(call_id, "rejected", reason=reason))

    async def send_tool_result(self, call_id: str, result: Any) -> None:
        """Give a client-side tool's result (anything JSON-serialisable)."""
        await self._decide(call_id, "client", self._client_result(call_id, result))

    async def reject_client_tool(self, call_id: str, reason: str = "") -> None:
        """Report that a client-side tool could not or would not run."""
        await self._decide(call_id, "client", self._decision(call_id, "rejected", reason=reason))

    async def resume(self, *, timeout: float | None = None) -> Response:
        """Continue a turn whose held calls are all decided; returns its Response."""
        return await self.resume_stream(timeout=timeout).until_done()

    def resume_stream(self, *, timeout: float | None = None) -> AsyncStream:
        """The streaming form of :meth:`resume`."""
        self._check_can_start()
        return AsyncStream(self, self._plan_turn(None, timeout))

    async def _decide(self, call_id: str, kind: HeldKind, record: Message) -> None:
        """Append a decision unless another writer decided first (then refuse)."""
        self._begin_turn()
        try:
            for _ in range(_DECISION_ATTEMPTS):
                history, version = await self._load()
                check_decision(self._pending_of(history), call_id, kind)
                try:
                    await _maybe_await(self._store.append(self._id, [record], version))
                    return
                except ConflictError:
                    continue  # someone appended meanwhile: look again
            raise PendingToolError(f"could not record the decision on {call_id!r}: the "
                                   "conversation kept changing")
        finally:
            self._end_turn()

    async def clear(self) -> None:
        """Forget the history; variables and tools stay."""
        self._begin_turn()
        try:
            await _maybe_await(self._store.delete(self._id))
        finally:
            self._end_turn()

    async def fork(self) -> AsyncConversation:
        """An independent copy: same history, variables and tools, a new id."""
        kwargs = self._fork_kwargs()
        await _maybe_await(self._store.fork(self._id, kwargs["conversation_id"]))
        return self._forked(AsyncConversation(**kwargs))

    async def aclose(self) -> None:
        """Close the conversation (and stop its MCP servers); later turns raise
        ConversationClosedError. Runs the session evals and waits for every eval first.
        Idempotent."""
        if not self._closed and self._evals:
            await self._finish_evals()
        self._closing()
        await self._watch.drain()
        if self._mcp_servers:
            await asyncio.to_thread(self._release_mcp_servers)

    async def close(self) -> None:
        """Alias of :meth:`aclose`."""
        await self.aclose()

    async def __aenter__(self) -> AsyncConversation:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def _transport(self) -> Any:
        return self._binding.async_transport()

    # --- evals ---------------------------------------------------------------------------

    async def wait_evals(self, timeout: float | None = None) -> bool:
        """Wait for the evals started so far; whether they all finished within ``timeout``."""
        return True if self._eval_runner is None else bool(await self._eval_runner.wait(timeout))

    def _new_eval_runner(self, book: EvalBook) -> AsyncEvalRunner:
        from promptkit.conversation.evaluating import AsyncEvalRunner

        return AsyncEvalRunner(book, self._ask_judge, self._max_concurrent_evals)

    async def _ask_judge(self, question: str) -> str:
        """The judge's reply: a fresh conversation on the judge's (or this) provider."""
        from promptkit.conversation.evaluating import judge_kwargs

        kwargs = judge_kwargs(self._judge or self._binding, self._timeouts)
        async with AsyncConversation(**kwargs) as judge:
            return (await judge.send(question)).text

    async def _finish_evals(self) -> None:
        history = self._visible((await self._load())[0])
        specs, data = self._session_eval_work(history)
        if specs:
            self._evals_runner().schedule(specs, data, None)
        if self._eval_runner is not None:
            await self._eval_runner.wait()

    async def _load(self) -> tuple[tuple[Message, ...], int]:
        return self._stored_history(await _maybe_await(self._store.load(self._id)))

    def _load_now(self) -> tuple[tuple[Message, ...], int]:
        stored = self._store.load(self._id)
        if asyncio.iscoroutine(stored):
            stored.close()
            raise TypeError("this store is async-only: use `await conv.send()` / history APIs")
        return self._stored_history(stored)

    async def _check_writable(self) -> None:
        """Raise StoreError now if the store cannot take the turn (before the model is paid)."""
        check = getattr(self._store, "check_writable", None)
        if check is not None:
            await _maybe_await(check(self._id))

    async def _turn_history(self) -> TurnHistory:
        """The history a turn starts from: the kept one while the store's version has not
        moved (one cheap ``head()`` read), else loaded and decoded again."""
        probe = getattr(self._store, "head", None)
        head = None if probe is None else await _maybe_await(probe(self._id))
        kept = self._reuse_history(head)
        if kept is not None:
            return kept
        messages, version = await self._load()
        return self._loaded_history(messages, version, head)

    async def _append(self, messages: tuple[Message, ...], version: int) -> Any:
        return await _maybe_await(self._store.append(self._id, messages, version))


async def _maybe_await(value: Any) -> Any:
    """A store method's result: awaited if it is awaitable (an async store), else as it is.
    (Tests the type for ``__await__``: ``asyncio.iscoroutine`` runs an ABC check on every
    plain value, several times a turn.)"""
    if getattr(type(value), "__await__", None) is not None:
        return await value
    return value
