"""Structured output: the answer as JSON, optionally following a JSON Schema.

``response_format`` is a JSON Schema (an object schema; its ``title`` names it) or
``{"type": "json_object"}`` for any JSON object. Each dialect maps it to its native form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["json_schema_of", "schema_instruction", "schema_name"]


def json_schema_of(response_format: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema to enforce, or ``None`` for plain JSON mode."""
    if dict(response_format) == {"type": "json_object"}:
        return None
    return dict(response_format)


def schema_name(schema: Mapping[str, Any]) -> str:
    """A name for the schema (its title, made safe), as OpenAI requires one."""
    title = str(schema.get("title") or "response")
    return re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "response"


def schema_instruction(response_format: Mapping[str, Any]) -> str:
    """A system-prompt sentence for providers without a native schema mode."""
    schema = json_schema_of(response_format)
    if schema is None:
        return "Answer with a single JSON object and nothing else."
    return ("Answer with a single JSON object that follows this JSON Schema, and nothing "
            f"else: {json.dumps(schema, separators=(',', ':'))}")
