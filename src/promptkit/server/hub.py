"""The server's conversations: created in the store, opened through the public async API.

A conversation created by ``POST /v1/conversations`` is written to the store at once (an
empty first append carrying its metadata: pack, prompt, variables), so any worker sharing the
store can find it, resume it (``promptkit.resume_async``) and continue it. Each process keeps
the conversations it opened in a bounded LRU (their tools registered by the ``setup``
function once); the history itself is always read from the store at the start of a turn, so
a conversation moves freely between workers.
"""

from __future__ import annotations

import inspect
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import promptkit
from promptkit import AsyncConversation, Pack
from promptkit.stores import ConversationMetadata, StoredConversation, check_conversation_id

__all__ = ["ConversationHub", "ProviderOptions", "ServerState", "Setup", "maybe_await", "new_id"]

Setup = Callable[[AsyncConversation], "Awaitable[None] | None"]


def new_id() -> str:
    """A conversation id: 128 random bits as 32 hex digits."""
    return os.urandom(16).hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderOptions:
    """How conversations reach the model: the ``open()`` provider options."""

    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    mock_responses: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "base_url": self.base_url,
                "api_key": self.api_key, "mock_responses": self.mock_responses, **self.extra}


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class ConversationHub:
    """Creates, finds, opens and deletes the server's conversations in one store."""

    def __init__(self, pack: Pack, store: Any, options: ProviderOptions,
                 setup: Setup | None = None, *, cache_size: int = 1024) -> None:
        self.pack = pack
        self.store = store
        self.options = options
        self.setup = setup
        self._open: OrderedDict[str, AsyncConversation] = OrderedDict()
        self._cache_size = cache_size

    def check_provider(self) -> str:
        """Resolve the provider once, raising ProviderNotConfiguredError; its name."""
        first = next(iter(self.pack.prompts))
        conversation = promptkit.open_async(self.pack, first, **self.options.kwargs())
        if not conversation.provider:  # open() defers "nothing configured" to the first turn
            raise promptkit.ProviderNotConfiguredError(
                "no LLM provider is configured: set OPENAI_API_KEY (or ANTHROPIC_API_KEY, "
                "GEMINI_API_KEY, OLLAMA_HOST), or pass --provider / --base-url")
        return f"{conversation.provider}:{conversation.model}"

    async def create(self, prompt: str, variables: Mapping[str, Any]) -> str:
        """A new conversation with ``prompt``; its variables are checked now, so a bad value
        fails the creation (400) and not the first turn."""
        spec = self.pack.prompt(prompt)  # PromptNotFoundError for an unknown prompt
        conversation_id = new_id()
        probe = promptkit.open_async(self.pack, spec.name, variables=dict(variables),
                                     **self.options.kwargs())
        probe.render_system_prompt()  # MissingVariableError / InvalidVariableError
        values = {str(k): str(v) for k, v in variables.items()}
        meta = ConversationMetadata(pack_id=self.pack.id, prompt=spec.name,
                                    pack_version=self.pack.version, variables=values)
        await maybe_await(self.store.append(conversation_id, [], 0, metadata=meta))
        return conversation_id

    async def load(self, conversation_id: str) -> StoredConversation | None:
        """The stored conversation, or ``None`` for an unknown or malformed id."""
        try:
            check_conversation_id(conversation_id)
        except ValueError:
            return None
        stored: StoredConversation | None = await maybe_await(self.store.load(conversation_id))
        if stored is not None and stored.metadata.pack_id not in ("", self.pack.id):
            return None  # another pack's conversation in a shared store: not ours to show
        return stored

    async def open(self, conversation_id: str) -> AsyncConversation | None:
        """The conversation, ready for a turn (``None`` if it does not exist)."""
        stored = await self.load(conversation_id)  # another worker may have deleted it
        if stored is None:
            self._open.pop(conversation_id, None)
            return None
        conversation = self._open.get(conversation_id)
        if conversation is not None:
            self._open.move_to_end(conversation_id)
            return conversation
        conversation = await promptkit.resume_async(
            conversation_id, self.pack, stored.metadata.prompt or next(iter(self.pack.prompts)),
            store=self.store, **self.options.kwargs())
        await self.prepare(conversation)
        raced = self._open.get(conversation_id)
        if raced is not None:  # another request opened it meanwhile: one object, so 409 works
            await conversation.aclose()
            return raced
        self._open[conversation_id] = conversation
        while len(self._open) > self._cache_size:
            _, old = self._open.popitem(last=False)
            await old.aclose()
        return conversation

    async def prepare(self, conversation: AsyncConversation) -> None:
        """Run the ``setup`` function on a newly opened conversation (registers its tools)."""
        if self.setup is not None:
            await maybe_await(self.setup(conversation))

    async def delete(self, conversation_id: str) -> bool:
        """Forget a conversation; whether it existed."""
        if await self.load(conversation_id) is None:
            return False
        old = self._open.pop(conversation_id, None)
        if old is not None:
            await old.aclose()
        await maybe_await(self.store.delete(conversation_id))
        return True

    async def aclose(self) -> None:
        while self._open:
            _, conversation = self._open.popitem()
            await conversation.aclose()


@dataclass(slots=True)
class ServerState:
    """What the endpoints share (``app.state.promptkit``): the conversations and the limits."""

    hub: ConversationHub
    max_body: int
