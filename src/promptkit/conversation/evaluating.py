"""Running evals: in the background after each committed turn, and at close.

The blocking driver runs them in a small worker pool, the asyncio driver as tasks bounded by
``max_concurrent_evals``; neither delays a reply. ``llm_judge`` evals ask a judge model through
a fresh, history-less conversation on the judge's binding (the drivers give the runner
their ``ask`` function; offline evaluation is in ``offline``) (``judge=``: ``"provider:model"`` or
a mapping of ``open()`` provider options; default the conversation's own provider and model).
:meth:`EvalBook.add` is the one place an :class:`EvalResult` is produced. An eval never raises:
a failing custom eval or judge call is a failed result whose message says what happened.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any

from promptkit.checks.evals import (
    EvalResult,
    EvalSpec,
    outcome_of_custom,
)
from promptkit.checks.judge import JUDGE_SYSTEM, judge_question, parse_verdict
from promptkit.checks.types import CheckInput, Outcome
from promptkit.engine.messages import Message

if TYPE_CHECKING:

    from promptkit.engine.timeouts import Timeouts
    from promptkit.providers.binding import Binding

__all__ = ["AsyncEvalRunner", "EvalBook", "SyncEvalRunner", "judge_binding", "judge_kwargs",
           "score_async", "score_blocking", "turn_index_of", "turn_input"]

DEFAULT_MAX_CONCURRENT_EVALS = 10
AskJudge = Callable[[str], str]
AskJudgeAsync = Callable[[str], Awaitable[str]]
_SYNC_WORKERS = 4


class EvalBook:
    """The results of one conversation's evals, safe to add to from worker threads."""

    def __init__(self, on_result: Callable[[EvalResult], None] | None = None) -> None:
        self._results: list[EvalResult] = []
        self._lock = threading.Lock()
        self._on_result = on_result

    def add(self, result: EvalResult) -> None:
        """Record a result: the single place eval results appear (``eval.completed`` is
        emitted from here, through ``on_result``)."""
        with self._lock:
            self._results.append(result)
        if self._on_result is not None:
            self._on_result(result)

    def snapshot(self) -> list[EvalResult]:
        with self._lock:
            return list(self._results)


def judge_binding(judge: Any, default: Binding | None) -> Binding | None:
    """The binding a judge runs on: ``default`` (the conversation's) unless ``judge`` names
    one as ``"provider:model"``, ``"provider"`` or a mapping of provider options."""
    if judge is None:
        return default
    from promptkit.providers._select import resolve_provider

    if isinstance(judge, str):
        provider, _, model = judge.partition(":")
        return resolve_provider(provider=provider or None, model=model or None)
    if isinstance(judge, Mapping):
        allowed = {"provider", "model", "api_key", "base_url", "mock_responses", "api"}
        unknown = set(judge) - allowed
        if unknown:
            raise ValueError(f"judge= takes {', '.join(sorted(allowed))}; not "
                             f"{', '.join(sorted(unknown))}")
        return resolve_provider(**dict(judge))
    raise TypeError("judge= is 'provider:model' or a mapping of provider options")


def judge_kwargs(binding: Binding, timeouts: Timeouts | None) -> dict[str, Any]:
    from promptkit.engine.timeouts import Timeouts
    from promptkit.pack.model import Pack, PromptSpec
    from promptkit.pack.variables import VariableSet
    from promptkit.stores.memory import MemoryStore

    prompt = PromptSpec(name="judge", id="judge", display_name="judge",
                        system_template=JUDGE_SYSTEM)
    pack = Pack(id="promptkit-judge", name="judge", version="1.0.0", prompts={"judge": prompt})
    return {"pack": pack, "prompt": prompt, "binding": binding,
            "variables": VariableSet((), {}), "store": MemoryStore(), "conversation_id": None,
            "timeouts": timeouts or Timeouts(), "max_retries": 2}


def _failed(spec: EvalSpec, exc: BaseException) -> Outcome:
    what = "the judge call" if spec.is_judge else f"eval {spec.id!r}"
    return Outcome(False, None, f"{what} failed: {type(exc).__name__}: {exc}")


def score_blocking(spec: EvalSpec, data: CheckInput, ask: AskJudge | None) -> Outcome:
    """Score one eval from blocking code; ``ask(question)`` returns the judge's reply."""
    try:
        if spec.custom is not None:
            value = spec.custom(data.text, dict(spec.params))
            if inspect.isawaitable(value):
                from promptkit.conversation.checking import _run_in_thread

                value = _run_in_thread(value)
            return outcome_of_custom(value, spec)
        if spec.is_judge:
            if ask is None:
                return Outcome(False, None, "no judge configured: pass judge='provider:model'")
            return parse_verdict(ask(judge_question(spec.config, data)), spec.config)
        return spec.score(data)
    except Exception as exc:
        return _failed(spec, exc)


async def score_async(spec: EvalSpec, data: CheckInput, ask: AskJudgeAsync | None) -> Outcome:
    """Score one eval in the event loop; ``await ask(question)`` returns the judge's reply."""
    try:
        if spec.custom is not None:
            if spec.is_async:
                value = await spec.custom(data.text, dict(spec.params))
            else:
                value = await asyncio.to_thread(spec.custom, data.text, dict(spec.params))
                if inspect.isawaitable(value):
                    value = await value
            return outcome_of_custom(value, spec)
        if spec.is_judge:
            if ask is None:
                return Outcome(False, None, "no judge configured: pass judge='provider:model'")
            return parse_verdict(await ask(judge_question(spec.config, data)), spec.config)
        return spec.score(data)
    except Exception as exc:
        return _failed(spec, exc)


class SyncEvalRunner:
    """Background evals for a blocking conversation: a small pool, created on first use."""

    def __init__(self, book: EvalBook, ask: AskJudge, max_concurrent: int) -> None:
        self._book = book
        self._ask = ask
        self._workers = max(1, min(max_concurrent, _SYNC_WORKERS))
        self._pool: ThreadPoolExecutor | None = None
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()

    def schedule(self, specs: Iterable[EvalSpec], data: CheckInput,
                 turn_index: int | None) -> None:
        for spec in specs:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self._workers,
                                                    thread_name_prefix="promptkit-eval")
                future = self._pool.submit(self._run, spec, data, turn_index)
                self._futures.add(future)
            future.add_done_callback(self._forget)

    def _run(self, spec: EvalSpec, data: CheckInput, turn_index: int | None) -> None:
        outcome = score_blocking(spec, data, self._ask)
        self._book.add(spec.result(outcome, turn_index))

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the scheduled evals; whether all finished within ``timeout``."""
        with self._lock:
            pending = set(self._futures)
        if not pending:
            return True
        _, not_done = wait_futures(pending, timeout=timeout)
        return not not_done

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


class AsyncEvalRunner:
    """Background evals for an asyncio conversation: tasks, at most ``max_concurrent`` at once."""

    def __init__(self, book: EvalBook, ask: AskJudgeAsync, max_concurrent: int) -> None:
        self._book = book
        self._ask = ask
        self._max = max(1, max_concurrent)
        self._limit: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, specs: Iterable[EvalSpec], data: CheckInput,
                 turn_index: int | None) -> None:
        if self._limit is None:
            self._limit = asyncio.Semaphore(self._max)
        for spec in specs:
            task = asyncio.get_running_loop().create_task(self._run(spec, data, turn_index))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, spec: EvalSpec, data: CheckInput, turn_index: int | None) -> None:
        assert self._limit is not None
        async with self._limit:
            outcome = await score_async(spec, data, self._ask)
        self._book.add(spec.result(outcome, turn_index))

    async def wait(self, timeout: float | None = None) -> bool:
        pending = set(self._tasks)
        if not pending:
            return True
        _, not_done = await asyncio.wait(pending, timeout=timeout)
        return not not_done


def turn_index_of(history: Sequence[Message]) -> int:
    """The 0-based index of the turn that follows ``history``."""
    return sum(1 for m in history if m.role == "user")


def turn_input(history: Sequence[Message], added: Sequence[Message], text: str) -> CheckInput:
    messages = (*history, *added)
    calls = tuple(c for m in added for c in m.tool_calls)
    return CheckInput(text, tuple(messages), calls)
