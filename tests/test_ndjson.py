"""The incremental NDJSON decoder: line endings, EOF, errors, re-split invariance."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptkit._errors import StreamProtocolError
from promptkit.transport.ndjson import NDJSONDecoder

FIXTURES = sorted((Path(__file__).parent / "data" / "wire" / "ollama").glob("*.ndjson"))


def decode_all(chunks: Iterable[bytes]) -> list[Any]:
    decoder = NDJSONDecoder()
    out: list[Any] = []
    for chunk in chunks:
        out += decoder.decode(chunk)
    return out + decoder.flush()


def test_fixtures_present() -> None:
    assert {p.name for p in FIXTURES} >= {"chat-text.CONSTRUCTED.ndjson",
                                          "generate-midstream-error.ndjson"}


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_matches_line_by_line_parse(path: Path) -> None:
    body = path.read_bytes()
    expected = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert decode_all([body]) == expected
    assert decode_all(body[i:i + 1] for i in range(len(body))) == expected


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fixture_random_splits(path: Path, data: st.DataObject) -> None:
    body = path.read_bytes()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=40))))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert decode_all(pieces) == decode_all([body])


def test_chat_text_fixture_values() -> None:
    values = decode_all([(FIXTURES[0].parent / "chat-text.CONSTRUCTED.ndjson").read_bytes()])
    assert "".join(v["message"]["content"] for v in values) == (
        "The sky appears blue because of Rayleigh scattering. 🌈")
    assert values[-1]["done"] is True
    assert values[-1]["eval_count"] == 282


def test_crlf_blank_lines_and_missing_final_newline() -> None:
    body = b'{"a":1}\r\n\r\n  \n{"b":[2]}\n"s"\n3'
    assert decode_all([body]) == [{"a": 1}, {"b": [2]}, "s", 3]
    decoder = NDJSONDecoder()
    assert decoder.decode(b'{"x":') == []
    assert decoder.decode(b"1}") == []
    assert decoder.flush() == [{"x": 1}]
    assert decoder.flush() == []


def test_utf8_split_across_reads() -> None:
    body = '{"t":"世界 🌈"}\n'.encode()
    for cut in range(len(body) + 1):
        assert decode_all([body[:cut], body[cut:]]) == [{"t": "世界 🌈"}]


def test_non_json_line_raises_with_snippet() -> None:
    decoder = NDJSONDecoder()
    with pytest.raises(StreamProtocolError, match="not json"):
        decoder.decode(b'{"ok":1}\nnot json\n')
    long_line = b"<html>" + b"x" * 5000
    with pytest.raises(StreamProtocolError) as info:
        NDJSONDecoder().decode(long_line + b"\n")
    assert "<html>" in str(info.value)
    assert len(str(info.value)) < 300


def test_non_json_last_line_raises_at_flush() -> None:
    decoder = NDJSONDecoder()
    assert decoder.decode(b'{"ok":1}\ntrunc') == [{"ok": 1}]
    with pytest.raises(StreamProtocolError, match="trunc"):
        decoder.flush()


def test_invalid_utf8_is_a_protocol_error() -> None:
    with pytest.raises(StreamProtocolError):
        NDJSONDecoder().decode(b'{"a":"\xff"}\n')


def test_large_line_in_small_reads() -> None:
    body = json.dumps({"content": "y" * 300_000}).encode() + b"\n"
    assert decode_all(body[i:i + 7] for i in range(0, len(body), 7)) == [
        {"content": "y" * 300_000}]
