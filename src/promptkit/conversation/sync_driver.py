"""The blocking driver: :class:`Conversation` and :class:`Stream`.

It runs the turn engine (``engine.turn.run_turn``) with blocking I/O: the shared stdlib HTTP
transport, tool handlers in a thread pool, ``time.sleep`` for backoff. Its twin for asyncio is
``async_driver.py``; both expose the same methods and yield the same chunks.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from promptkit._errors import APIConnectionError, PromptKitError, TurnTimeout
from promptkit.conversation.checking import run_checks_blocking
from promptkit.conversation.core import ConversationCore, TurnOptions
from promptkit.conversation.kept import TurnHistory
from promptkit.conversation.stream import StreamFacade, TurnRun, connection_error
from promptkit.engine.chunks import Response, StreamChunk
from promptkit.engine.dialect import ModelRequest, RoundDecoder
from promptkit.engine.guardrails import OutputGuard, RunChecks
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
from promptkit.transport._base import ReadTimeout, SyncBody

if TYPE_CHECKING:
    from promptkit.conversation.evaluating import EvalBook, SyncEvalRunner
    from promptkit.engine.media import MediaSource

__all__ = ["Conversation", "Stream"]

_MAX_TOOL_THREADS = 10
_DECISION_ATTEMPTS = 5
_CONFLICT_ATTEMPTS = 5


class Stream(StreamFacade):
    """The chunks of one turn, as they arrive. Iterate it; use it as a context manager.

    The turn starts at the first iteration (or on entering ``with``): a stream made and never
    iterated holds nothing. Leaving the ``with`` block, breaking out of the loop, calling
    :meth:`close` or dropping the stream stops the generation, releases the connection and
    lets the conversation take its next turn; nothing of an unfinished turn is committed.

        with conv.stream("Tell me a story") as stream:
            for chunk in stream:
                print(chunk.text, end="")
        print(stream.response.usage)
    """

    def __init__(self, conversation: Conversation, plan: TurnPlan) -> None:
        turn = _SyncTurn(conversation, plan)
        self._attach(turn, turn.run())

    def __iter__(self) -> Iterator[StreamChunk]:
        return self._chunks  # type: ignore[no-any-return]

    def __next__(self) -> StreamChunk:
        return next(self._chunks)  # type: ignore[no-any-return]

    def __enter__(self) -> Stream:
        self._turn.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the turn now (if still running) and release its connection. Idempotent."""
        self._turn.closing()
        self._chunks.close()
        self._turn.release()

    def until_done(self) -> Response:
        """Drain the stream and return the Response, raising the turn's error if it failed."""
        for _ in self._chunks:
            pass
        return self._turn.outcome()

    def text(self) -> str:
        """Drain the stream and return the final answer's text."""
        return self.until_done().text


class _SyncTurn(TurnRun):
    """One turn run with blocking I/O; ``run()`` is the generator a :class:`Stream` wraps."""

    __slots__ = ()
    conversation: Conversation

    def run(self) -> Generator[StreamChunk, None, None]:
        conversation = self.conversation
        self.start()  # busy or closed since stream() was called: raised from the iteration
        engine = None
        try:
            self.prepare(conversation._turn_history())
            if self.fold is not None:  # ContextPolicy "summarize": one extra model call
                keeper = conversation._context
                assert keeper is not None
                keeper.folded(self, self.fold, keeper.summarize(conversation, self.fold))
            conversation._check_writable()
            engine = self.engine()
            action: Any = next(engine)
            while True:
                kind = type(action)
                if kind is CallModel:
                    outcome = yield from self._call_model(action.request, action.guard)
                    action = engine.send(outcome)
                elif kind is Emit:
                    yield action.chunk
                    action = next(engine)
                elif kind is RunTools:
                    action = engine.send(self._run_tools(action.runs))
                elif kind is Backoff:
                    self.backoff_allowed(action.seconds)
                    time.sleep(action.seconds)
                    action = next(engine)
                elif kind is Commit:
                    self.committed(action.messages, conversation._store.append(
                        conversation.id, action.messages, self.version))
                    action = next(engine)
                elif kind is RunChecks:
                    action = engine.send(run_checks_blocking(action.checks))
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

    def _call_model(self, request: ModelRequest, guard: OutputGuard | None = None
                    ) -> Generator[StreamChunk, None, RoundOutcome]:
        """Stream one model call, yielding its TEXT chunks (through ``guard`` when the turn has
        streaming guardrails: it stops the call when it trips); errors become the outcome."""
        binding = self.conversation._binding
        timeouts = self.conversation._timeouts
        clock = RoundClock.start(timeouts, self.plan.deadline, time.monotonic())
        delivered = False
        body: SyncBody | None = None
        decoder: RoundDecoder | None = None
        try:
            http_request = binding.dialect.build_request(request)
            wait_for = clock.limit - time.monotonic()
            if wait_for <= 0:
                raise clock.expired_error()
            connect = timeouts.connect if timeouts.connect is not None else wait_for
            try:
                body = binding.sync_transport().open(
                    http_request, connect_timeout=min(connect, wait_for), read_timeout=wait_for)
            except ReadTimeout:
                raise clock.expired_error() from None
            headers_at = time.monotonic()
            if body.status >= 300:
                data = body.read_all(max(0.001, clock.limit - time.monotonic()))
                raise binding.dialect.map_error(body.status, body.headers, data)
            decoder = binding.dialect.decoder(body.headers.get("content-type", ""))
            events = 0
            monotonic = time.monotonic
            while not decoder.done:
                wait_for = clock.limit - monotonic()
                if wait_for <= 0:
                    raise clock.expired_error()
                try:
                    data = body.read(wait_for)
                except ReadTimeout:
                    raise clock.expired_error() from None
                if not data:
                    break
                chunks = decoder.feed(data)
                if decoder.events != events:
                    events = decoder.events
                    clock.content(monotonic())
                if guard is not None:
                    if chunks:
                        delivered = True
                        yield from guard.feed(chunks)
                        if guard.tripped is not None:  # the finally closes the response
                            return RoundOutcome(blocked=True, delivered=True,
                                                first_content_at=clock.first_content_at)
                    continue
                for chunk in chunks:
                    delivered = True
                    yield chunk
            tail = decoder.flush()
            if guard is not None and tail:
                delivered = True
                yield from guard.feed(tail)
                if guard.tripped is not None:
                    return RoundOutcome(blocked=True, delivered=True,
                                        first_content_at=clock.first_content_at)
                tail = []
            for chunk in tail:
                delivered = True
                yield chunk
            result = decoder.finish()
            return RoundOutcome(result=result, delivered=delivered,
                                first_content_at=clock.first_content_at,
                                status=body.status, headers=body.headers, headers_at=headers_at)
        except APIConnectionError as exc:
            return RoundOutcome(error=connection_error(exc, decoder), delivered=delivered)
        except PromptKitError as exc:
            return RoundOutcome(error=exc, delivered=delivered)
        finally:
            if body is not None:
                body.close()

    def _run_tools(self, runs: Sequence[Invocation]) -> list[ToolResult]:
        """Run a round's handlers concurrently in worker threads (at most 10 at once), each
        within its timeout; results in call order. A handler that overruns its timeout gets an
        error result (its thread cannot be stopped; its late result is dropped)."""
        from concurrent.futures import ThreadPoolExecutor
        from concurrent.futures import TimeoutError as FutureTimeout

        self.time_left_for_tools()
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=min(len(runs), _MAX_TOOL_THREADS),
                                  thread_name_prefix="promptkit-tool")
        try:
            futures = [pool.submit(_invoke, run) for run in runs]
            results = []
            for run, future in zip(runs, futures, strict=True):
                limit = min(self.plan.deadline, started + (run.tool.timeout or math.inf))
                wait_for = limit - time.monotonic()
                try:
                    results.append(future.result(timeout=None if wait_for == math.inf
                                                 else max(0.0, wait_for)))
                except FutureTimeout:
                    if time.monotonic() >= self.plan.deadline:
                        raise TurnTimeout(
                            "the turn passed its deadline while its tools ran") from None
                    results.append(timed_out(run))
            return results
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _invoke(run: Invocation) -> ToolResult:
    """Call one handler (an ``async def`` one in a private event loop) and wrap the outcome."""
    try:
        value = run.invoke()
        if run.tool.is_async or inspect.iscoroutine(value):
            import asyncio  # only for async handlers, run in their own loop in a worker thread

            value = asyncio.run(value)
    except Exception as exc:
        return result_from_exception(run.call, exc)
    return result_from_value(run.call, value)


class Conversation(ConversationCore):
    """A conversation with one prompt of a pack, driven from blocking code.

    Open one with :func:`promptkit.open`. ``send`` runs a whole turn (tool loop included) and
    returns its :class:`Response`; ``stream`` yields the turn's chunks as they arrive.

        with promptkit.open("hello.pack.json", "chat", variables={"user_name": "Ada"}) as conv:
            print(conv.send("Hello!").text)
    """

    def send(self, message: str | Message, *, timeout: float | None = None,
             images: Iterable[MediaSource] | None = None,
             documents: Iterable[MediaSource] | None = None,
             **options: Unpack[TurnOptions]) -> Response:
        """Run one turn and return its Response; raises the turn's error if it fails.

        ``options`` (``temperature``, ``max_tokens``, ``top_p``, ``stop``, ``seed``,
        ``extra_headers``, ``extra_body``, ``response_format``) override ``open()``'s for this
        turn. With ``on_conflict="reload"`` a turn that lost a race with another writer of the
        same conversation (ConflictError) is run again on the reloaded history.
        """
        attempts = _CONFLICT_ATTEMPTS if self._on_conflict == "reload" else 1
        for attempt in range(attempts):
            try:
                return self.stream(message, timeout=timeout, images=images,
                                   documents=documents, **options).until_done()
            except ConflictError:
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(self, message: str | Message, *, timeout: float | None = None,
               images: Iterable[MediaSource] | None = None,
               documents: Iterable[MediaSource] | None = None,
               **options: Unpack[TurnOptions]) -> Stream:
        """Prepare one turn and return its :class:`Stream` of chunks; the turn starts when the
        stream is first iterated (or entered with ``with``).

        Problems found before any network call (closed or busy conversation, missing or invalid
        variables or options, unreadable media) raise here; failures during the turn arrive as
        an ERROR chunk. ``images`` and ``documents`` attach files, URLs or bytes to the
        message; ``options`` are :meth:`send`'s.
        """
        self._check_can_start()
        return Stream(self, self._plan_turn(message, timeout, images, documents, options))

    @property
    def messages(self) -> list[Message]:
        """The committed history (completed turns only), oldest first."""
        return self._visible(self._load()[0])

    # --- held tool calls: approvals and client-side tools -------------------------------

    @property
    def pending_tools(self) -> list[PendingToolCall]:
        """The last turn's held tool calls, with the decisions taken so far."""
        return self._pending_of(self._load()[0])

    def approve(self, call_id: str, args: Mapping[str, Any] | None = None) -> None:
        """Approve a held call, optionally with edited arguments (merged over the model's)."""
        self._decide(call_id, "approval",
                     self._decision(call_id, "approved", arguments=dict(args or {})))

    def reject(self, call_id: str, reason: str = "") -> None:
        """Refuse a held call; the model is told it was rejected, and why."""
        self._decide(call_id, "approval", self._decision(call_id, "rejected", reason=reason))

    def send_tool_result(self, call_id: str, result: Any) -> None:
        """Give a client-side tool's result (anything JSON-serialisable)."""
        self._decide(call_id, "client", self._client_result(call_id, result))

    def reject_client_tool(self, call_id: str, reason: str = "") -> None:
        """Report that a client-side tool could not or would not run."""
        self._decide(call_id, "client", self._decision(call_id, "rejected", reason=reason))

    def resume(self, *, timeout: float | None = None) -> Response:
        """Continue a turn whose held calls are all decided; returns its Response."""
        return self.resume_stream(timeout=timeout).until_done()

    def resume_stream(self, *, timeout: float | None = None) -> Stream:
        """The streaming form of :meth:`resume`."""
        self._check_can_start()
        return Stream(self, self._plan_turn(None, timeout))

    def _decide(self, call_id: str, kind: HeldKind, record: Message) -> None:
        """Append a decision unless another writer decided first (then refuse)."""
        self._begin_turn()
        try:
            for _ in range(_DECISION_ATTEMPTS):
                history, version = self._load()
                check_decision(self._pending_of(history), call_id, kind)
                try:
                    self._store.append(self._id, [record], version)
                    return
                except ConflictError:
                    continue  # someone appended meanwhile: look again
            raise PendingToolError(f"could not record the decision on {call_id!r}: the "
                                   "conversation kept changing")
        finally:
            self._end_turn()

    def clear(self) -> None:
        """Forget the history; variables and tools stay."""
        self._begin_turn()
        try:
            self._store.delete(self._id)
        finally:
            self._end_turn()

    def fork(self) -> Conversation:
        """An independent copy: same history, variables and tools, a new id."""
        kwargs = self._fork_kwargs()
        self._store.fork(self._id, kwargs["conversation_id"])
        return self._forked(Conversation(**kwargs))

    def close(self) -> None:
        """Close the conversation (and stop its MCP servers); later turns raise
        ConversationClosedError. Runs the session evals and waits for every eval first.
        Idempotent."""
        if not self._closed and self._evals:
            self._finish_evals()
        self._closing()
        self._release_mcp_servers()

    # --- evals ---------------------------------------------------------------------------

    def wait_evals(self, timeout: float | None = None) -> bool:
        """Wait for the evals started so far; whether they all finished within ``timeout``."""
        return True if self._eval_runner is None else bool(self._eval_runner.wait(timeout))

    def _new_eval_runner(self, book: EvalBook) -> SyncEvalRunner:
        from promptkit.conversation.evaluating import SyncEvalRunner

        return SyncEvalRunner(book, self._ask_judge, self._max_concurrent_evals)

    def _ask_judge(self, question: str) -> str:
        """The judge's reply: a fresh conversation on the judge's (or this) provider."""
        from promptkit.conversation.evaluating import judge_kwargs

        with Conversation(**judge_kwargs(self._judge or self._binding, self._timeouts)) as judge:
            return judge.send(question).text

    def _finish_evals(self) -> None:
        specs, data = self._session_eval_work(self.messages)
        if specs:
            self._evals_runner().schedule(specs, data, None)
        if self._eval_runner is not None:
            self._eval_runner.wait()
            self._eval_runner.shutdown()

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _load(self) -> tuple[tuple[Message, ...], int]:
        return self._stored_history(self._store.load(self._id))

    def _turn_history(self) -> TurnHistory:
        """The history a turn starts from: the kept one while the store's version has not
        moved (one cheap ``head()`` read), else loaded and decoded again."""
        probe = getattr(self._store, "head", None)
        head = None if probe is None else probe(self._id)
        kept = self._reuse_history(head)
        if kept is not None:
            return kept
        messages, version = self._load()
        return self._loaded_history(messages, version, head)

    def _check_writable(self) -> None:
        """Raise StoreError now if the store cannot take the turn (before the model is paid)."""
        check = getattr(self._store, "check_writable", None)
        if check is not None:
            check(self._id)
