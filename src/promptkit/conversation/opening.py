"""Opening conversations: ``promptkit.open`` / ``open_async`` and ``Pack.open`` / ``open_async``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from promptkit.conversation.core import new_conversation_id
from promptkit.conversation.store_binding import MetadataBinding, accepts_metadata
from promptkit.engine.output import output_spec
from promptkit.engine.sampling import call_options
from promptkit.engine.timeouts import Timeouts
from promptkit.observe.setup import ObserveOptions
from promptkit.pack.variables import VariableSet
from promptkit.providers._select import resolve_provider
from promptkit.stores._protocol import check_conversation_id
from promptkit.stores.memory import MemoryStore

if TYPE_CHECKING:
    from promptkit.conversation.async_driver import AsyncConversation
    from promptkit.conversation.sync_driver import Conversation
    from promptkit.engine.context import ContextPolicy
    from promptkit.pack.model import Pack, PromptSpec

__all__ = ["open", "open_async"]

_DEFAULT_TIMEOUTS = Timeouts()  # immutable, so every conversation can share it


def _conversation_kwargs(
    pack: Pack,
    prompt: str,
    *,
    provider: str | None,
    model: str | None,
    api_key: str | None,
    base_url: str | None,
    variables: Mapping[str, Any] | None,
    store: Any,
    conversation_id: str | None,
    timeouts: Timeouts | None,
    max_retries: int,
    mock_responses: Any,
    api: str | None = None,
    on_conflict: str = "raise",
    response_format: Any = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    observe: ObserveOptions | None = None,
    validators: Mapping[str, Any] | None = None,
    guardrails: Sequence[Mapping[str, Any]] | None = None,
    guardrails_mode: str | None = None,
    evals: Mapping[str, Any] | bool | None = None,
    judge: Any = None,
    max_concurrent_evals: int = 10,
    context: ContextPolicy | None = None,
) -> dict[str, Any]:
    spec = pack.prompt(prompt)
    if max_retries < 0:
        raise ValueError("max_retries must be 0 or more")
    options = call_options(temperature=temperature, max_tokens=max_tokens, top_p=top_p,
                           stop=stop, seed=seed, extra_headers=extra_headers,
                           extra_body=extra_body)
    output = output_spec(response_format)
    hint = pack.provider
    binding = resolve_provider(
        provider=provider, model=model, api_key=api_key, base_url=base_url,
        pack_provider=hint.name if hint else None, pack_model=hint.model if hint else None,
        mock_responses=mock_responses, api=api, defer_unconfigured=True,
    )
    values = VariableSet(spec.variables, dict(variables or {}))
    if conversation_id is not None:
        check_conversation_id(conversation_id)
    if store is None:
        store = MemoryStore()
    elif accepts_metadata(store):
        # A store the caller shares: save pack, prompt and variables with every turn, so the
        # conversation can be resumed (promptkit.resume) and listed.
        conversation_id = conversation_id or new_conversation_id()
        store = MetadataBinding(store, conversation_id=conversation_id, pack=pack, prompt=spec,
                                variables=values)
    return {
        "pack": pack, "prompt": spec, "binding": binding, "variables": values,
        "store": store, "conversation_id": conversation_id,
        "timeouts": timeouts or _DEFAULT_TIMEOUTS,
        "max_retries": max_retries, "on_conflict": on_conflict,
        "response_format": output, "options": options, "observe": observe,
        "context": context,
        **_check_kwargs(pack, spec, validators=validators, guardrails=guardrails,
                        guardrails_mode=guardrails_mode, evals=evals, judge=judge,
                        max_concurrent_evals=max_concurrent_evals),
    }


def _observe(tracer_provider: Any, meter_provider: Any, capture_content: bool | None
             ) -> ObserveOptions | None:
    if tracer_provider is None and meter_provider is None and capture_content is None:
        return None
    return ObserveOptions(tracer_provider, meter_provider, capture_content)


def _check_kwargs(pack: Pack, spec: PromptSpec, *, validators: Mapping[str, Any] | None,
                  guardrails: Sequence[Mapping[str, Any]] | None, guardrails_mode: str | None,
                  evals: Mapping[str, Any] | bool | None, judge: Any,
                  max_concurrent_evals: int) -> dict[str, Any]:
    """Guardrails and evals compiled from the pack and the open() options (``checks/``)."""
    if max_concurrent_evals < 1:
        raise ValueError("max_concurrent_evals must be 1 or more")
    if guardrails_mode not in (None, "enforce", "monitor"):
        raise ValueError(f"guardrails_mode must be 'enforce' or 'monitor', "
                         f"not {guardrails_mode!r}")
    options: dict[str, Any] = {}
    if spec.validators or guardrails:
        from promptkit.checks.guardrails import compile_guardrails

        options["guardrails"] = compile_guardrails(
            pack, spec, validators=validators, guardrails=guardrails, mode=guardrails_mode)
    declared = pack.raw.get("evals") or spec.raw.get("evals")
    if evals is not False and declared:
        from promptkit.checks.evals import compile_evals

        custom = evals if isinstance(evals, Mapping) else None
        compiled = compile_evals(pack, spec, custom=custom)
        if compiled:
            options["evals"] = compiled
            options["max_concurrent_evals"] = max_concurrent_evals
            if judge is not None and any(e.is_judge for e in compiled):
                from promptkit.conversation.evaluating import judge_binding

                options["judge"] = judge_binding(judge, None)
    return options


def _as_pack(pack: str | os.PathLike[str] | Pack) -> Pack:
    if isinstance(pack, (str, os.PathLike)):
        from promptkit.pack.loading import load_pack

        return load_pack(pack)
    return pack


def open(
    pack: str | os.PathLike[str] | Pack,
    prompt: str,
    *,
    provider: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    variables: Mapping[str, Any] | None = None,
    store: Any = None,
    conversation_id: str | None = None,
    timeouts: Timeouts | None = None,
    max_retries: int = 2,
    mock_responses: Any = None,
    api: str | None = None,
    on_conflict: Literal["raise", "reload"] = "raise",
    response_format: Any = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool | None = None,
    validators: Mapping[str, Any] | None = None,
    guardrails: Sequence[Mapping[str, Any]] | None = None,
    guardrails_mode: Literal["enforce", "monitor"] | None = None,
    evals: Mapping[str, Any] | bool | None = None,
    judge: Any = None,
    max_concurrent_evals: int = 10,
    context: ContextPolicy | None = None,
) -> Conversation:
    """Open a conversation with prompt ``prompt`` of the pack at ``pack`` (a path or a Pack).

    The provider is chosen by ``provider=``, else the pack's ``provider`` block, else the
    model-name prefix, else the environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
    ``GEMINI_API_KEY``/``GOOGLE_API_KEY``, ``OLLAMA_HOST``). ``provider="mock"`` runs offline
    (``mock_responses=`` takes a PromptKit mock-responses YAML/JSON path or mapping).
    ``api="responses"`` talks to OpenAI's Responses API instead of Chat Completions.
    ``response_format`` (a JSON Schema, ``{"type": "json_object"}``, or a dataclass,
    TypedDict, msgspec.Struct or pydantic model) asks for JSON answers in each provider's
    native structured-output form; with a type, ``Response.parsed`` is the decoded instance.
    ``temperature``, ``max_tokens``, ``top_p``, ``stop`` and ``seed`` override the pack's
    ``parameters`` (``send()``/``stream()`` take them too, per call); ``extra_headers`` are
    added to every request (never credentials: use ``api_key``), ``extra_body`` is merged into
    every JSON body (for OpenAI-compatible servers' own fields). Bad values raise
    InvalidParameterError here.
    ``tracer_provider`` / ``meter_provider`` (OpenTelemetry, extra ``otel``) trace and
    measure its turns; ``capture_content=True`` records messages on the spans
    (docs/observability.md).

    Guardrails and evals (``docs/guardrails.md``): ``validators={"type": fn}`` registers
    custom validator types (``fn(text, params)`` → bool or ValidationResult, may be async),
    ``guardrails=[{"type": ..., "params": {...}}]`` adds validators in code,
    ``guardrails_mode="monitor"`` records violations without blocking; ``evals={"type": fn}``
    registers custom eval types and ``evals=False`` turns evals off, ``judge=`` picks the
    ``llm_judge`` model (``"provider:model"`` or a mapping; default this conversation's),
    ``max_concurrent_evals`` bounds the background evals.

    ``context=promptkit.ContextPolicy(...)`` keeps what each turn sends inside the model's
    context window (docs/guide.md, "Long conversations"); a budget that cannot hold the
    system prompt raises ValueError here.

        conv = promptkit.open("hello.pack.json", "chat", variables={"user_name": "Ada"})
    """
    from promptkit.conversation.sync_driver import Conversation

    return Conversation(**_conversation_kwargs(
        _as_pack(pack), prompt, provider=provider, model=model, api_key=api_key,
        base_url=base_url, variables=variables, store=store, conversation_id=conversation_id,
        timeouts=timeouts, max_retries=max_retries, mock_responses=mock_responses,
        api=api, on_conflict=on_conflict, response_format=response_format,
        temperature=temperature, max_tokens=max_tokens, top_p=top_p, stop=stop, seed=seed,
        extra_headers=extra_headers, extra_body=extra_body,
        observe=_observe(tracer_provider, meter_provider, capture_content),
        validators=validators, guardrails=guardrails, guardrails_mode=guardrails_mode,
        evals=evals, judge=judge, max_concurrent_evals=max_concurrent_evals,
        context=context))


def open_async(
    pack: str | os.PathLike[str] | Pack,
    prompt: str,
    *,
    provider: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    variables: Mapping[str, Any] | None = None,
    store: Any = None,
    conversation_id: str | None = None,
    timeouts: Timeouts | None = None,
    max_retries: int = 2,
    mock_responses: Any = None,
    api: str | None = None,
    on_conflict: Literal["raise", "reload"] = "raise",
    response_format: Any = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool | None = None,
    validators: Mapping[str, Any] | None = None,
    guardrails: Sequence[Mapping[str, Any]] | None = None,
    guardrails_mode: Literal["enforce", "monitor"] | None = None,
    evals: Mapping[str, Any] | bool | None = None,
    judge: Any = None,
    max_concurrent_evals: int = 10,
    context: ContextPolicy | None = None,
) -> AsyncConversation:
    """The asyncio twin of :func:`open`; use with ``async with``.

        async with promptkit.open_async("hello.pack.json", "chat") as conv: ...
    """
    from promptkit.conversation.async_driver import AsyncConversation

    return AsyncConversation(**_conversation_kwargs(
        _as_pack(pack), prompt, provider=provider, model=model, api_key=api_key,
        base_url=base_url, variables=variables, store=store, conversation_id=conversation_id,
        timeouts=timeouts, max_retries=max_retries, mock_responses=mock_responses,
        api=api, on_conflict=on_conflict, response_format=response_format,
        temperature=temperature, max_tokens=max_tokens, top_p=top_p, stop=stop, seed=seed,
        extra_headers=extra_headers, extra_body=extra_body,
        observe=_observe(tracer_provider, meter_provider, capture_content),
        validators=validators, guardrails=guardrails, guardrails_mode=guardrails_mode,
        evals=evals, judge=judge, max_concurrent_evals=max_concurrent_evals,
        context=context))
