"""Every error promptkit raises or delivers in an ERROR chunk.

The tree (all under ``PromptKitError``)::

    PromptKitError
    ├── PackError
    │   ├── PackNotFoundError            (also FileNotFoundError)
    │   ├── PackValidationError          .issues: path, message, line, column
    │   └── PromptNotFoundError          .available
    ├── VariableError
    │   ├── MissingVariableError         .names
    │   └── InvalidVariableError         .name, .reason
    ├── ProviderError                    (text, body and repr never show an API key)
    │   ├── ProviderNotConfiguredError   says which environment variables to set
    │   │   └── ProviderConfigError      malformed base_url, unknown api=: raised at open()
    │   ├── APIStatusError               .status_code, .body, .request_id, .provider, .retryable
    │   │   ├── AuthenticationError      401 (and invalid-key 400s)
    │   │   ├── PermissionDeniedError    403
    │   │   ├── NotFoundError            404
    │   │   ├── RateLimitError           429
    │   │   ├── ContextLengthError       the prompt does not fit the model's context
    │   │   ├── OverloadedError          529, 503 "overloaded", in-band overloaded events
    │   │   ├── ServerError              5xx
    │   │   └── BadRequestError          other 4xx
    │   ├── APIConnectionError           could not connect / connection reset before a reply
    │   ├── StreamInterruptedError       .partial_text: the stream ended before its terminator
    │   ├── StreamProtocolError          the bytes are not the dialect (e.g. non-JSON data line)
    │   ├── ConnectTimeout               (also TimeoutError)
    │   ├── FirstTokenTimeout            (also TimeoutError)
    │   ├── IdleTimeout                  (also TimeoutError)
    │   └── TurnTimeout                  (also TimeoutError)
    ├── ToolError
    │   ├── ToolNotRegisteredError
    │   ├── ToolArgumentsError
    │   └── ToolLoopLimitError
    ├── GuardrailError               .validator: a custom validator raised (the turn fails)
    ├── ConversationClosedError
    ├── ConversationBusyError
    └── StoreError
        └── ConversationNotFoundError

Mid-stream provider errors (an error event after HTTP 200) map to the same classes as
status-code errors, so ``except promptkit.OverloadedError`` catches both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptkit._redact import redact, redact_value

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "ConnectTimeout",
    "ContextLengthError",
    "ConversationBusyError",
    "ConversationClosedError",
    "ConversationNotFoundError",
    "FirstTokenTimeout",
    "GuardrailError",
    "IdleTimeout",
    "InvalidVariableError",
    "MissingVariableError",
    "NotFoundError",
    "OverloadedError",
    "PackError",
    "PackNotFoundError",
    "PackValidationError",
    "PermissionDeniedError",
    "PromptKitError",
    "PromptNotFoundError",
    "ProviderConfigError",
    "ProviderError",
    "ProviderNotConfiguredError",
    "RateLimitError",
    "ServerError",
    "StoreError",
    "StreamInterruptedError",
    "StreamProtocolError",
    "ToolArgumentsError",
    "ToolError",
    "ToolLoopLimitError",
    "ToolNotRegisteredError",
    "TurnTimeout",
    "ValidationIssue",
    "VariableError",
]


class PromptKitError(Exception):
    """Base class of every promptkit error."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as class, message arguments and attributes, rebuilt without calling the
        # subclass's __init__ (whose keyword arguments the default protocol would lose).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[PromptKitError], args: tuple[Any, ...],
             state: dict[str, Any]) -> PromptKitError:
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


# --- packs -----------------------------------------------------------------------------------


class PackError(PromptKitError):
    """A pack file could not be used."""


class PackNotFoundError(PackError, FileNotFoundError):
    """The pack file does not exist or cannot be read."""

    def __init__(self, path: str, reason: str = "no such file") -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"pack file {path!r}: {reason}")

    def __str__(self) -> str:
        return f"pack file {self.path!r}: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationIssue:
    """One problem found in a pack: where it is (JSON path, line, column) and what is wrong."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}: " if self.line is not None else ""
        return f"{where}{self.path}: {self.message}"


class PackValidationError(PackError):
    """The pack is not valid JSON or violates the PromptPack schema; ``issues`` lists them all."""

    def __init__(self, source: str, issues: Sequence[ValidationIssue]) -> None:
        self.source = source
        self.issues: tuple[ValidationIssue, ...] = tuple(issues)
        lines = [f"{source}: {len(self.issues)} problem(s)"]
        lines += [f"  {source}:{issue}" if issue.line is not None else f"  {source}: {issue}"
                  for issue in self.issues]
        super().__init__("\n".join(lines))


class PromptNotFoundError(PackError, KeyError):
    """The pack has no prompt of that name; ``available`` lists the ones it has."""

    def __init__(self, name: str, available: Sequence[str], pack_id: str = "") -> None:
        self.name = name
        self.available = tuple(available)
        self.pack_id = pack_id
        super().__init__(name)

    def __str__(self) -> str:
        where = f" in pack {self.pack_id!r}" if self.pack_id else ""
        return f"prompt {self.name!r} not found{where}; available: {', '.join(self.available)}"


# --- variables -------------------------------------------------------------------------------


class VariableError(PromptKitError):
    """A template variable is missing or has a value the pack does not allow."""


class MissingVariableError(VariableError):
    """Required variables (or placeholders in the template) have no value."""

    def __init__(self, names: Sequence[str], prompt: str = "") -> None:
        self.names = tuple(names)
        self.prompt = prompt
        where = f" for prompt {prompt!r}" if prompt else ""
        hint = "; set them with variables={...} or conv.set_var()"
        super().__init__(f"missing variable(s){where}: {', '.join(self.names)}{hint}")


class InvalidVariableError(VariableError, ValueError):
    """A variable's value fails the pack's type or ``validation`` rules."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"variable {name!r}: {reason}")


# --- providers -------------------------------------------------------------------------------


class ProviderError(PromptKitError):
    """Talking to the model provider failed.

    Its text never shows a key: every string argument is passed through
    :func:`promptkit._redact.redact` (registered keys and credential-looking values), and so
    are ``str()`` and ``repr()``, for keys registered after the error was made.
    """

    #: whether trying the same request again may succeed
    retryable: bool = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))

    def __str__(self) -> str:
        return redact(super().__str__())

    def __repr__(self) -> str:
        return redact(super().__repr__())


class ProviderNotConfiguredError(ProviderError):
    """No provider could be selected or it lacks credentials; the message says what to set."""


class ProviderConfigError(ProviderNotConfiguredError, ValueError):
    """The provider settings given are unusable (a malformed ``base_url``, an unknown ``api``).

    Raised by ``open()``, before any network call; a subclass of
    :class:`ProviderNotConfiguredError`, so one ``except`` catches every configuration problem.
    """


class APIStatusError(ProviderError):
    """The provider answered with an error, by HTTP status or by an error event in the stream."""

    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        body: Any = None,
        request_id: str | None = None,
        provider: str = "",
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        # A server may echo the key it was sent: keep it out of every field shown to anyone.
        message = redact(message)
        self.message = message
        self.status_code = status_code
        self.body = redact_value(body)
        self.request_id = request_id
        self.provider = provider
        self.code = code
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.provider or "provider"]
        if self.status_code is not None:
            parts.append(str(self.status_code))
        text = f"{' '.join(parts)}: {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return redact(text)


class AuthenticationError(APIStatusError):
    """The API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """The key is valid but may not use this resource."""


class NotFoundError(APIStatusError):
    """The model or endpoint does not exist."""


class RateLimitError(APIStatusError):
    """Too many requests or tokens; retryable unless the quota or spend limit is exhausted."""

    retryable = True


class ContextLengthError(APIStatusError):
    """The conversation does not fit in the model's context window."""


class OverloadedError(APIStatusError):
    """The provider is temporarily overloaded."""

    retryable = True


class ServerError(APIStatusError):
    """The provider failed (5xx)."""

    retryable = True


class BadRequestError(APIStatusError):
    """The provider rejected the request (4xx not covered by a more specific class)."""


class APIConnectionError(ProviderError):
    """The connection failed or was reset before the provider replied."""

    retryable = True


class StreamInterruptedError(ProviderError):
    """The stream ended before its terminator; ``partial_text`` holds what had arrived."""

    def __init__(self, message: str, *, partial_text: str = "") -> None:
        self.partial_text = partial_text
        super().__init__(message)


class StreamProtocolError(ProviderError):
    """The response bytes do not follow the provider's wire format."""


class ConnectTimeout(ProviderError, TimeoutError):
    """Connecting to the provider took longer than ``Timeouts.connect``."""

    retryable = True


class FirstTokenTimeout(ProviderError, TimeoutError):
    """No content arrived within ``Timeouts.first_token`` of sending the request."""

    retryable = True


class IdleTimeout(ProviderError, TimeoutError):
    """No content arrived for ``Timeouts.idle`` seconds (keep-alives do not count)."""


class TurnTimeout(ProviderError, TimeoutError):
    """The whole turn (all rounds and tools) passed its deadline."""


# --- tools -----------------------------------------------------------------------------------


class ToolError(PromptKitError):
    """A tool could not be used as asked."""


class ToolNotRegisteredError(ToolError):
    """No handler is registered for a tool the model called, or a tool is not in the pack."""


class ToolArgumentsError(ToolError):
    """The model's tool arguments are not valid for the tool."""


class ToolLoopLimitError(ToolError):
    """The tool loop exceeded the prompt's ``tool_policy`` limits."""


# --- guardrails ------------------------------------------------------------------------------


class GuardrailError(PromptKitError):
    """A validator could not decide (a custom one raised); ``validator`` names it. The turn
    fails and commits nothing: an undecided guardrail never passes silently."""

    def __init__(self, validator: str, message: str) -> None:
        self.validator = validator
        super().__init__(f"validator {validator!r} failed: {message}")


# --- conversations and stores ----------------------------------------------------------------


class ConversationClosedError(PromptKitError):
    """The conversation was closed."""


class ConversationBusyError(PromptKitError):
    """A turn is already running on this conversation; one turn at a time."""


class StoreError(PromptKitError):
    """The conversation store failed."""


class ConversationNotFoundError(StoreError, KeyError):
    """No conversation with that id exists in the store."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(conversation_id)

    def __str__(self) -> str:
        return f"conversation {self.conversation_id!r} not found"


def present_as_promptkit(*classes: type) -> None:
    """Report public classes as ``promptkit.X`` (tracebacks show ``promptkit.RateLimitError``).

    Pickle finds a class by ``__module__`` and name, so each must be exported from
    ``promptkit`` (tests/test_api.py checks both)."""
    for cls in classes:
        cls.__module__ = "promptkit"


present_as_promptkit(*(value for value in map(globals().get, __all__)
                       if isinstance(value, type) and issubclass(value, BaseException)))

