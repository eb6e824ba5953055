"""The public surface: exported names, sync/async parity, and cheap imports."""

from __future__ import annotations

import inspect
import subprocess
import sys

import promptkit
from promptkit import AsyncConversation, AsyncStream, Conversation, Stream

from support import PACKS

PACK = PACKS / "hello.pack.json"


def test_all_is_sorted_and_complete() -> None:
    assert promptkit.__all__ == sorted(promptkit.__all__)
    for name in promptkit.__all__:
        assert hasattr(promptkit, name), name
    public = {n for n in vars(promptkit) if not n.startswith("_") and not inspect.ismodule(
        getattr(promptkit, n))}
    assert public <= set(promptkit.__all__) | {"annotations", "importlib", "TYPE_CHECKING"}


def test_design_contract_names_exist() -> None:
    for name in ("open", "open_async", "load_pack", "Timeouts", "ChunkType", "StreamChunk",
                 "Response", "Conversation", "AsyncConversation", "PromptKitError",
                 "PackError", "PackNotFoundError", "PackValidationError", "PromptNotFoundError",
                 "VariableError", "MissingVariableError", "InvalidVariableError",
                 "ProviderError", "ProviderNotConfiguredError", "APIStatusError",
                 "AuthenticationError", "PermissionDeniedError", "NotFoundError",
                 "RateLimitError", "ContextLengthError", "OverloadedError", "ServerError",
                 "BadRequestError", "APIConnectionError", "StreamInterruptedError",
                 "StreamProtocolError", "ConnectTimeout", "FirstTokenTimeout", "IdleTimeout",
                 "TurnTimeout", "ToolError", "ToolNotRegisteredError", "ToolArgumentsError",
                 "ToolLoopLimitError", "ConversationClosedError", "ConversationBusyError",
                 "StoreError", "ConversationNotFoundError"):
        assert hasattr(promptkit, name), name
    for timeout in (promptkit.ConnectTimeout, promptkit.FirstTokenTimeout,
                    promptkit.IdleTimeout, promptkit.TurnTimeout):
        assert issubclass(timeout, TimeoutError) and issubclass(timeout, promptkit.ProviderError)
    assert issubclass(promptkit.PackNotFoundError, FileNotFoundError)
    assert {m.name for m in promptkit.ChunkType} >= {"TEXT", "TOOL_CALL", "TOOL_RESULT", "DONE",
                                                       "ERROR"}


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls)
            if not name.startswith("_") and callable(member)}


def test_sync_and_async_conversations_expose_the_same_methods() -> None:
    sync = _public_methods(Conversation)
    asynchronous = _public_methods(AsyncConversation)
    assert set(asynchronous) - set(sync) == {"aclose"}
    assert set(sync) == set(asynchronous) - {"aclose"}
    for name, signature in sync.items():
        other = asynchronous[name]
        assert list(signature.parameters) == list(other.parameters), name
    awaited = {name for name, member in inspect.getmembers(AsyncConversation)
               if inspect.iscoroutinefunction(member)
               and (not name.startswith("_") or name.startswith("__"))}
    assert awaited == {"send", "clear", "fork", "aclose", "close", "__aenter__", "__aexit__",
                       "approve", "reject", "send_tool_result", "reject_client_tool", "resume",
                       "wait_evals"}
    props = {n for n, m in inspect.getmembers(Conversation) if isinstance(m, property)}
    async_props = {n for n, m in inspect.getmembers(AsyncConversation) if isinstance(m, property)}
    assert props == async_props


def test_sync_and_async_streams_expose_the_same_methods() -> None:
    sync = set(_public_methods(Stream))
    asynchronous = set(_public_methods(AsyncStream))
    assert asynchronous - sync == {"aclose"}
    assert sync - asynchronous == set()


def test_import_is_cheap_and_lazy() -> None:
    code = ("import sys, promptkit; "
            "loaded = sorted(m for m in sys.modules if m.startswith('promptkit.')); "
            "assert loaded == ['promptkit.pack'], loaded; "
            "promptkit.Conversation; "
            "heavy = [m for m in ('aiohttp', 'jsonschema', 'rich', 'yaml', 'http.client', "
            "'asyncio', 'promptkit.providers.openai_chat', 'promptkit.cli.chat') "
            "if m in sys.modules]; "
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_every_public_error_reports_module_promptkit_and_pickles() -> None:
    import pickle

    errors = [getattr(promptkit, n) for n in promptkit.__all__
              if isinstance(getattr(promptkit, n), type)
              and issubclass(getattr(promptkit, n), BaseException)]
    assert len(errors) > 40
    for cls in errors:
        assert cls.__module__ == "promptkit", cls
        assert pickle.loads(pickle.dumps(cls)) is cls
    # instances round-trip too, the subclasses with their own arguments included
    samples = [promptkit.RateLimitError("slow down", status_code=429, provider="openai"),
               promptkit.ConflictError("moved on"), promptkit.InvalidConversationIdError("bad"),
               promptkit.MissingVariableError(["user_name"], "chat"),
               promptkit.PackMismatchError("ada", "pack-a", "pack-b"),
               promptkit.ResponseParseError("no", raw_text="raw", output_type="T"),
               promptkit.InvalidParameterError("temperature")]
    for error in samples:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


def test_errors_a_user_can_meet_are_exported() -> None:
    from promptkit.stores import ConflictError, InvalidConversationIdError

    assert promptkit.ConflictError is ConflictError
    assert promptkit.InvalidConversationIdError is InvalidConversationIdError
    for name in ("ConversationExistsError", "InvalidParameterError", "ResponseParseError",
                 "PendingToolError", "PackMismatchError"):
        assert issubclass(getattr(promptkit, name), promptkit.PromptKitError), name
    try:
        promptkit.open(PACK, "chat", provider="mock", conversation_id="no spaces allowed")
    except promptkit.InvalidConversationIdError as exc:
        assert "promptkit.InvalidConversationIdError" in _traceback_text(exc)
    else:  # pragma: no cover
        raise AssertionError("expected InvalidConversationIdError")


def _traceback_text(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc))
