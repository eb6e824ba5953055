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



class ToolRegistry:
    """Tool name → handler, shared safely between threads."""

    def __init__(self, handlers: Mapping[str, RegisteredTool] | None = None) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, RegisteredTool] = dict(handlers or {})

    def register(self, name: str, fn: ToolHandler, *,
                 timeout: float | None = DEFAULT_TOOL_TIMEOUT,
                 approval: ApprovalCheck | bool = False) -> None:
        self.add(name, tool_entry(fn, timeout=timeout, approval=approval))

    def add(self, name: str, entry: RegisteredTool) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("tool name must be a non-empty string")
        with self._lock:
            self._handlers[name] = entry

    def snapshot(self) -> dict[str, RegisteredTool]:
        with self._lock:
            return dict(self._handlers)

    def copy(self) -> ToolRegistry:
        return ToolRegistry(self.snapshot())
