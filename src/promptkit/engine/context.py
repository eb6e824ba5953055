"""Context-window budgets: what of a long history is *sent*, so a request fits the model.

Pure: the conversation layer calls :func:`fit_history` with the visible history before the
engine builds the request; the stored history is never changed. Sizes are estimates
(:func:`message_tokens`, about four characters a token, see docs/guide.md for its measured
error); the conversation adds what the provider reported beyond them (conversation/fitting.py).

A *turn group* starts at a user message and runs to the next one, so an assistant tool call
and its tool results always travel together: strategies drop or keep whole groups.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from promptkit._errors import ContextLengthError
from promptkit.engine.messages import Message

__all__ = [
    "DEFAULT_RESERVE_OUTPUT_TOKENS",
    "ContextPolicy",
    "Fitted",
    "context_window_for",
    "estimate_text_tokens",
    "fit_history",
    "message_tokens",
    "turn_groups",
]

Strategy = Literal["sliding", "oldest", "summarize", "fail"]
_STRATEGIES = ("sliding", "oldest", "summarize", "fail")

DEFAULT_RESERVE_OUTPUT_TOKENS = 1024
"""Tokens kept for the answer when neither the policy nor the prompt's ``max_tokens`` says."""

_MESSAGE_OVERHEAD = 4  # role and framing tokens every provider adds per message
_MEDIA_TOKENS = 1000  # an image or document part: a flat guess (providers bill by size)


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    """How a conversation keeps what it sends inside the model's context window.

    ``max_input_tokens`` is the budget for a request (system prompt, tools, history and the
    new message); without it the budget is the model's context window (``context_window``,
    else the bundled table) minus ``reserve_output_tokens`` (default: the prompt's
    ``max_tokens``, else 1024). ``strategy``: ``"sliding"`` keeps the system prompt, the first
    turn and the newest turns that fit; ``"oldest"`` drops the oldest turns; ``"summarize"``
    folds the oldest turns into a summary written by the conversation's model (or by
    ``summarizer(messages) -> str``, which may be async); ``"fail"`` raises
    :class:`ContextLengthError` before sending. An unknown model with no budget given applies
    no limit.
    """

    max_input_tokens: int | None = None
    strategy: Strategy = "sliding"
    reserve_output_tokens: int | None = None
    context_window: int | None = None
    summarizer: Callable[[Sequence[Message]], Any] | None = None

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}, "
                             f"not {self.strategy!r}")
        for name in ("max_input_tokens", "reserve_output_tokens", "context_window"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < (0 if name == "reserve_output_tokens" else 1)):
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if self.summarizer is not None and not callable(self.summarizer):
            raise TypeError("summarizer must be callable: summarizer(messages) -> str")

    def budget(self, model: str, parameters: Mapping[str, Any]) -> int | None:
        """The input-token budget for ``model`` with these call ``parameters`` (``None``:
        unknown model and no budget given)."""
        if self.max_input_tokens is not None:
            return self.max_input_tokens
        window = self.context_window or context_window_for(model)
        if window is None:
            return None
        reserve = self.reserve_output_tokens
        if reserve is None:
            asked = parameters.get("max_tokens")
            reserve = asked if isinstance(asked, int) and asked > 0 else (
                DEFAULT_RESERVE_OUTPUT_TOKENS)
        return window - reserve


def estimate_text_tokens(text: str) -> int:
    """About four characters a token (English and JSON on the BPE tokenizers in use)."""
    return (len(text) + 3) // 4


def message_tokens(message: Message) -> int:
    """The estimated tokens ``message`` costs in a request."""
    total = _MESSAGE_OVERHEAD + estimate_text_tokens(message.text)
    for call in message.tool_calls:
        arguments = call.raw_arguments or json.dumps(call.arguments)
        total += _MESSAGE_OVERHEAD + estimate_text_tokens(call.name) + estimate_text_tokens(
            arguments)
    if message.tool_result is not None:
        total += estimate_text_tokens(message.tool_result.content)
    for part in (message.extra.get("parts") or ()) if message.extra else ():
        text = part.get("text") if isinstance(part, Mapping) else None
        total += estimate_text_tokens(text) if isinstance(text, str) else _MEDIA_TOKENS
    return total


def turn_groups(history: Sequence[Message]) -> list[tuple[Message, ...]]:
    """``history`` cut before each user message (a leading non-user run is its own group)."""
    groups: list[tuple[Message, ...]] = []
    start = 0
    for index, message in enumerate(history):
        if message.role == "user" and index > start:
            groups.append(tuple(history[start:index]))
            start = index
    if start < len(history):
        groups.append(tuple(history[start:]))
    return groups


@dataclass(frozen=True, slots=True)
class Fitted:
    """What to send: ``messages`` (the history part), the ``dropped`` oldest messages (in
    order), and the estimated request size ``tokens`` against ``budget``."""

    messages: tuple[Message, ...]
    dropped: tuple[Message, ...]
    tokens: int
    budget: int


def fit_history(history: tuple[Message, ...], *, fixed: int, incoming: int, budget: int,
                strategy: Strategy, resumed: bool = False, provider: str = "") -> Fitted:
    """Choose what of ``history`` to send within ``budget`` estimated tokens.

    ``fixed`` is the cost of the system prompt and tools, ``incoming`` that of the new user
    message (both estimates); ``resumed`` marks the last group as the turn being continued
    (it is always sent).
    Raises :class:`ContextLengthError` when even the minimum does not fit, or at once for
    ``"fail"``; never for ``"summarize"``'s folding (its caller adds the summary's cost to
    ``fixed``)."""
    costs = [message_tokens(m) for m in history]
    total = fixed + incoming + sum(costs)
    if total <= budget:
        return Fitted(history, (), total, budget)
    if strategy == "fail":
        raise _too_long(f"the request needs about {total} tokens, over the budget of {budget} "
                        "(ContextPolicy strategy 'fail')", provider)
    groups = turn_groups(history)
    group_costs: list[int] = []
    position = 0
    for group in groups:
        group_costs.append(sum(costs[position:position + len(group)]))
        position += len(group)
    must = fixed + incoming
    newest = len(groups)
    if resumed and groups:
        newest -= 1
        must += group_costs[-1]
    if must > budget:
        what = "the turn being resumed" if resumed else "the new message"
        raise _too_long(
            f"{what} cannot fit the context budget even with the older history left out: it "
            f"needs about {must} tokens (system prompt and tools about {fixed}), "
            f"the budget is {budget}", provider)
    pin = strategy == "sliding" and newest > 0 and groups[0][0].role == "user"
    first = 0
    if pin and must + group_costs[0] <= budget:
        must += group_costs[0]
        first = 1
    else:
        pin = False
    keep_from = newest
    while keep_from > first and must + group_costs[keep_from - 1] <= budget:
        keep_from -= 1
        must += group_costs[keep_from]
    kept = [m for g in groups[:first] for m in g] + [m for g in groups[keep_from:] for m in g]
    dropped = tuple(m for g in groups[first:keep_from] for m in g)
    return Fitted(tuple(kept), dropped, must, budget)


def _too_long(message: str, provider: str) -> ContextLengthError:
    return ContextLengthError(message, status_code=None, provider=provider, retryable=False)


_lock = threading.Lock()
_windows: dict[str, int] | None = None


def context_window_for(model: str) -> int | None:
    """The bundled context window of ``model`` (``_data/context_windows.json``), or ``None``."""
    global _windows
    with _lock:
        if _windows is None:
            raw = json.loads(resources.files("promptkit").joinpath(
                "_data/context_windows.json").read_text())
            _windows = {str(k): int(v) for k, v in raw["models"].items()}
        table = _windows
    name = model.lower().rsplit("/", 1)[-1]
    if name in table:
        return table[name]
    known = [k for k in table if name.startswith((k + "-", k + ":"))]
    return table[max(known, key=len)] if known else None
