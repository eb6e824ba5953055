"""``promptkit.evaluate``: score a recorded transcript with a prompt's evals, offline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptkit.checks.evals import (
    EvalResult,
    EvalSpec,
    compile_evals,
    session_evals,
    session_input,
    transcript_turns,
    turn_evals,
)
from promptkit.conversation.evaluating import judge_binding, judge_kwargs, score_blocking
from promptkit.engine.messages import Message

if TYPE_CHECKING:
    import os

    from promptkit.pack.model import Pack
    from promptkit.providers.binding import Binding

__all__ = ["evaluate"]


def _as_messages(messages: Iterable[Message | Mapping[str, Any]]) -> list[Message]:
    out = []
    for item in messages:
        if isinstance(item, Message):
            out.append(item)
        elif isinstance(item, Mapping):
            data = dict(item)
            if "text" not in data and isinstance(data.get("content"), str):
                data["text"] = data.pop("content")
            out.append(Message.from_dict(data))
        else:
            raise TypeError(f"a transcript holds Messages or dicts, not {type(item).__name__}")
    return out


def evaluate(pack: str | os.PathLike[str] | Pack, prompt: str,
             messages: Iterable[Message | Mapping[str, Any]], *,
             evals: Mapping[str, Callable[..., Any]] | None = None, judge: Any = None,
             conversation_id: str | None = None) -> list[EvalResult]:
    """Score a recorded transcript with the prompt's evals (for CI on stored conversations).

    Turn evals run on every turn (``sample_turns`` samples only when ``conversation_id`` is
    given, the same turns a live conversation would), session evals once over the whole
    transcript. ``messages`` are Messages or dicts (``role`` and ``text`` or ``content``).
    ``llm_judge`` needs ``judge=`` (or a provider the pack or environment selects).
    """
    from promptkit.conversation.opening import _as_pack

    loaded = _as_pack(pack)
    spec = loaded.prompt(prompt)
    specs = compile_evals(loaded, spec, custom=evals)
    transcript = _as_messages(messages)
    binding = _offline_judge(loaded, specs, judge)
    ask = None if binding is None else _asker(binding)
    results: list[EvalResult] = []
    for index, data in enumerate(transcript_turns(transcript)):
        for item in turn_evals(specs, conversation_id, index):
            if not item.per_session:
                results.append(item.result(score_blocking(item, data, ask), index))
    if transcript:
        whole = session_input(transcript)
        for item in session_evals(specs, conversation_id):
            results.append(item.result(score_blocking(item, whole, ask), None))
    return results


def _asker(binding: Binding) -> Callable[[str], str]:
    def ask(question: str) -> str:
        from promptkit.conversation.sync_driver import Conversation

        with Conversation(**judge_kwargs(binding, None)) as judge:
            return judge.send(question).text

    return ask


def _offline_judge(pack: Pack, specs: Sequence[EvalSpec], judge: Any) -> Binding | None:
    """The judge for offline evals: ``judge=``, else the provider the pack or the environment
    selects; ``None`` (each judge eval then fails, saying so) when there is none."""
    if not any(s.is_judge for s in specs):
        return None
    from promptkit._errors import ProviderNotConfiguredError
    from promptkit.providers._select import resolve_provider

    try:
        if judge is not None:
            return judge_binding(judge, None)
        hint = pack.provider
        return resolve_provider(pack_provider=hint.name if hint else None,
                                pack_model=hint.model if hint else None)
    except ProviderNotConfiguredError:
        return None
