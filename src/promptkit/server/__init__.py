"""``promptkit serve``: a pack as a web service.

What lives here: the ASGI app (:func:`create_app`, Starlette), its native conversation API
(``/v1/prompts``, ``/v1/conversations``), the OpenAI-compatible ``/v1/chat/completions`` and
``/v1/models``, the AG-UI ``/agui`` endpoint, the browser chat page (``static/``), and the
runner behind ``promptkit serve`` (uvicorn, workers, the startup banner).

It may import the public ``promptkit`` API (the root package), ``conversation``, ``stores``,
``observe`` and ``checks``; it drives conversations only through the public async API
(``open_async``, ``resume_async``, ``AsyncConversation``, the stores). Starlette, uvicorn and
``ag-ui-protocol`` belong to the ``serve`` extra and are imported only when this room is used;
without them :func:`create_app` raises an ImportError naming the extra.

    from promptkit.server import create_app
    app = create_app("support.pack.json", token=os.environ["PROMPTKIT_SERVE_TOKEN"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptkit.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from promptkit.server._extra import require

        require("starlette")
        from promptkit.server.app import create_app

        return create_app
    raise AttributeError(f"module 'promptkit.server' has no attribute {name!r}")
