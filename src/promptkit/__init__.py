"""promptkit: run PromptPack conversations with typed streaming, tools and history.

    import promptkit

    with promptkit.open("hello.pack.json", "chat", variables={"user_name": "Ada"}) as conv:
        for chunk in conv.stream("Hello!"):
            print(chunk.text, end="")

Everything public is importable from this module (plus ``promptkit.stores`` and
``promptkit.testing``); the subpackages are the implementation, laid out as the data flow
(``docs/design.md``). Every name loads lazily, on first use, so ``import promptkit`` costs
almost nothing; provider dialects, the HTTP client library and the CLI load only when a
conversation needs them.
"""

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would cost import time
if TYPE_CHECKING:
    from typing import Any

    from promptkit._errors import (
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
        GuardrailError,
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
        ProviderConfigError,
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
    from promptkit.checks.evals import EvalResult
    from promptkit.checks.problems import EvalConfigWarning, GuardrailConfigWarning
    from promptkit.conversation.async_driver import AsyncConversation, AsyncStream
    from promptkit.conversation.offline import evaluate
    from promptkit.conversation.opening import open, open_async
    from promptkit.conversation.resuming import (
        PackMismatchError,
        PackVersionWarning,
        resume,
        resume_async,
    )
    from promptkit.conversation.sync_driver import Conversation, Stream
    from promptkit.engine.chunks import ChunkType, Response, StreamChunk
    from promptkit.engine.context import ContextPolicy
    from promptkit.engine.held import PendingToolCall, PendingToolError
    from promptkit.engine.messages import Message, ToolCall, ToolResult, Usage
    from promptkit.engine.output import ResponseParseError
    from promptkit.engine.pricing import set_price
    from promptkit.engine.sampling import InvalidParameterError
    from promptkit.engine.timeouts import Timeouts
    from promptkit.engine.tool_round import ToolContext
    from promptkit.engine.validation import ValidationResult
    from promptkit.observe.events import Event
    from promptkit.observe.setup import instrument
    from promptkit.pack.loading import load_pack
    from promptkit.pack.model import Pack, PromptSpec, ToolPolicy, ToolSpec, VariableSpec
    from promptkit.stores._protocol import (
        ConflictError,
        ConversationExistsError,
        InvalidConversationIdError,
    )
    from promptkit.tools.http import (
        HTTPTool,
        HTTPToolError,
        HTTPToolRefusedError,
        HTTPToolTimeoutError,
    )
    from promptkit.tools.mcp import (
        MCPError,
        MCPServer,
        MCPServerError,
        MCPTimeoutError,
        MCPToolError,
    )

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "_pack_from_json": ".pack.loading",  # not public: how Pack.from_json reaches the loader
    "APIConnectionError": "._errors",
    "APIStatusError": "._errors",
    "AsyncConversation": ".conversation.async_driver",
    "AsyncStream": ".conversation.async_driver",
    "AuthenticationError": "._errors",
    "BadRequestError": "._errors",
    "ChunkType": ".engine.chunks",
    "ConflictError": ".stores._protocol",
    "ConnectTimeout": "._errors",
    "ContextLengthError": "._errors",
    "ContextPolicy": ".engine.context",
    "EvalConfigWarning": ".checks.problems",
    "EvalResult": ".checks.evals",
    "Conversation": ".conversation.sync_driver",
    "ConversationBusyError": "._errors",
    "ConversationClosedError": "._errors",
    "ConversationExistsError": ".stores._protocol",
    "ConversationNotFoundError": "._errors",
    "Event": ".observe.events",
    "FirstTokenTimeout": "._errors",
    "GuardrailConfigWarning": ".checks.problems",
    "GuardrailError": "._errors",
    "HTTPTool": ".tools.http",
    "HTTPToolError": ".tools.http",
    "HTTPToolRefusedError": ".tools.http",
    "HTTPToolTimeoutError": ".tools.http",
    "IdleTimeout": "._errors",
    "InvalidConversationIdError": ".stores._protocol",
    "InvalidParameterError": ".engine.sampling",
    "InvalidVariableError": "._errors",
    "MCPError": ".tools.mcp",
    "MCPServer": ".tools.mcp",
    "MCPServerError": ".tools.mcp",
    "MCPTimeoutError": ".tools.mcp",
    "MCPToolError": ".tools.mcp",
    "Message": ".engine.messages",
    "MissingVariableError": "._errors",
    "NotFoundError": "._errors",
    "OverloadedError": "._errors",
    "Pack": ".pack.model",
    "PackError": "._errors",
    "PackMismatchError": ".conversation.resuming",
    "PackNotFoundError": "._errors",
    "PackValidationError": "._errors",
    "PackVersionWarning": ".conversation.resuming",
    "PendingToolCall": ".engine.held",
    "PendingToolError": ".engine.held",
    "PermissionDeniedError": "._errors",
    "PromptKitError": "._errors",
    "PromptNotFoundError": "._errors",
    "PromptSpec": ".pack.model",
    "ProviderConfigError": "._errors",
    "ProviderError": "._errors",
    "ProviderNotConfiguredError": "._errors",
    "RateLimitError": "._errors",
    "Response": ".engine.chunks",
    "ResponseParseError": ".engine.output",
    "ServerError": "._errors",
    "StoreError": "._errors",
    "Stream": ".conversation.sync_driver",
    "StreamChunk": ".engine.chunks",
    "StreamInterruptedError": "._errors",
    "StreamProtocolError": "._errors",
    "Timeouts": ".engine.timeouts",
    "ToolArgumentsError": "._errors",
    "ToolCall": ".engine.messages",
    "ToolContext": ".engine.tool_round",
    "ToolError": "._errors",
    "ToolLoopLimitError": "._errors",
    "ToolNotRegisteredError": "._errors",
    "ToolPolicy": ".pack.model",
    "ToolResult": ".engine.messages",
    "ToolSpec": ".pack.model",
    "TurnTimeout": "._errors",
    "Usage": ".engine.messages",
    "ValidationIssue": "._errors",
    "ValidationResult": ".engine.validation",
    "VariableError": "._errors",
    "VariableSpec": ".pack.model",
    "instrument": ".observe.setup",
    "evaluate": ".conversation.offline",
    "load_pack": ".pack.loading",
    "open": ".conversation.opening",
    "open_async": ".conversation.opening",
    "resume": ".conversation.resuming",
    "resume_async": ".conversation.resuming",
    "set_price": ".engine.pricing",
}

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AsyncConversation",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ChunkType",
    "ConflictError",
    "ConnectTimeout",
    "ContextLengthError",
    "ContextPolicy",
    "Conversation",
    "ConversationBusyError",
    "ConversationClosedError",
    "ConversationExistsError",
    "ConversationNotFoundError",
    "EvalConfigWarning",
    "EvalResult",
    "Event",
    "FirstTokenTimeout",
    "GuardrailConfigWarning",
    "GuardrailError",
    "HTTPTool",
    "HTTPToolError",
    "HTTPToolRefusedError",
    "HTTPToolTimeoutError",
    "IdleTimeout",
    "InvalidConversationIdError",
    "InvalidParameterError",
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
    "ProviderConfigError",
    "ProviderError",
    "ProviderNotConfiguredError",
    "RateLimitError",
    "Response",
    "ResponseParseError",
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
    "ValidationResult",
    "VariableError",
    "VariableSpec",
    "__version__",
    "evaluate",
    "instrument",
    "load_pack",
    "open",
    "open_async",
    "resume",
    "resume_async",
    "set_price",
]


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promptkit' has no attribute {name!r}")
    from importlib import import_module  # here, not at the top: `import promptkit` stays lean

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# Pack.open / open_async / resume / resume_async call the public functions through this lookup,
# so promptkit.pack never imports the conversation drivers built on top of it.
from . import pack as _pack  # noqa: E402  (no imports of its own: costs ~0.1 ms)

_pack.register(__getattr__)
