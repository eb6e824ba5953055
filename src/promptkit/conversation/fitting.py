"""Applying a ContextPolicy to one conversation: what each turn sends, and its summary.

:class:`ContextKeeper` lives on the conversation. Before the engine builds a turn's request it
trims ``TurnRun.history`` (the visible history) with ``engine.context.fit_history``; the
stored history is never changed. For ``"summarize"`` it returns a :class:`Fold` the driver
completes with one extra model call (``summarize`` / ``summarize_async``: a throwaway
conversation on the same binding, or the policy's ``summarizer``); the summary is kept with
the conversation, covering a prefix of the history, and reused until more must be folded.
On a shared store (a ``MetadataBinding``) a new summary also rides on the next append, as
a ``ContextSummary`` (the covered count and a SHA-256 of the covered messages' JSON); a
summary loaded with the history is taken only when it covers more than the kept one and its
digest matches the history, so another process resuming the conversation does not make it
again. Other stores keep it in this process only.
Provider-reported usage of a single-call turn corrects later estimates: what the provider
counted beyond the estimate (its hidden per-request tokens, such as Anthropic's tool-use
system prompt) is added to every later estimate. Only upwards: an over-estimate costs
history, an under-estimate costs a failed request.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from promptkit.engine.context import (
    ContextPolicy,
    estimate_text_tokens,
    fit_history,
    message_tokens,
)
from promptkit.engine.messages import Message
from promptkit.stores._protocol import ContextSummary

if TYPE_CHECKING:
    from collections.abc import Sequence

    from promptkit.conversation.store_binding import MetadataBinding
    from promptkit.engine.chunks import Response
    from promptkit.engine.turn import TurnPlan

    class TurnRun(Protocol):
        """What of ``conversation.stream.TurnRun`` this module uses (no import: a cycle)."""

        plan: TurnPlan
        history: tuple[Message, ...]
        estimate: int
        conversation: Any

    ConversationCore = Any

__all__ = ["SUMMARY_INSTRUCTION", "ContextKeeper", "Fold", "check_opening", "keeper_for"]

SUMMARY_INSTRUCTION = (
    "You summarize conversations for an assistant that will continue them. Write a concise "
    "summary of the conversation you are given: the facts, names, numbers, decisions, open "
    "questions and tool results the assistant must remember. Plain prose, no preamble, at "
    "most {words} words.")
SUMMARY_HEADER = "\n\nSummary of the earlier conversation:\n"


@dataclass(frozen=True, slots=True)
class _Summary:
    count: int  # how many visible messages, from the start, it covers
    last: Message  # the last of them (a changed history makes the summary stale)
    text: str
    digest: Any = None  # a hashlib sha256 of the covered messages (when it can be saved)


def _digest(messages: Sequence[Message], base: Any = None) -> Any:
    """A SHA-256 of ``messages``' JSON, continuing a copy of ``base``; ``None`` if a message
    cannot be written as JSON (its summary then stays in this process)."""
    hasher = hashlib.sha256() if base is None else base.copy()
    try:
        for message in messages:
            hasher.update(json.dumps(message.to_dict(), separators=(",", ":"),
                                     default=repr).encode())
            hasher.update(b"\n")
    except (TypeError, ValueError, RecursionError):
        return None
    return hasher


@dataclass(frozen=True, slots=True)
class Fold:
    """Messages to fold into the summary before the turn is sent."""

    previous: str  # the summary they extend ("" for the first)
    messages: tuple[Message, ...]
    count: int  # the prefix the new summary covers
    kept: tuple[Message, ...]  # what is sent after the summary
    tokens: int  # room for the summary, in estimated tokens
    budget: int


def _tools_tokens(plan: TurnPlan) -> int:
    return sum(estimate_text_tokens(json.dumps(
        {"name": t.name, "description": t.description, "parameters": t.parameters},
        default=str)) for t in plan.tools)


def check_opening(policy: ContextPolicy, model: str, parameters: Any, system: str | None,
                  provider: str) -> None:
    """Raise ValueError at open when the budget cannot hold even the system prompt."""
    budget = policy.budget(model, parameters)
    if budget is None:
        return
    if budget <= 0:
        raise ValueError(f"the context budget is {budget} tokens: reserve_output_tokens (or "
                         f"max_tokens) leaves nothing of the model's context window for input")
    if system is not None:
        needed = estimate_text_tokens(system)
        if needed >= budget:
            raise ValueError(
                f"ContextPolicy budget of {budget} input tokens cannot hold the system prompt "
                f"of {provider or 'this'} conversation (about {needed} tokens): raise "
                "max_input_tokens or shorten the prompt")


def keeper_for(core: ConversationCore, policy: ContextPolicy) -> ContextKeeper:
    """The keeper of ``policy`` for ``core``, checked against its system prompt now."""
    from promptkit._errors import VariableError

    if not isinstance(policy, ContextPolicy):
        raise TypeError(f"context must be a promptkit.ContextPolicy, not {type(policy).__name__}")
    try:
        system: str | None = core.render_system_prompt()
    except VariableError:  # variables set later: checked when a turn is sent
        system = None
    check_opening(policy, core.model, {**core._prompt.parameters, **core._options.parameters},
                  system, core.provider)
    from promptkit.conversation.store_binding import MetadataBinding

    store = core._store
    return ContextKeeper(policy, store if isinstance(store, MetadataBinding) else None)


class ContextKeeper:
    """The policy of one conversation, its estimate correction and its summary."""

    __slots__ = ("_offered", "_rejected", "binding", "overhead", "policy", "summary")

    def __init__(self, policy: ContextPolicy, binding: MetadataBinding | None = None) -> None:
        self.policy = policy
        self.overhead = 0  # tokens the provider counted beyond the estimate (observed)
        self.summary: _Summary | None = None
        self.binding = binding  # saves a new summary with the next append (None: in-process)
        self._offered: ContextSummary | None = None  # loaded with the history, not checked yet
        self._rejected = ""  # the digest of a stored summary found not to match

    def offer(self, stored: ContextSummary | None) -> None:
        """A summary loaded with the history; the next turn takes it if it covers more than
        the kept one and matches the history."""
        if stored is not None and self.policy.strategy == "summarize":
            self._offered = stored

    def inherit(self, parent: ContextKeeper) -> None:
        """A fork's keeper: the parent's summary covers their common prefix (and one the
        parent has not saved yet is saved by the fork's next append too)."""
        self.summary = parent.summary
        if self.binding is not None and parent.binding is not None:
            self.binding.summary = parent.binding.summary

    def _current(self, history: tuple[Message, ...]) -> _Summary | None:
        """The summary of a prefix of ``history``: the kept one, or a loaded one that covers
        more and whose digest matches (checked once per load)."""
        summary = self.summary
        if summary is not None and not (summary.count <= len(history)
                                        and history[summary.count - 1] == summary.last):
            summary = self._keep(None)  # the history changed under it (clear, reload)
        offered, self._offered = self._offered, None
        if (offered is not None and offered.count <= len(history)
                and offered.digest != self._rejected
                and (summary is None or offered.count > summary.count)):
            digest = _digest(history[:offered.count])
            if digest is not None and digest.hexdigest() == offered.digest:
                summary = self._keep(_Summary(offered.count, history[offered.count - 1],
                                              offered.text, digest), stored=True)
            else:
                self._rejected = offered.digest
        return summary

    def _keep(self, summary: _Summary | None, *, stored: bool = False) -> _Summary | None:
        """Keep ``summary``; a new one (not ``stored``) is saved with the next append."""
        self.summary = summary
        binding = self.binding
        if binding is not None:
            binding.summary = None if summary is None or stored or summary.digest is None \
                else ContextSummary(count=summary.count, digest=summary.digest.hexdigest(),
                                    text=summary.text)
        return summary

    def fit(self, turn: TurnRun) -> Fold | None:
        """Trim ``turn.history`` to the budget; a Fold when a summary must be made first."""
        plan = turn.plan
        budget = self.policy.budget(plan.model, plan.parameters)
        if budget is None:
            return None
        history = turn.history
        fixed = estimate_text_tokens(plan.system) + _tools_tokens(plan) + self.overhead
        incoming = 0 if plan.user_message is None else message_tokens(plan.user_message)
        strategy = self.policy.strategy
        resumed = plan.user_message is None
        turn.plan = plan = replace(plan, context_fit=functools.partial(
            self._refit, turn, fixed, budget))
        if strategy != "summarize":
            fitted = fit_history(history, fixed=fixed, incoming=incoming, budget=budget,
                                 strategy=strategy, resumed=resumed, provider=plan.provider)
            turn.estimate = fitted.tokens
            if fitted.dropped:
                turn.history = fitted.messages
                _emit(turn, "context.truncated", {
                    "strategy": strategy, "dropped_messages": len(fitted.dropped),
                    "sent_messages": len(fitted.messages), "estimated_tokens": fitted.tokens,
                    "budget": budget})
            return None
        summary = self._current(history)
        start = 0 if summary is None else summary.count
        rest = history[start:]
        kept_cost = 0 if summary is None else estimate_text_tokens(SUMMARY_HEADER + summary.text)
        fitted = fit_history(rest, fixed=fixed + kept_cost, incoming=incoming, budget=budget,
                             strategy="oldest", resumed=resumed, provider=plan.provider)
        turn.estimate = fitted.tokens
        if not fitted.dropped:  # everything after the summary (if any) fits
            if summary is not None:
                _with_summary(turn, summary.text, rest)
            return None
        room = max(64, min(1024, budget // 8))  # the longest summary a fold may make
        fitted = fit_history(rest, fixed=fixed + room, incoming=incoming, budget=budget,
                             strategy="oldest", resumed=resumed, provider=plan.provider)
        turn.estimate = fitted.tokens
        return Fold("" if summary is None else summary.text, fitted.dropped,
                    start + len(fitted.dropped), fitted.messages, room, budget)

    def _refit(self, turn: TurnRun, fixed: int, budget: int, history: tuple[Message, ...],
               added: tuple[Message, ...]) -> tuple[Message, ...]:
        """A tool round's history: the turn's own messages grew, so older turns may go."""
        if self.summary is not None and turn.plan.system.endswith(self.summary.text):
            fixed += estimate_text_tokens(SUMMARY_HEADER + self.summary.text)
        strategy = self.policy.strategy
        fitted = fit_history(history, fixed=fixed, incoming=sum(map(message_tokens, added)),
                             budget=budget, resumed=turn.plan.user_message is None,
                             strategy="oldest" if strategy == "summarize" else strategy,
                             provider=turn.plan.provider)
        if fitted.dropped:
            _emit(turn, "context.truncated", {
                "strategy": strategy, "dropped_messages": len(fitted.dropped),
                "sent_messages": len(fitted.messages) + len(added),
                "estimated_tokens": fitted.tokens, "budget": budget})
        return fitted.messages

    def folded(self, turn: TurnRun, fold: Fold, text: str) -> None:
        """Keep the new summary and send it with the rest of the history."""
        text = text.strip()[: fold.tokens * 4]
        digest, previous = None, self.summary
        if self.binding is not None:  # the store can keep it: hash what it covers
            if (previous is not None and previous.digest is not None
                    and previous.count == fold.count - len(fold.messages)):
                digest = _digest(fold.messages, previous.digest)  # extends the previous one
            else:
                digest = _digest(turn.history[:fold.count])
        self._keep(_Summary(fold.count, turn.history[fold.count - 1], text, digest))
        turn.estimate += estimate_text_tokens(SUMMARY_HEADER + text) - fold.tokens
        _with_summary(turn, text, fold.kept)
        _emit(turn, "context.summarized", {
            "folded_messages": len(fold.messages), "covered_messages": fold.count,
            "summary_chars": len(text), "sent_messages": len(fold.kept),
            "estimated_tokens": turn.estimate, "budget": fold.budget})

    def observed(self, turn: TurnRun, response: Response) -> None:
        """Correct the estimate with the provider's count for a single-call turn."""
        estimate = turn.estimate
        reported = response.usage.input_tokens
        if (estimate and reported > 0
                and sum(m.role == "assistant" for m in response.messages) == 1):
            self.overhead = max(0, reported - (estimate - self.overhead))

    # --- the summary call -----------------------------------------------------------------

    def summarize(self, conversation: ConversationCore, fold: Fold) -> str:
        """Make the summary with blocking I/O (sync driver)."""
        policy = self.policy
        if policy.summarizer is not None:
            result = policy.summarizer(_summary_input(fold))
            if inspect.isawaitable(result):
                raise TypeError("an async summarizer needs the async driver (open_async)")
            return str(result)
        helper: Any = _throwaway(conversation, fold)
        try:
            return str(helper.send(_transcript(fold)).text)
        finally:
            helper.close()

    async def summarize_async(self, conversation: ConversationCore, fold: Fold) -> str:
        """Make the summary with asyncio (async driver)."""
        policy = self.policy
        if policy.summarizer is not None:
            result = policy.summarizer(_summary_input(fold))
            if inspect.isawaitable(result):
                result = await result
            return str(result)
        helper: Any = _throwaway(conversation, fold)
        try:
            return str((await helper.send(_transcript(fold))).text)
        finally:
            await helper.aclose()


def _emit(turn: TurnRun, name: str, data: dict[str, Any]) -> None:
    index = getattr(turn.plan.observer, "turn_index", None)
    turn.conversation._watch.emit(name, index, lambda: data)


def _with_summary(turn: TurnRun, text: str, kept: tuple[Message, ...]) -> None:
    turn.plan = replace(turn.plan, system=turn.plan.system + SUMMARY_HEADER + text)
    turn.history = kept


def _summary_input(fold: Fold) -> list[Message]:
    """What a custom summarizer gets: the previous summary (as a system message) and the
    messages to fold."""
    head = [Message(role="system", text=fold.previous)] if fold.previous else []
    return [*head, *fold.messages]


def _transcript(fold: Fold) -> str:
    lines = []
    if fold.previous:
        lines.append(f"Summary so far:\n{fold.previous}\n\nThe conversation continued:")
    for message in fold.messages:
        if message.tool_result is not None:
            lines.append(f"tool {message.tool_result.name} returned: "
                         f"{message.tool_result.content}")
            continue
        if message.text:
            lines.append(f"{message.role}: {message.text}")
        for call in message.tool_calls:
            lines.append(f"assistant called {call.name}"
                         f"({call.raw_arguments or json.dumps(call.arguments)})")
    return "\n".join(lines)


def _throwaway(conversation: ConversationCore, fold: Fold) -> Any:
    """A conversation on the same binding that only summarizes: no tools, no checks, its
    own memory store, nothing observed."""
    from promptkit.stores.memory import MemoryStore
    from promptkit.tools.registry import ToolRegistry

    kwargs = conversation._fork_kwargs()
    for server in kwargs.pop("mcp_servers"):
        server.release()
    words = max(20, fold.tokens * 3 // 4)
    prompt = replace(conversation._prompt, system_template=SUMMARY_INSTRUCTION.format(
        words=words), variables=(), tools=(), validators=())
    kwargs.update(prompt=prompt, store=MemoryStore(), conversation_id=None, watch=None,
                  tools=ToolRegistry(), guardrails=(), evals=(), judge=None,
                  response_format=None, context=None)
    return type(conversation)(**kwargs)
