"""Conversation stores: where committed history lives."""

from ._protocol import AsyncConversationStore, ConflictError, ConversationStore, StoredConversation
from .memory import MemoryStore

__all__ = [
    "AsyncConversationStore",
    "ConflictError",
    "ConversationStore",
    "MemoryStore",
    "StoredConversation",
]
