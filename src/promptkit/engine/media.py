"""Images and documents for a user message: files, URLs or bytes → message parts.

Parts are plain dicts kept in the user message's ``extra["parts"]`` (so stores keep them) and
encoded by each dialect (``providers/_parts.py``)::

    conv.send("What is in this picture?", images=["cat.png"])
    conv.send("Summarise this", documents=[Path("report.pdf")])
    conv.send("Compare", images=["https://example.com/a.jpg", png_bytes])
"""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

__all__ = ["MediaSource", "media_parts_for"]

MediaSource = str | os.PathLike[str] | bytes | Mapping[str, Any]
"""A file path, an http(s) URL, raw bytes, or a ready part dict."""

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def _sniff(data: bytes, kind: Literal["image", "document"]) -> str:
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if kind == "document":
        return "application/pdf" if data.startswith(b"%PDF") else "text/plain"
    raise ValueError("cannot tell the image type of these bytes; pass a part dict with "
                     "'mime_type', e.g. {'type': 'image', 'data': <base64>, 'mime_type': ...}")


def _part(source: MediaSource, kind: Literal["image", "document"]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        part = dict(source)
        part.setdefault("type", kind)
        return part
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        return {"type": kind, "mime_type": _sniff(data, kind),
                "data": base64.b64encode(data).decode("ascii")}
    text = os.fspath(source)
    if isinstance(source, str) and text.startswith(("http://", "https://")):
        mime, _ = mimetypes.guess_type(text.split("?", 1)[0])
        return {"type": kind, "url": text, **({"mime_type": mime} if mime else {})}
    path = Path(text)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {kind} {path}: {exc.strerror or exc}") from exc
    mime, _ = mimetypes.guess_type(path.name)
    return {"type": kind, "mime_type": mime or _sniff(data, kind), "name": path.name,
            "data": base64.b64encode(data).decode("ascii")}


def media_parts_for(images: Iterable[MediaSource] | None,
                    documents: Iterable[MediaSource] | None) -> list[dict[str, Any]]:
    """The parts for ``send(..., images=..., documents=...)``, in that order."""
    if isinstance(images, str | bytes | os.PathLike) or isinstance(documents, str | bytes |
                                                                    os.PathLike):
        raise TypeError("images= and documents= take a list, e.g. images=['cat.png']")
    return [_part(s, "image") for s in images or ()] + \
        [_part(s, "document") for s in documents or ()]
