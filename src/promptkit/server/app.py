"""The ASGI app: :func:`create_app` puts a pack behind HTTP (Starlette).

Routes: the chat page (``/``, ``/static/...``), the native API (``native``), the
OpenAI-compatible endpoints (``openai_compat``), AG-UI (``agui``) and ``/openapi.json``.
Guards, outermost first: security headers (a Content-Security-Policy allowing only the
package's own scripts and styles), CORS only for the origins given, bearer-token auth on
every ``/v1`` and ``/agui`` route when a token is set (constant-time compare, 401 without
detail), JSON errors for every refusal (400, 401, 404, 405, 409, 413).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from promptkit.server._extra import require

require("starlette")

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import FileResponse, JSONResponse, Response  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402
from starlette.staticfiles import StaticFiles  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

import promptkit  # noqa: E402
from promptkit import Pack  # noqa: E402
from promptkit._redact import redact, register_secret  # noqa: E402
from promptkit.server.http import ApiError, json_error  # noqa: E402
from promptkit.server.hub import (  # noqa: E402
    ConversationHub,
    ProviderOptions,
    ServerState,
    Setup,
    maybe_await,
)
from promptkit.stores import MemoryStore  # noqa: E402

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

logger = logging.getLogger("promptkit.server")

DEFAULT_MAX_BODY = 1024 * 1024
STATIC = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_PROTECTED = ("/v1/", "/agui")


def create_app(
    pack: str | os.PathLike[str] | Pack,
    *,
    store: Any = None,
    token: str | None = None,
    setup: Setup | None = None,
    provider: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    mock_responses: Any = None,
    cors_origins: Sequence[str] = (),
    max_body: int = DEFAULT_MAX_BODY,
    open_options: Mapping[str, Any] | None = None,
) -> Starlette:
    """An ASGI app serving ``pack``: the chat page, the native API, OpenAI-compatible and
    AG-UI endpoints.

    ``store`` keeps the conversations (default: a MemoryStore, this process only; share a
    SQLite file or Redis between workers). ``token``: required as ``Authorization: Bearer``
    on ``/v1`` and ``/agui`` (``None``: no auth, for loopback or behind your own auth).
    ``setup(conv)`` (sync or async) is called with each conversation the server opens, to
    register tool handlers. The provider options are ``promptkit.open()``'s; the provider is
    resolved now, so a server with none configured fails here (ProviderNotConfiguredError).
    ``cors_origins``: origins allowed to call the API from a browser (none by default).

        app = create_app("support.pack.json", store=AsyncSQLiteStore("chats.db"),
                         token=os.environ["PROMPTKIT_SERVE_TOKEN"], setup=register_tools)
    """
    register_secret(api_key)  # redacted from every error message and log line
    register_secret(token)
    loaded = pack if isinstance(pack, Pack) else promptkit.load_pack(pack)
    options = ProviderOptions(provider=provider, model=model, base_url=base_url,
                              api_key=api_key, mock_responses=mock_responses,
                              extra=dict(open_options or {}))
    hub = ConversationHub(loaded, store if store is not None else MemoryStore(), options, setup)
    hub.check_provider()
    state = ServerState(hub=hub, max_body=max_body)

    from promptkit.server import agui, native, openai_compat
    from promptkit.server.openapi import openapi_document

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(loaded))

    routes: list[Any] = [
        Route("/", page, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        *native.routes(), *openai_compat.routes(), *agui.routes(),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cors_origins),
                                     allow_methods=["GET", "POST", "DELETE"],
                                     allow_headers=["authorization", "content-type"]))
    if token:
        middleware.append(Middleware(BearerAuth, token=token))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await hub.aclose()
        close = getattr(hub.store, "aclose", None)
        if close is not None:
            await maybe_await(close())

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                        promptkit.PromptKitError: _promptkit_error})
    app.state.promptkit = state
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_error(exc.status, exc.code, redact(exc.message))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return json_error(exc.status_code, codes.get(exc.status_code, "http_error"),
                      str(exc.detail), headers=dict(exc.headers or {}))


async def _promptkit_error(request: Request, exc: Exception) -> Response:
    message = redact(str(exc))
    logger.warning("request failed: %s: %s", type(exc).__name__, message)
    return json_error(400, type(exc).__name__, message)


class SecurityHeaders:
    """Adds the CSP and hardening headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-frame-options", b"DENY")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class BearerAuth:
    """``Authorization: Bearer <token>`` on the API routes; 401 with no detail otherwise."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_PROTECTED) \
                and scope.get("method") != "OPTIONS":
            given = b""
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    given = value
                    break
            if not hmac.compare_digest(given, self._expected):
                response = json_error(401, "unauthorized", "unauthorized",
                                      headers={"www-authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
