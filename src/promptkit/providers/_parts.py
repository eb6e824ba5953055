"""Images and documents attached to a user message, encoded for each native dialect.

A part is a plain JSON-serialisable dict, so stores keep it, carried in the user message's
``extra["parts"]`` (a list), beside the message text::

    {"type": "image", "mime_type": "image/png", "data": "<base64>"}
    {"type": "image", "url": "https://example.com/cat.jpg"}            # mime_type optional
    {"type": "document", "mime_type": "application/pdf", "data": "<base64>", "name": "a.pdf"}
    {"type": "document", "url": "https://example.com/a.pdf", "mime_type": "application/pdf"}

``data`` is standard base64 without a ``data:`` prefix. A provider that cannot take a part
(Ollama: URLs and documents) raises :class:`~promptkit.BadRequestError` before any I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptkit._errors import BadRequestError
from promptkit.engine.messages import Message

__all__ = ["anthropic_block", "gemini_part", "media_parts", "ollama_image", "responses_part"]

_KINDS = frozenset(("image", "document"))


def media_parts(message: Message) -> list[Mapping[str, Any]]:
    """The message's image and document parts (``extra["parts"]``), checked."""
    parts = message.extra.get("parts") if message.extra else None
    if not parts:
        return []
    if not isinstance(parts, list):
        raise ValueError('extra["parts"] must be a list of part dicts')
    for part in parts:
        if not isinstance(part, Mapping) or part.get("type") not in _KINDS:
            raise ValueError(f"a message part must be an image or document dict, got {part!r}")
        if not (isinstance(part.get("data"), str) or isinstance(part.get("url"), str)):
            raise ValueError("a message part needs base64 'data' or a 'url'")
        if "data" in part and not isinstance(part.get("mime_type"), str):
            raise ValueError("a message part with 'data' needs its 'mime_type'")
    return parts


def _mime(part: Mapping[str, Any]) -> str:
    default = "application/pdf" if part["type"] == "document" else "image/jpeg"
    return str(part.get("mime_type") or default)


def anthropic_block(part: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic ``image`` or ``document`` content block."""
    if "data" in part:
        source = {"type": "base64", "media_type": _mime(part), "data": part["data"]}
    else:
        source = {"type": "url", "url": part["url"]}
    block: dict[str, Any] = {"type": part["type"], "source": source}
    if part["type"] == "document" and part.get("name"):
        block["title"] = str(part["name"])
    return block


def gemini_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """A Gemini ``inlineData`` part, or ``fileData`` for a URL (Files API or web URI)."""
    if "data" in part:
        return {"inlineData": {"mimeType": _mime(part), "data": part["data"]}}
    return {"fileData": {"mimeType": _mime(part), "fileUri": part["url"]}}


def responses_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI Responses ``input_image`` or ``input_file`` content item."""
    if part["type"] == "image":
        url = part.get("url") or f"data:{_mime(part)};base64,{part['data']}"
        return {"type": "input_image", "image_url": url}
    if "data" not in part:
        return {"type": "input_file", "file_url": part["url"]}
    return {"type": "input_file", "filename": str(part.get("name") or "document.pdf"),
            "file_data": f"data:{_mime(part)};base64,{part['data']}"}


def ollama_image(part: Mapping[str, Any], provider: str) -> str:
    """The base64 string Ollama takes in ``images``; URLs and documents are refused."""
    if part["type"] != "image" or "data" not in part:
        what = "documents" if part["type"] == "document" else "image URLs (send the bytes)"
        raise BadRequestError(f"{provider} does not accept {what}", status_code=None,
                              provider=provider)
    return str(part["data"])
