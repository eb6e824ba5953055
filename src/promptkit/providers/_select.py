"""Choosing a provider: explicit > pack ``provider`` block > model prefix > environment.

Endpoint presets (base URL, key variable, default model) are data; the wire dialect is code.
Several presets share one dialect, so an OpenAI-compatible host is a preset, not a code path.
Dialect modules are imported only when a conversation is opened with them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from promptkit._errors import ProviderConfigError, ProviderNotConfiguredError
from promptkit.engine.dialect import Dialect, Endpoint
from promptkit.providers.binding import Binding

if TYPE_CHECKING:
    from promptkit.transport._base import AsyncTransport, SyncTransport

__all__ = ["PRESETS", "Binding", "Preset", "check_base_url", "infer_provider",
           "nothing_configured", "resolve_provider"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    """How to reach one provider: its dialect, base URL, key variables and default model."""

    name: str
    dialect: str
    base_url: str
    key_env: tuple[str, ...] = ()
    base_url_env: tuple[str, ...] = ()
    default_model: str = ""
    key_required: bool = True
    base_url_suffix: str = ""
    #: how the key is sent: ``"bearer"`` (Authorization header) or a header name (``api-key``)
    auth: str = "bearer"


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(name="openai", dialect="openai_chat", base_url="https://api.openai.com/v1",
               key_env=("OPENAI_API_KEY",), base_url_env=("OPENAI_BASE_URL",),
               default_model="gpt-4o-mini"),
        Preset(name="anthropic", dialect="anthropic", base_url="https://api.anthropic.com",
               key_env=("ANTHROPIC_API_KEY",), base_url_env=("ANTHROPIC_BASE_URL",),
               default_model="claude-sonnet-4-5"),
        Preset(name="gemini", dialect="gemini",
               base_url="https://generativelanguage.googleapis.com/v1beta",
               key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), base_url_env=("GEMINI_BASE_URL",),
               default_model="gemini-2.5-flash"),
        Preset(name="ollama", dialect="ollama", base_url="http://localhost:11434",
               base_url_env=("OLLAMA_HOST",), default_model="llama3.2", key_required=False),
        Preset(name="azure", dialect="openai_chat", base_url="",
               key_env=("AZURE_OPENAI_API_KEY",), base_url_env=("AZURE_OPENAI_ENDPOINT",),
               base_url_suffix="/openai/v1", auth="api-key"),
        Preset(name="openrouter", dialect="openai_chat", base_url="https://openrouter.ai/api/v1",
               key_env=("OPENROUTER_API_KEY",), default_model="openai/gpt-4o-mini"),
        Preset(name="vllm", dialect="openai_chat", base_url="http://localhost:8000/v1",
               key_env=("VLLM_API_KEY",), base_url_env=("VLLM_BASE_URL",), key_required=False),
        Preset(name="lmstudio", dialect="openai_chat", base_url="http://localhost:1234/v1",
               base_url_env=("LMSTUDIO_BASE_URL",), key_required=False),
        Preset(name="llamacpp", dialect="openai_chat", base_url="http://localhost:8080/v1",
               base_url_env=("LLAMACPP_BASE_URL",), key_required=False),
        Preset(name="mock", dialect="mock", base_url="mock://local", default_model="mock-model",
               key_required=False),
    )
}

# The order in which environment variables choose a provider when nothing else does.
ENV_ORDER: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "openai"),
    ("OPENAI_BASE_URL", "openai"),  # a local OpenAI-compatible server needs no key
    ("ANTHROPIC_API_KEY", "anthropic"),
    ("GEMINI_API_KEY", "gemini"),
    ("GOOGLE_API_KEY", "gemini"),
    ("OLLAMA_HOST", "ollama"),
)


NOT_CONFIGURED = (
    "no LLM provider is configured: set one of OPENAI_API_KEY, ANTHROPIC_API_KEY, "
    "GEMINI_API_KEY (or GOOGLE_API_KEY) or OLLAMA_HOST, or pass provider=... or the "
    "base_url= of an OpenAI-compatible server (provider='mock' runs offline)")


def nothing_configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment names no provider at all (``PROMPTKIT_PROVIDER``, a key ...)."""
    names = ("PROMPTKIT_PROVIDER", *(variable for variable, _ in ENV_ORDER))
    return not any(environ.get(name, "").strip() for name in names)


def infer_provider(model: str) -> str | None:
    """The provider a model name implies (``claude*`` → anthropic, ``name:tag`` → ollama ...)."""
    name = model.lower()
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith("gemini"):
        return "gemini"
    if name.startswith(("gpt", "o1", "o3", "o4", "chatgpt", "text-embedding")):
        return "openai"
    if ":" in name and "/" not in name:
        return "ollama"
    if name.startswith("mock"):
        return "mock"
    return None


def _env(names: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def choose_provider_name(
    provider: str | None,
    model: str | None,
    pack_provider: str | None,
    pack_model: str | None,
    environ: Mapping[str, str],
    *,
    base_url: str | None = None,
) -> str:
    """Apply the selection order; raise :class:`ProviderNotConfiguredError` if nothing fits.

    An explicit ``base_url`` with no provider named or implied means an OpenAI-compatible
    server: it is more specific than whatever keys the environment holds.
    """
    for candidate in (provider, pack_provider):
        if candidate:
            return candidate.lower()
    for candidate_model in (model, pack_model):
        inferred = infer_provider(candidate_model) if candidate_model else None
        if inferred:
            return inferred
    if base_url:
        return "openai"
    from_env = environ.get("PROMPTKIT_PROVIDER", "").strip()
    if from_env:
        return from_env.lower()
    for variable, name in ENV_ORDER:
        if environ.get(variable, "").strip():
            return name
    for candidate_model in (model, pack_model):
        if candidate_model:
            raise ProviderNotConfiguredError(
                f"no provider is known for model {candidate_model!r}: pass provider=... (or "
                "--provider), or set one of OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY "
                "or OLLAMA_HOST")
    raise ProviderNotConfiguredError(NOT_CONFIGURED)


def resolve_provider(
    *,
    provider: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    pack_provider: str | None = None,
    pack_model: str | None = None,
    mock_responses: object = None,
    api: str | None = None,
    environ: Mapping[str, str] | None = None,
    defer_unconfigured: bool = False,
) -> Binding:
    """Resolve the provider, model, endpoint and transports for a conversation.

    ``api="responses"`` selects OpenAI's Responses API instead of Chat Completions (for the
    ``openai`` and ``azure`` presets). Configuration problems raise
    :class:`ProviderNotConfiguredError` (a missing key names its variable) or its subclass
    :class:`ProviderConfigError` (a malformed base URL, an unknown provider or ``api``). With
    ``defer_unconfigured`` and nothing asked for at all (no argument, no pack provider block,
    nothing in the environment), the binding is returned anyway and its first request raises
    :class:`ProviderNotConfiguredError`: a conversation can be opened and rendered offline.

    With an explicit ``base_url`` nothing is read from the environment, so the binding (which
    is immutable, its dialect stateless) is remembered for the same arguments: opening a
    conversation per request does not resolve the provider again.
    """
    key = (provider, model, api_key, base_url, pack_provider, pack_model, api)
    cacheable = base_url is not None and mock_responses is None and environ is None
    if cacheable:
        cached = _BINDINGS.get(key)
        if cached is not None:
            return cached
    env = os.environ if environ is None else environ
    asked = (provider, model, api_key, base_url, pack_provider, pack_model, mock_responses, api)
    if defer_unconfigured and not any(asked) and nothing_configured(env):
        from promptkit.providers.unconfigured import UnconfiguredDialect

        return Binding(provider="", model="", dialect=UnconfiguredDialect(NOT_CONFIGURED),
                       sync_transport=shared_sync_transport,
                       async_transport=shared_async_transport)
    binding = _resolve(provider=provider, model=model, api_key=api_key, base_url=base_url,
                       pack_provider=pack_provider, pack_model=pack_model,
                       mock_responses=mock_responses, api=api, environ=environ)
    if cacheable and binding.provider != "mock":
        if len(_BINDINGS) >= 64:
            _BINDINGS.clear()
        _BINDINGS[key] = binding
    return binding


_BINDINGS: dict[tuple[str | None, ...], Binding] = {}


def _resolve(
    *,
    provider: str | None,
    model: str | None,
    api_key: str | None,
    base_url: str | None,
    pack_provider: str | None,
    pack_model: str | None,
    mock_responses: object,
    api: str | None,
    environ: Mapping[str, str] | None,
) -> Binding:
    env = os.environ if environ is None else environ
    name = choose_provider_name(provider, model, pack_provider, pack_model, env,
                                base_url=base_url)
    preset = PRESETS.get(name)
    if preset is None:
        raise ProviderConfigError(
            f"unknown provider {name!r}; known providers: {', '.join(sorted(PRESETS))}")
    chosen_model = model or (pack_model if _pack_model_applies(name, provider, pack_provider,
                                                               pack_model) else None)
    chosen_model = chosen_model or preset.default_model
    if not chosen_model:
        raise ProviderNotConfiguredError(
            f"provider {name!r} has no default model: pass model=... or set it in the pack's "
            "provider block")
    if preset.dialect == "mock":
        from promptkit.providers.mock import mock_binding

        script = mock_responses or env.get("PROMPTKIT_MOCK_RESPONSES") or None
        return mock_binding(chosen_model, script)
    # A key from the environment goes only to the provider's own endpoint or to a base URL set
    # in the environment too; an explicit base_url= gets a key only through api_key=.
    key = api_key or (_env(preset.key_env, env) if base_url is None else None)
    url = base_url or _env(preset.base_url_env, env)
    url_source = "base_url=" if base_url else " or ".join(preset.base_url_env)
    if key is None and preset.key_required and url is None:
        wanted = " or ".join(preset.key_env)
        raise ProviderNotConfiguredError(
            f"provider {name!r} needs an API key: set {wanted} or pass api_key=...")
    root = (url or preset.base_url).rstrip("/")
    if not root:
        wanted = " or ".join(preset.base_url_env)
        raise ProviderNotConfiguredError(
            f"provider {name!r} needs an endpoint: set {wanted} or pass base_url=...")
    if preset.base_url_suffix and not root.endswith(preset.base_url_suffix):
        root = _with_scheme(root) + preset.base_url_suffix
    if url is not None:
        if preset.dialect == "ollama":  # OLLAMA_HOST may be "host:port" without a scheme
            from promptkit.providers.ollama import ollama_base_url

            check_base_url(ollama_base_url(root), name, url_source)
        else:
            check_base_url(root, name, url_source)
    if preset.auth == "bearer" or key is None:
        endpoint = Endpoint(base_url=root, api_key=key)
    else:
        endpoint = Endpoint(base_url=root, headers={preset.auth: key})
    dialect = make_dialect(preset.dialect, endpoint, name, api)
    return Binding(provider=name, model=chosen_model, dialect=dialect,
                   sync_transport=shared_sync_transport, async_transport=shared_async_transport)


def make_dialect(kind: str, endpoint: Endpoint, name: str, api: str | None) -> Dialect:
    """The dialect object for a preset (its module is imported only now)."""
    if api not in (None, "chat", "responses"):
        raise ProviderConfigError(f"api must be 'chat' or 'responses', not {api!r}")
    if api == "responses":
        if kind != "openai_chat":
            raise ProviderConfigError(
                f"api='responses' is an OpenAI API; provider {name!r} does not offer it")
        from promptkit.providers.openai_responses import OpenAIResponsesDialect

        return OpenAIResponsesDialect(endpoint, name=name)
    if kind == "anthropic":
        from promptkit.providers.anthropic import AnthropicDialect

        return AnthropicDialect(endpoint, name=name)
    if kind == "gemini":
        from promptkit.providers.gemini import GeminiDialect

        return GeminiDialect(endpoint, name=name)
    if kind == "ollama":
        from promptkit.providers.ollama import OllamaDialect

        return OllamaDialect(endpoint, name=name)
    from promptkit.providers.openai_chat import OpenAIChatDialect

    return OpenAIChatDialect(endpoint, name=name)


def _pack_model_applies(name: str, provider: str | None, pack_provider: str | None,
                        pack_model: str | None) -> bool:
    """A pack's model applies unless the caller chose a different provider than it implies."""
    if not pack_model or not provider:
        return bool(pack_model)
    implied = (pack_provider or infer_provider(pack_model) or name).lower()
    return implied == name


def check_base_url(url: str, provider: str, source: str = "base_url=") -> None:
    """Raise :class:`ProviderConfigError` unless ``url`` is a usable ``http(s)://host`` URL.

    Found at ``open()``, not as a retried connection error at the first send.
    """
    problem = ""
    try:
        parts = urlsplit(url)
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            problem = "contains spaces or control characters"
        elif parts.scheme.lower() not in ("http", "https"):
            problem = "needs an http:// or https:// scheme"
        elif not parts.hostname:
            problem = "has no host name"
        else:
            parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        problem = f"cannot be parsed ({exc})"
    if problem:
        shown = url
        if "@" in url:  # never show user:password@
            userinfo, _, rest = url.rpartition("@")
            scheme = userinfo.partition("://")[0] + "://" if "://" in userinfo else ""
            shown = f"{scheme}***@{rest}"
        raise ProviderConfigError(
            f"the base URL {shown!r} (from {source}) for provider {provider!r} {problem}; "
            "expected e.g. 'http://localhost:8000/v1'")


def _with_scheme(url: str) -> str:
    return url if "://" in url else f"http://{url}"


_sync_transport: SyncTransport | None = None
_async_transport: AsyncTransport | None = None


def shared_sync_transport() -> SyncTransport:
    """The process-wide blocking HTTP transport (one connection pool for every conversation)."""
    global _sync_transport
    if _sync_transport is None:
        import atexit

        from promptkit.transport.sync_http import SyncHTTPTransport

        _sync_transport = SyncHTTPTransport()
        atexit.register(_sync_transport.close)  # close pooled keep-alive sockets at exit
    return _sync_transport


def shared_async_transport() -> AsyncTransport:
    """The process-wide asyncio HTTP transport (it keeps one session per event loop)."""
    global _async_transport
    if _async_transport is None:
        from promptkit.transport.async_http import AsyncHTTPTransport

        _async_transport = AsyncHTTPTransport()
    return _async_transport
