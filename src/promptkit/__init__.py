"""promptkit: run PromptPack conversations with typed streaming, tools and history.

    import promptkit

    with promptkit.open("hello.pack.json", "chat", variables={"user_name": "Ada"}) as conv:
        for chunk in conv.stream("Hello!"):
            print(chunk.text, end="")

Everything public is importable from this module; submodules starting with ``_`` are private.
Every name loads lazily, on first use, so ``import promptkit`` costs almost nothing; provider
dialects, the HTTP client library and the CLI load only when a conversation needs them.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would cost import time
if TYPE_CHECKING:
    from typing import Any

    from ._async_conversation import AsyncConversation, AsyncStream
    from ._chunks import ChunkType, Response, StreamChunk
    from ._conversation import Conversation, Stream
    from ._errors import (
        APIConnectionError,
        APIStatusError,
        AuthenticationError,
        BadRequestError,
        ConnectTimeout,
        ContextLengthError,
        ConversationBusyError,
        ConversationClosedError,
        ConversationNotFoundError,
        FirstTokenTimeout,
        IdleTimeout,
        InvalidVariableError,
        MissingVariableError,
        NotFoundError,
        OverloadedError,
        PackError,
        PackNotFoundError,
        PackValidationError,
        PermissionDeniedError,
        PromptKitError,
        PromptNotFoundError,
        ProviderError,
        ProviderNotConfiguredError,
        RateLimitError,
        ServerError,
        StoreError,
        StreamInterruptedError,
        StreamProtocolError,
        ToolArgumentsError,
        ToolError,
        ToolLoopLimitError,
        ToolNotRegisteredError,
        TurnTimeout,
        ValidationIssue,
        VariableError,
    )
    from ._http_tool import HTTPTool, HTTPToolError, HTTPToolRefusedError, HTTPToolTimeoutError
    from ._mcp import MCPError, MCPServer, MCPServerError, MCPTimeoutError, MCPToolError
    from ._messages import Message, ToolCall, ToolResult, Usage
    from ._open import open, open_async
    from ._pack import Pack, PromptSpec, ToolPolicy, ToolSpec, VariableSpec, load_pack
    from ._pending import PendingToolCall, PendingToolError
    from ._pricing import set_price
    from ._resume import PackMismatchError, PackVersionWarning, resume, resume_async
    from ._timeouts import Timeouts
    from ._tools import ToolContext

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "APIConnectionError": "._errors",
    "APIStatusError": "._errors",
    "AsyncConversation": "._async_conversation",
    "AsyncStream": "._async_conversation",
    "AuthenticationError": "._errors",
    "BadRequestError": "._errors",
    "ChunkType": "._chunks",
    "ConnectTimeout": "._errors",
    "ContextLengthError": "._errors",
    "Conversation": "._conversation",
    "ConversationBusyError": "._errors",
    "ConversationClosedError": "._errors",
    "ConversationNotFoundError": "._errors",
    "FirstTokenTimeout": "._errors",
    "HTTPTool": "._http_tool",
    "HTTPToolError": "._http_tool",
    "HTTPToolRefusedError": "._http_tool",
    "HTTPToolTimeoutError": "._http_tool",
    "IdleTimeout": "._errors",
    "InvalidVariableError": "._errors",
    "MCPError": "._mcp",
    "MCPServer": "._mcp",
    "MCPServerError": "._mcp",
    "MCPTimeoutError": "._mcp",
    "MCPToolError": "._mcp",
    "Message": "._messages",
    "MissingVariableError": "._errors",
    "NotFoundError": "._errors",
    "OverloadedError": "._errors",
    "Pack": "._pack",
    "PackMismatchError": "._resume",
    "PackVersionWarning": "._resume",
    "PendingToolCall": "._pending",
    "PendingToolError": "._pending",
    "PackError": "._errors",
    "PackNotFoundError": "._errors",
    "PackValidationError": "._errors",
    "PermissionDeniedError": "._errors",
    "PromptKitError": "._errors",
    "PromptNotFoundError": "._errors",
    "PromptSpec": "._pack",
    "ProviderError": "._errors",
    "ProviderNotConfiguredError": "._errors",
    "RateLimitError": "._errors",
    "Response": "._chunks",
    "ServerError": "._errors",
    "StoreError": "._errors",
    "Stream": "._conversation",
    "StreamChunk": "._chunks",
    "StreamInterruptedError": "._errors",
    "StreamProtocolError": "._errors",
    "Timeouts": "._timeouts",
    "ToolArgumentsError": "._errors",
    "ToolCall": "._messages",
    "ToolContext": "._tools",
    "ToolError": "._errors",
    "ToolLoopLimitError": "._errors",
    "ToolNotRegisteredError": "._errors",
    "ToolPolicy": "._pack",
    "ToolResult": "._messages",
    "ToolSpec": "._pack",
    "TurnTimeout": "._errors",
    "Usage": "._messages",
    "ValidationIssue": "._errors",
    "VariableError": "._errors",
    "VariableSpec": "._pack",
    "load_pack": "._pack",
    "resume": "._resume",
    "resume_async": "._resume",
    "open": "._open",
    "open_async": "._open",
    "set_price": "._pricing",
}

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AsyncConversation",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ChunkType",
    "ConnectTimeout",
    "ContextLengthError",
    "Conversation",
    "ConversationBusyError",
    "ConversationClosedError",
    "ConversationNotFoundError",
    "FirstTokenTimeout",
    "HTTPTool",
    "HTTPToolError",
    "HTTPToolRefusedError",
    "HTTPToolTimeoutError",
    "IdleTimeout",
    "InvalidVariableError",
    "MCPError",
    "MCPServer",
    "MCPServerError",
    "MCPTimeoutError",
    "MCPToolError",
    "Message",
    "MissingVariableError",
    "NotFoundError",
    "OverloadedError",
    "Pack",
    "PackError",
    "PackMismatchError",
    "PackNotFoundError",
    "PackValidationError",
    "PackVersionWarning",
    "PendingToolCall",
    "PendingToolError",
    "PermissionDeniedError",
    "PromptKitError",
    "PromptNotFoundError",
    "PromptSpec",
    "ProviderError",
    "ProviderNotConfiguredError",
    "RateLimitError",
    "Response",
    "ServerError",
    "StoreError",
    "Stream",
    "StreamChunk",
    "StreamInterruptedError",
    "StreamProtocolError",
    "Timeouts",
    "ToolArgumentsError",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolLoopLimitError",
    "ToolNotRegisteredError",
    "ToolPolicy",
    "ToolResult",
    "ToolSpec",
    "TurnTimeout",
    "Usage",
    "ValidationIssue",
    "VariableError",
    "VariableSpec",
    "__version__",
    "load_pack",
    "open",
    "open_async",
    "resume",
    "resume_async",
    "set_price",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
