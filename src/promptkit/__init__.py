"""promptkit: run PromptPack conversations with typed streaming, tools and history.

    import promptkit

    with promptkit.open("hello.pack.json", "chat", variables={"user_name": "Ada"}) as conv:
        for chunk in conv.stream("Hello!"):
            print(chunk.text, end="")

Everything public is importable from this module; submodules starting with ``_`` are private.
Provider dialects, the HTTP client library and the CLI load lazily, on first use.
"""

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
from ._messages import Message, ToolCall, ToolResult, Usage
from ._open import open, open_async
from ._pack import Pack, PromptSpec, ToolPolicy, ToolSpec, VariableSpec, load_pack
from ._pricing import set_price
from ._timeouts import Timeouts
from ._tools import ToolContext

__version__ = "0.1.0"

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
    "IdleTimeout",
    "InvalidVariableError",
    "Message",
    "MissingVariableError",
    "NotFoundError",
    "OverloadedError",
    "Pack",
    "PackError",
    "PackNotFoundError",
    "PackValidationError",
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
    "set_price",
]
