"""``promptkit serve``: check the configuration, print the banner, run uvicorn.

The configuration travels as JSON in ``PROMPTKIT_SERVE_CONFIG`` so that ``--workers N``
processes (uvicorn spawns them and imports :func:`worker_app`) build the same app; secrets do
not travel in it: the token stays in ``PROMPTKIT_SERVE_TOKEN`` and the provider key in the
environment variable ``--api-key-env`` names.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from promptkit.server._extra import SERVE_EXTRA_HINT

__all__ = ["ServeConfig", "add_parser", "build_app", "run_serve", "worker_app"]

CONFIG_ENV = "PROMPTKIT_SERVE_CONFIG"
TOKEN_ENV = "PROMPTKIT_SERVE_TOKEN"


class ServeError(Exception):
    """A configuration the server refuses to start with (the message says what to do)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    """Everything ``promptkit serve`` was asked for, minus the secrets."""

    pack: str
    host: str = "127.0.0.1"
    port: int = 8000
    store: str | None = None
    no_auth: bool = False
    setup: str | None = None
    workers: int = 1
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    mock_responses: str | None = None
    cors: list[str] = field(default_factory=list)
    max_body: int = 1024 * 1024
    grace: float = 10.0
    log_level: str = "info"
    access_log: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


def add_parser(commands: Any) -> None:
    """The ``serve`` sub-command's options (DESIGN §14)."""
    serve = commands.add_parser("serve", help="run a pack as a web service (chat page, API)")
    serve.add_argument("pack", help="path to a *.pack.json file")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to listen on (default 127.0.0.1; any other needs a token)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--store", metavar="URL",
                       help="sqlite:PATH or redis://HOST:PORT/DB (default: memory, one process)")
    serve.add_argument("--token", help=f"bearer token for /v1 and /agui (better: set {TOKEN_ENV})")
    serve.add_argument("--no-auth", action="store_true",
                       help="serve a non-loopback --host without a token (behind your own auth)")
    serve.add_argument("--setup", metavar="MODULE:FUNCTION",
                       help="called with each new conversation, to register tool handlers")
    serve.add_argument("--workers", type=int, default=1,
                       help="processes (needs a shared --store)")
    serve.add_argument("--provider", help="openai, anthropic, gemini, ollama, mock, ...")
    serve.add_argument("--model", help="model name (default: the pack's or the provider's)")
    serve.add_argument("--base-url", help="endpoint of an OpenAI-compatible server")
    serve.add_argument("--api-key-env", metavar="NAME",
                       help="environment variable holding the provider's API key")
    serve.add_argument("--mock-responses", metavar="FILE",
                       help="PromptKit mock-responses YAML/JSON for --provider mock")
    serve.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                       help="allow browser calls from ORIGIN (repeatable; default: none)")
    serve.add_argument("--max-body", type=int, default=1024 * 1024, metavar="BYTES",
                       help="request body limit (default 1 MiB; larger bodies get 413)")
    serve.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                       help="on SIGTERM, how long in-flight replies may finish (default 10)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--no-access-log", action="store_true", help="no line per request")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(spec: str | None) -> Any:
    """The store a ``--store`` value names (asyncio flavours: the server is async)."""
    from promptkit import stores

    if spec is None or spec == "memory":
        return stores.MemoryStore()
    if spec.startswith("sqlite:"):
        path = spec.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise ServeError("--store sqlite:PATH needs a file path")
        return stores.AsyncSQLiteStore(path)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return stores.AsyncRedisStore(spec)
    raise ServeError(f"unknown --store {spec!r}: use sqlite:PATH or redis://HOST:PORT/DB")


def _describe_store(spec: str | None) -> str:
    if spec is None or spec == "memory":
        return "memory (this process only; gone on restart)"
    return _hide_password(spec)


def load_setup(spec: str | None) -> Any:
    """The ``module:function`` that ``--setup`` names."""
    if not spec:
        return None
    module_name, sep, function = spec.partition(":")
    if not sep or not module_name or not function:
        raise ServeError(f"--setup expects MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ServeError(f"--setup: cannot import {module_name!r}: {exc}") from exc
    found = getattr(module, function, None)
    if not callable(found):
        raise ServeError(f"--setup: {module_name!r} has no function {function!r}")
    return found


def check(config: ServeConfig, token: str | None) -> None:
    """Refuse what would be unsafe or cannot work, with the fix in the message."""
    if not _is_loopback(config.host) and not token and not config.no_auth:
        raise ServeError(
            f"--host {config.host} is reachable from other machines: set a token "
            f"({TOKEN_ENV}=... or --token) or pass --no-auth if something else "
            "authenticates the requests")
    if config.workers < 1:
        raise ServeError("--workers must be 1 or more")
    if config.workers > 1 and (config.store is None or config.store == "memory"):
        raise ServeError(
            f"--workers {config.workers} needs a shared store: the memory store lives in one "
            "process, so each worker would see different conversations. Use --store "
            "sqlite:PATH (one machine) or --store redis://HOST:PORT/DB")


def build_app(config: ServeConfig) -> Any:
    """The app ``config`` describes (the token and API key read from the environment)."""
    from promptkit.server.app import create_app

    api_key = None
    if config.api_key_env:
        api_key = os.environ.get(config.api_key_env, "").strip() or None
        if api_key is None:
            raise ServeError(f"--api-key-env names {config.api_key_env}, which is not set")
    provider = config.provider
    if config.mock_responses and provider is None:
        provider = "mock"
    return create_app(
        config.pack, store=open_store(config.store),
        token=os.environ.get(TOKEN_ENV) or None, setup=load_setup(config.setup),
        provider=provider, model=config.model, base_url=config.base_url, api_key=api_key,
        mock_responses=config.mock_responses, cors_origins=config.cors,
        max_body=config.max_body)


def worker_app() -> Any:
    """uvicorn's factory in each ``--workers`` process."""
    return build_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def banner(config: ServeConfig, app: Any, token: str | None) -> str:
    state = app.state.promptkit
    pack = state.hub.pack
    host = f"[{config.host}]" if ":" in config.host else config.host
    if token:
        auth = "on (Authorization: Bearer <token> on /v1 and /agui)"
    elif config.no_auth:
        auth = "off (--no-auth)"
    else:
        auth = "off (loopback only)"
    lines = [
        f"promptkit serve: pack {pack.id} {pack.version}".rstrip(),
        f"  URL       http://{host}:{config.port}/",
        f"  prompts   {', '.join(pack.prompts)}",
        f"  provider  {state.hub.check_provider()}",
        f"  store     {_describe_store(config.store)}",
        f"  auth      {auth}",
        f"  workers   {config.workers}",
    ]
    if config.cors:
        lines.append(f"  CORS      {', '.join(config.cors)}")
    return "\n".join(lines)


def run_serve(args: argparse.Namespace) -> int:
    """Entry point of ``promptkit serve``; returns the exit status."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        print(f"promptkit serve: {SERVE_EXTRA_HINT}", file=sys.stderr)
        return 1
    from promptkit import PromptKitError

    config = ServeConfig(
        pack=os.path.abspath(args.pack), host=args.host, port=args.port, store=args.store,
        no_auth=args.no_auth, setup=args.setup, workers=args.workers, provider=args.provider,
        model=args.model, base_url=args.base_url, api_key_env=args.api_key_env,
        mock_responses=args.mock_responses, cors=list(args.cors), max_body=args.max_body,
        grace=args.grace, log_level=args.log_level, access_log=not args.no_access_log)
    if args.token:
        os.environ[TOKEN_ENV] = args.token
    token = os.environ.get(TOKEN_ENV) or None
    try:
        check(config, token)
        app = build_app(config)
    except ServeError as exc:
        print(f"promptkit serve: {exc}", file=sys.stderr)
        return 2
    except PromptKitError as exc:
        kind = type(exc).__name__
        hint = ""
        if kind == "ProviderNotConfiguredError":
            hint = " (pass --provider mock to serve the offline mock provider)"
        print(f"promptkit serve: {kind}: {exc}{hint}", file=sys.stderr)
        return 1
    print(banner(config, app, token), file=sys.stderr, flush=True)
    common: dict[str, Any] = {
        "host": config.host, "port": config.port, "log_level": config.log_level,
        "access_log": config.access_log, "timeout_graceful_shutdown": config.grace,
        "server_header": False}
    if config.workers == 1:
        uvicorn.run(app, **common)
    else:
        os.environ[CONFIG_ENV] = config.to_json()
        uvicorn.run("promptkit.server.serve:worker_app", factory=True,
                    workers=config.workers, **common)
    return 0
