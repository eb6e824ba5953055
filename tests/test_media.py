"""Images and documents attached to a message reach every dialect in its own form."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from promptkit.engine.media import media_parts_for

from support import PACKS, Driver

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PDF = b"%PDF-1.7\n" + b"x" * 16


def test_parts_from_files_urls_bytes_and_dicts(tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    parts = media_parts_for(
        [image, "https://example.com/a.jpg?x=1", PNG,
         {"type": "image", "data": "AAAA", "mime_type": "image/webp"}],
        [PDF])
    assert parts[0] == {"type": "image", "mime_type": "image/png", "name": "cat.png",
                        "data": base64.b64encode(PNG).decode()}
    assert parts[1] == {"type": "image", "url": "https://example.com/a.jpg?x=1",
                        "mime_type": "image/jpeg"}
    assert parts[2]["mime_type"] == "image/png"
    assert parts[3]["mime_type"] == "image/webp"
    assert parts[4]["type"] == "document" and parts[4]["mime_type"] == "application/pdf"
    with pytest.raises(ValueError, match="cannot read image"):
        media_parts_for([tmp_path / "missing.png"], None)
    with pytest.raises(ValueError, match="cannot tell"):
        media_parts_for([b"not an image"], None)
    with pytest.raises(TypeError):
        media_parts_for("cat.png", None)  # type: ignore[arg-type]


def test_send_with_images_and_documents_over_openai_chat(driver: Driver, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(PNG)
    conv = driver.open(PACKS / "assistant.pack.json", "plain", provider="mock",
                       mock_responses={"defaultResponse": "a cat"})
    assert driver.send(conv, "what is this?", images=[image], documents=[PDF]).text == "a cat"
    body = json.loads(conv._binding.options["transport"].requests[0].body)
    content: list[dict[str, Any]] = body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[2]["file"]["file_data"].startswith("data:application/pdf;base64,")
    # the parts are part of the committed history (stores keep them)
    assert conv.messages[0].extra["parts"][0]["name"] == "cat.png"


def test_unreadable_media_fails_before_any_request(driver: Driver, tmp_path: Path) -> None:
    conv = driver.open(PACKS / "assistant.pack.json", "plain", provider="mock")
    with pytest.raises(ValueError, match="cannot read"):
        conv.stream("look", images=[tmp_path / "nope.png"])
    assert conv._binding.options["transport"].requests == []
    assert driver.send(conv, "still usable").text
