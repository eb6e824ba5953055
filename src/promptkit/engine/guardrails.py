"""Guardrail steps as the turn engine sees them: results, the check interface, the output guard.

The engine runs guardrails without knowing any check type: ``promptkit.checks`` compiles a
pack's ``validators`` into objects that satisfy :class:`Guardrail`, the conversation puts them
in the ``TurnPlan``, and ``engine.turn`` calls them on the user message (before any network
call) and on the final answer. Checks that must hold *while* text streams (banned words, a
length limit) also give a :class:`StreamScan`; :class:`OutputGuard` combines the scans of a
turn and holds back just enough text that no released TEXT chunk, and no concatenation of
them, can ever violate one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any, Literal, Protocol

from promptkit._errors import GuardrailError
from promptkit.engine.chunks import ChunkType, StreamChunk, text_chunk
from promptkit.engine.validation import ValidationResult

__all__ = [
    "DEFAULT_BLOCK_MESSAGE",
    "Direction",
    "Guardrail",
    "OutputGuard",
    "RunChecks",
    "StreamScan",
    "ValidationResult",
    "blocked_result",
    "first_blocked",
    "output_guard",
    "run_checks",
    "split_guardrails",
]

Direction = Literal["input", "output", "both"]
DEFAULT_BLOCK_MESSAGE = "I can't help with that request."


class StreamScan(Protocol):
    """The incremental part of an output check, fresh for each turn.

    ``pending`` is the text not yet released, ``before`` the last released character (``""``
    at the start), ``released`` how many characters were released so far.
    """

    def safe_prefix(self, pending: str, before: str, released: int) -> int:
        """How many leading characters of ``pending`` can never become part of a violation
        (``len(pending)`` to release all), or ``-1`` when the text already violates."""
        ...

    def violates_at_end(self, pending: str, before: str, released: int) -> bool:
        """Whether the text violates now that it is known to end after ``pending``."""
        ...

    def clear_until(self, text: str, start: int, released: int) -> int:
        """An index of ``text`` (at least ``start``) before which, from ``start`` on, nothing
        can ever take part in a violation, whatever follows; ``text[start - 1]`` is the last
        released character and ``released`` counts the characters released so far. A quick,
        conservative answer is fine: the rest goes through :meth:`safe_prefix`."""
        ...

    def clear_chunk(self, text: str, released: int) -> bool:
        """Whether all of ``text``, released right after ``released`` characters, can never
        take part in a violation, whatever came before or follows (a quick, conservative
        test for the one-delta-per-read case: ``False`` sends it through
        :meth:`clear_until` and :meth:`safe_prefix`)."""
        ...

    def finding(self) -> Mapping[str, Any]:
        """Details of the violation found (for ``ValidationResult.details``)."""
        ...


class Guardrail(Protocol):
    """One compiled validator, as the turn engine runs it.

    ``check(text)`` returns ``bool``, a :class:`ValidationResult`, or (when ``is_async``) an
    awaitable of either; the driver awaits it. ``stream_scan()`` gives a fresh scan when the
    check must hold while streaming (only asked of enforced output guardrails), else ``None``.
    """

    type: str
    direction: Direction
    enforced: bool
    message: str
    is_async: bool

    def check(self, text: str) -> Any: ...

    def stream_scan(self) -> StreamScan | None: ...


_TEXT = ChunkType.TEXT


class OutputGuard:
    """Holds back streamed text until every scan of the turn says it is safe.

    The drivers pass each batch of decoded chunks through :meth:`feed` and yield what it
    returns; once :attr:`tripped` is set they stop reading and close the response. The engine
    calls :meth:`finish` when the answer is complete, to release the held tail.
    """

    __slots__ = ("before", "guardrails", "pending", "released", "scans", "tripped")

    def __init__(self, guardrails: Sequence[Guardrail], scans: Sequence[StreamScan]) -> None:
        self.guardrails = tuple(guardrails)
        self.scans = tuple(scans)
        self.pending = ""
        self.before = ""
        self.released = 0
        #: index of the guardrail whose scan found a violation, or None
        self.tripped: int | None = None

    def feed(self, chunks: list[StreamChunk]) -> list[StreamChunk]:
        """The chunks the caller may see now: TEXT re-cut to the safe part, others as they are
        (``chunks`` itself when all of it may be seen).

        With nothing held, each chunk first gets every scan's quick ``clear_chunk`` test; from
        the first one that fails, several TEXT chunks that arrived together are checked as one
        text (the chunks every scan clears as a whole with ``clear_until`` pass unchanged at
        once), the others one by one (``safe_prefix``)."""
        if self.tripped is not None:
            return []
        index = 0
        if not self.pending:  # the hot path: deltas released as they came
            released = self.released
            last = ""
            scans = self.scans
            for chunk in chunks:
                text = chunk.text
                if text and chunk.type is _TEXT:
                    for scan in scans:
                        if not scan.clear_chunk(text, released):
                            break
                    else:
                        released += len(text)
                        last = text
                        index += 1
                        continue
                    break
                index += 1
            if last:
                self.before = last[-1]
                self.released = released
            if index == len(chunks):
                return chunks
        out = chunks[:index]
        rest = chunks[index:] if index else chunks
        if len(rest) > 1 and all(c.type is _TEXT for c in rest):
            self._feed_run(rest, out)
            return out
        for chunk in rest:
            if not self._feed_one(chunk, out):
                break
        return out

    def _feed_run(self, chunks: Sequence[StreamChunk], out: list[StreamChunk]) -> None:
        texts = [c.text for c in chunks]
        head = len(self.before) + len(self.pending)
        joined = self.before + self.pending + "".join(texts)
        starts = list(accumulate(map(len, texts), initial=head))  # chunk i: starts[i:i + 2]
        index, count = 0, len(chunks)
        scans = self.scans
        while index < count:
            if not self.pending:
                position, released = starts[index], self.released
                clear = min(scan.clear_until(joined, position, released) for scan in scans) \
                    if len(scans) > 1 else scans[0].clear_until(joined, position, released)
                # the chunks from ``index`` that end by ``clear`` pass as they are
                until = count if clear >= len(joined) else \
                    bisect_right(starts, clear, index + 1) - 1
                if until > index:
                    out.extend(chunks[index:until] if index or until < count else chunks)
                    end = starts[until]
                    self.released = released + end - position
                    if end:
                        self.before = joined[end - 1]
                    index = until
                    continue
            if not self._feed_one(chunks[index], out):
                return
            index += 1

    def _feed_one(self, chunk: StreamChunk, out: list[StreamChunk]) -> bool:
        """Feed one chunk; ``False`` once a scan found a violation."""
        if chunk.type is not _TEXT or not chunk.text:
            out.append(chunk)
            return True
        held = self.pending
        pending = held + chunk.text if held else chunk.text
        size = safe = len(pending)
        before = self.before
        released = self.released
        scans = self.scans
        for scan in scans:
            allowed = scan.safe_prefix(pending, before, released)
            if allowed < safe:
                if allowed < 0:
                    self.pending = pending
                    self.tripped = scans.index(scan)
                    return False
                safe = allowed
        if safe == size:  # the usual case: all of it, as the chunk it came in
            out.append(text_chunk(pending) if held else chunk)
            self.pending = ""
        elif safe:
            out.append(text_chunk(pending[:safe]))
            self.pending = pending[safe:]
        else:
            self.pending = pending
            return True
        self.before = pending[safe - 1]
        self.released = released + safe
        return True

    def finish(self) -> str | None:
        """The held tail to release now that the answer ended, or ``None`` on a violation."""
        if self.tripped is not None:
            return None
        for index, scan in enumerate(self.scans):
            if scan.violates_at_end(self.pending, self.before, self.released):
                self.tripped = index
                return None
        tail, self.pending = self.pending, ""
        if tail:
            self.before = tail[-1]
            self.released += len(tail)
        return tail

    @property
    def violated(self) -> Guardrail | None:
        return None if self.tripped is None else self.guardrails[self.tripped]

    def finding(self) -> Mapping[str, Any]:
        return {} if self.tripped is None else self.scans[self.tripped].finding()


@dataclass(frozen=True, slots=True)
class RunChecks:
    """An engine step: run these ``(guardrail, text)`` checks, which may be ``async``; the
    driver sends back one value per check, in order (the exception when one raised)."""

    checks: tuple[tuple[Guardrail, str], ...]


def split_guardrails(guardrails: Sequence[Guardrail]
                     ) -> tuple[tuple[Guardrail, ...], tuple[Guardrail, ...]]:
    """The guardrails that check the user message, and those that check the answer."""
    inputs = tuple(g for g in guardrails if g.direction in ("input", "both"))
    outputs = tuple(g for g in guardrails if g.direction in ("output", "both"))
    return inputs, outputs


def output_guard(outputs: Sequence[Guardrail]) -> OutputGuard | None:
    """A fresh guard for one turn, over the enforced output guardrails that scan streams."""
    owners: list[Guardrail] = []
    scans: list[StreamScan] = []
    for guardrail in outputs:
        if not guardrail.enforced:
            continue
        scan = guardrail.stream_scan()
        if scan is not None:
            owners.append(guardrail)
            scans.append(scan)
    return OutputGuard(owners, scans) if scans else None


def run_checks(guardrails: Sequence[Guardrail], text: str, direction: str, *,
               passed: Sequence[Guardrail] = ()
               ) -> Generator[RunChecks, Any, list[ValidationResult]]:
    """Check ``text`` with every guardrail (async ones through a :class:`RunChecks` step);
    those in ``passed`` already cleared it while it streamed (the output guard's scans).

    This is the one place guardrail results are produced (with :func:`blocked_result` for
    stream violations). Raises :class:`GuardrailError` when a check raised or returned
    something that is not a verdict.
    """
    values: dict[int, Any] = {}
    deferred = [g for g in guardrails if g.is_async]
    if deferred:
        outcomes = yield RunChecks(tuple((g, text) for g in deferred))
        values = {id(g): value for g, value in zip(deferred, outcomes, strict=True)}
    results = []
    blocking = False
    for guardrail in guardrails:
        if any(guardrail is done for done in passed):
            results.append(ValidationResult(type=guardrail.type, passed=True,
                                            message=guardrail.message, direction=direction,
                                            enforced=guardrail.enforced))
            continue
        if guardrail.is_async:
            value = values[id(guardrail)]
        else:
            try:
                value = guardrail.check(text)
            except Exception as exc:  # a custom validator's bug fails the turn, typed
                value = exc
        result = _as_result(guardrail, value, direction)
        if not result.passed and result.enforced and not blocking:
            blocking = True
            result = replace(result, blocked=True)
        results.append(result)
    return results


def blocked_result(guard: OutputGuard) -> ValidationResult:
    """The result for the stream violation ``guard`` found."""
    guardrail = guard.violated
    assert guardrail is not None
    return ValidationResult(type=guardrail.type, passed=False, message=guardrail.message,
                            direction="output", enforced=True, blocked=True,
                            details=guard.finding())


def first_blocked(results: Sequence[ValidationResult]) -> ValidationResult | None:
    return next((r for r in results if r.blocked), None)


def _as_result(guardrail: Guardrail, value: Any, direction: str) -> ValidationResult:
    if isinstance(value, BaseException):
        raise GuardrailError(guardrail.type, f"{type(value).__name__}: {value}") from value
    if isinstance(value, ValidationResult):
        return replace(value, type=value.type or guardrail.type,
                       message=value.message or guardrail.message, direction=direction,
                       enforced=guardrail.enforced, blocked=False)
    if isinstance(value, bool):
        return ValidationResult(type=guardrail.type, passed=value, message=guardrail.message,
                                direction=direction, enforced=guardrail.enforced)
    raise GuardrailError(guardrail.type, f"returned {type(value).__name__}; a validator "
                         "returns a bool or a promptkit.ValidationResult")
