"""The native API: prompts, conversations and their turns (SSE or one JSON Response).

    GET    /healthz                         {"status": "ok"}
    GET    /v1/prompts                      {"prompts": [{name, description, variables: [...],
                                             tools: [...]}]}
    POST   /v1/conversations                {prompt, variables?} -> 201 {id, prompt}
    GET    /v1/conversations/{id}           {id, prompt, variables, messages: [...]}
    DELETE /v1/conversations/{id}           204
    POST   /v1/conversations/{id}/messages  {content, stream?: true} -> SSE or Response JSON

A streamed turn is ``event: chunk`` events whose data is the chunk JSON (``encoding``), then
one ``event: done`` (data: the DONE chunk, with the Response) or ``event: error`` (data: the
ERROR chunk). A turn that fails or is cancelled commits nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from promptkit import (
    AsyncConversation,
    ChunkType,
    ConversationBusyError,
    PromptKitError,
    PromptNotFoundError,
    VariableError,
)
from promptkit.observe.otel import continue_trace
from promptkit.server.encoding import chunk_json, error_json, message_json, response_json
from promptkit.server.http import ApiError, EventStream, read_json, sse_event
from promptkit.server.hub import ServerState

__all__ = ["prompt_catalogue", "routes"]


def prompt_catalogue(state: ServerState) -> list[dict[str, Any]]:
    """The pack's prompts with their variables (what the page's form is built from)."""
    prompts = []
    for name, spec in state.hub.pack.prompts.items():
        variables = [{"name": v.name, "type": v.type, "required": v.required,
                      "default": v.default, "description": v.description}
                     for v in spec.variables]
        prompts.append({"name": name, "description": getattr(spec, "description", ""),
                        "variables": variables, "tools": list(spec.tools)})
    return prompts


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_prompts(request: Request) -> Response:
    state: ServerState = request.app.state.promptkit
    return JSONResponse({"pack": {"id": state.hub.pack.id, "version": state.hub.pack.version},
                         "prompts": prompt_catalogue(state)})


async def create_conversation(request: Request) -> Response:
    state: ServerState = request.app.state.promptkit
    body = await read_json(request, state.max_body)
    prompt = body.get("prompt")
    variables = body.get("variables") or {}
    if not isinstance(prompt, str) or not isinstance(variables, dict):
        raise ApiError(400, "invalid_request",
                       "expected {\"prompt\": string, \"variables\": object}")
    try:
        conversation_id = await state.hub.create(prompt, variables)
    except PromptNotFoundError as exc:
        raise ApiError(400, "unknown_prompt", str(exc)) from None
    except VariableError as exc:
        raise ApiError(400, "invalid_variables", str(exc)) from None
    return JSONResponse({"id": conversation_id, "prompt": prompt}, status_code=201)


async def get_conversation(request: Request) -> Response:
    state: ServerState = request.app.state.promptkit
    stored = await state.hub.load(request.path_params["id"])
    if stored is None:
        raise ApiError(404, "not_found", "no such conversation")
    meta = stored.metadata
    return JSONResponse({"id": stored.id, "prompt": meta.prompt,
                         "variables": dict(meta.variables),
                         "messages": [message_json(m) for m in stored.messages]})


async def delete_conversation(request: Request) -> Response:
    state: ServerState = request.app.state.promptkit
    if not await state.hub.delete(request.path_params["id"]):
        raise ApiError(404, "not_found", "no such conversation")
    return Response(status_code=204)


async def post_message(request: Request) -> Response | EventStream:
    state: ServerState = request.app.state.promptkit
    body = await read_json(request, state.max_body)
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise ApiError(400, "invalid_request", "expected {\"content\": non-empty string}")
    conversation = await state.hub.open(request.path_params["id"])
    if conversation is None:
        raise ApiError(404, "not_found", "no such conversation")
    try:
        with continue_trace(request.headers):  # the caller's trace parents the turn's span
            stream = conversation.stream(content)
    except ConversationBusyError:
        raise ApiError(409, "conversation_busy",
                       "this conversation is already answering a message") from None
    except VariableError as exc:
        raise ApiError(400, "invalid_variables", str(exc)) from None
    if body.get("stream", True):
        return EventStream(_turn_events(conversation, stream))
    try:
        response = await stream.until_done()
    except PromptKitError as exc:
        return JSONResponse({"error": error_json(exc)}, status_code=_status_of(exc))
    finally:
        await stream.aclose()
    return JSONResponse(response_json(response))


def _status_of(error: PromptKitError) -> int:
    return 409 if type(error).__name__ == "ConflictError" else 502


async def _turn_events(conversation: AsyncConversation, stream: Any) -> AsyncIterator[bytes]:
    async with stream:
        async for chunk in stream:
            kind = chunk.type
            name = "done" if kind is ChunkType.DONE else (
                "error" if kind is ChunkType.ERROR else "chunk")
            yield sse_event(chunk_json(chunk), name)


def routes() -> list[Any]:
    from starlette.routing import Route

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/prompts", list_prompts, methods=["GET"]),
        Route("/v1/conversations", create_conversation, methods=["POST"]),
        Route("/v1/conversations/{id}", get_conversation, methods=["GET"]),
        Route("/v1/conversations/{id}", delete_conversation, methods=["DELETE"]),
        Route("/v1/conversations/{id}/messages", post_message, methods=["POST"]),
    ]
