"""Registering tool handlers: what a function needs to be called as a tool, by name.

:func:`tool_entry` inspects a handler once (its signature decides how it is called and, for
functions with named parameters, gives its JSON Schema); :class:`ToolRegistry` maps tool names
to those entries for one conversation, safely between threads.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Mapping

from promptkit.engine.tool_round import (
    DEFAULT_TOOL_TIMEOUT,
    ApprovalCheck,
    RegisteredTool,
    ToolHandler,
)

__all__ = ["ToolRegistry", "tool_entry"]


def tool_entry(fn: ToolHandler, *, timeout: float | None = DEFAULT_TOOL_TIMEOUT,
               approval: ApprovalCheck | bool = False) -> RegisteredTool:
    """How to call ``fn`` as a tool, with its timeout (seconds or None) and approval rule."""
    if not callable(fn):
        raise TypeError(f"tool handler must be callable, not {type(fn).__name__}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"tool timeout must be positive or None, not {timeout!r}")
    try:
        template = _template_of(fn)  # registering one function per conversation is common
    except TypeError:  # an unhashable callable object
        template = _template_of.__wrapped__(fn)
    return RegisteredTool(template.fn, template.takes_context, template.is_async, timeout,
                          named_params=template.named_params,
                          context_param=template.context_param, schema=template.schema,
                          description=template.description, approval=approval)


@functools.lru_cache(maxsize=256)
def _template_of(fn: ToolHandler) -> RegisteredTool:
    """How to call ``fn`` (from its signature, which is costly to inspect), with default
    timeout and approval."""
    from promptkit.tools.signature import (
        is_context_annotation,
        schema_from_signature,
        takes_argument_dict,
    )

    target = fn if inspect.isroutine(fn) else type(fn).__call__  # callable objects
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(target)
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
    except (TypeError, ValueError):  # builtins without signatures
        return RegisteredTool(fn, False, is_async)
    if takes_argument_dict(fn):
        positional = [p for p in params if p.kind is not p.KEYWORD_ONLY]
        return RegisteredTool(fn, len(positional) >= 2, is_async)
    context = next((p.name for p in params if is_context_annotation(p.annotation)), None)
    schema, description = schema_from_signature(fn)
    return RegisteredTool(fn, False, is_async, named_params=True, context_param=context,
                          schema=schema, description=description)



# Registering is rare and quick: all registries take turns on one lock.
_WRITING = threading.Lock()
_NONE: dict[str, RegisteredTool] = {}  # never changed: registries without tools share it


class ToolRegistry:
    """Tool name → handler, shared safely between threads.

    Copy on write: a registration replaces the mapping (under one process-wide lock), so
    readers take the current one without locking, and a conversation without tools holds
    only this object.
    """

    __slots__ = ("_handlers",)

    def __init__(self, handlers: Mapping[str, RegisteredTool] | None = None) -> None:
        self._handlers: dict[str, RegisteredTool] = dict(handlers) if handlers else _NONE

    def register(self, name: str, fn: ToolHandler, *,
                 timeout: float | None = DEFAULT_TOOL_TIMEOUT,
                 approval: ApprovalCheck | bool = False) -> None:
        self.add(name, tool_entry(fn, timeout=timeout, approval=approval))

    def add(self, name: str, entry: RegisteredTool) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("tool name must be a non-empty string")
        with _WRITING:
            self._handlers = {**self._handlers, name: entry}

    def snapshot(self) -> dict[str, RegisteredTool]:
        return dict(self._handlers)  # published mappings are never changed

    def copy(self) -> ToolRegistry:
        return ToolRegistry(self.snapshot())
