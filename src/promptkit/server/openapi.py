"""The OpenAPI 3.1 document served at ``/openapi.json``: every endpoint and its JSON shapes."""

from __future__ import annotations

from typing import Any

from promptkit import Pack

__all__ = ["openapi_document"]

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "properties": {"type": {"type": "string"},
                                     "message": {"type": "string"}}}}}
_MESSAGE = {"type": "object", "properties": {
    "role": {"enum": ["user", "assistant", "tool"]}, "text": {"type": "string"},
    "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}},
    "tool_result": {"$ref": "#/components/schemas/ToolResult"},
    "usage": {"$ref": "#/components/schemas/Usage"}}}
_SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "Usage": {"type": "object", "properties": {k: {"type": "integer"} for k in (
        "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")}},
    "ToolCall": {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "arguments": {"type": "object"},
        "raw_arguments": {"type": "string"}}},
    "ToolResult": {"type": "object", "properties": {
        "call_id": {"type": "string"}, "name": {"type": "string"},
        "content": {"type": "string"}, "is_error": {"type": "boolean"}}},
    "Message": _MESSAGE,
    "Response": {"type": "object", "properties": {
        "text": {"type": "string"}, "finish_reason": {"type": ["string", "null"]},
        "usage": {"$ref": "#/components/schemas/Usage"},
        "cost": {"type": ["number", "null"], "description": "USD; null when unknown"},
        "model": {"type": "string"}, "provider": {"type": "string"},
        "duration": {"type": "number"}, "time_to_first_token": {"type": ["number", "null"]},
        "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}},
        "validations": {"type": "array", "items": {"type": "object"}}}},
    "Chunk": {"type": "object", "required": ["type"], "description": (
        "One SSE event's data. type: text | thinking | tool_call | tool_result | validation "
        "| client_tool | approval_required | done | error; unknown types should be ignored"),
        "properties": {
            "type": {"type": "string"}, "text": {"type": "string"},
            "tool_call": {"$ref": "#/components/schemas/ToolCall"},
            "tool_result": {"$ref": "#/components/schemas/ToolResult"},
            "validation": {"type": "object", "properties": {
                "type": {"type": "string"}, "message": {"type": "string"},
                "blocked": {"type": "boolean"}}},
            "response": {"$ref": "#/components/schemas/Response"},
            "error": {"type": "object", "properties": {
                "type": {"type": "string"}, "message": {"type": "string"},
                "retryable": {"type": "boolean"}, "status_code": {"type": "integer"}}}}},
}


def _json(schema: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERRORS = {"400": _json(_ref("Error"), "malformed JSON or invalid request"),
           "401": _json(_ref("Error"), "missing or wrong bearer token"),
           "413": _json(_ref("Error"), "body over the limit (default 1 MiB)")}


def openapi_document(pack: Pack) -> dict[str, Any]:
    """The document for a server of ``pack`` (its prompts are the ``model`` values)."""
    conversation_id = [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "string"}}]
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "liveness", "responses": {"200": _json(
            {"type": "object", "properties": {"status": {"const": "ok"}}})}}},
        "/v1/prompts": {"get": {"summary": "the pack's prompts and their variables",
                                "responses": {"200": _json({"type": "object"}), **_ERRORS}}},
        "/v1/conversations": {"post": {
            "summary": "start a conversation",
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["prompt"], "properties": {
                    "prompt": {"enum": list(pack.prompts)},
                    "variables": {"type": "object", "additionalProperties": {}}}}}}},
            "responses": {"201": _json({"type": "object", "properties": {
                "id": {"type": "string"}, "prompt": {"type": "string"}}}), **_ERRORS}}},
        "/v1/conversations/{id}": {
            "parameters": conversation_id,
            "get": {"summary": "the committed history", "responses": {
                "200": _json({"type": "object", "properties": {
                    "id": {"type": "string"}, "prompt": {"type": "string"},
                    "variables": {"type": "object"},
                    "messages": {"type": "array", "items": _ref("Message")}}}),
                "404": _json(_ref("Error"), "unknown conversation"), **_ERRORS}},
            "delete": {"summary": "forget the conversation", "responses": {
                "204": {"description": "deleted"},
                "404": _json(_ref("Error"), "unknown conversation"), **_ERRORS}}},
        "/v1/conversations/{id}/messages": {"post": {
            "summary": "run one turn",
            "parameters": conversation_id,
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["content"], "properties": {
                    "content": {"type": "string"},
                    "stream": {"type": "boolean", "default": True}}}}}},
            "responses": {
                "200": {"description": (
                    "stream=true: text/event-stream of `event: chunk` (data: Chunk), ending "
                    "with `event: done` or `event: error`; stream=false: the Response"),
                        "content": {"text/event-stream": {"schema": _ref("Chunk")},
                                    "application/json": {"schema": _ref("Response")}}},
                "404": _json(_ref("Error"), "unknown conversation"),
                "409": _json(_ref("Error"), "the conversation is answering another message"),
                **_ERRORS}}},
        "/v1/chat/completions": {"post": {
            "summary": "OpenAI-compatible chat completions; model = a prompt name",
            "responses": {"200": {"description": "chat.completion or its SSE chunks"},
                          "404": _json(_ref("Error"), "unknown model (prompt)"), **_ERRORS}}},
        "/v1/models": {"get": {"summary": "the prompts, as OpenAI models",
                               "responses": {"200": _json({"type": "object"}), **_ERRORS}}},
        "/agui": {"post": {
            "summary": "AG-UI: a RunAgentInput in, AG-UI events (SSE) out",
            "parameters": [{"name": "prompt", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "text/event-stream of AG-UI events"},
                          **_ERRORS}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": f"promptkit serve: {pack.name or pack.id}",
                     "version": pack.version or "0"},
            "components": {"schemas": _SCHEMAS, "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
            "paths": paths}
