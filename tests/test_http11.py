"""The sans-I/O HTTP/1.1 framing (promptkit.transport.http11): body decoding under any split of
the wire bytes, content codings, malformed framing, response heads and request encoding."""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptkit.transport.http11 import (
    MAX_HEAD,
    BodyDecoder,
    FramingError,
    ResponseHead,
    UnsendableRequest,
    encode_request,
    parse_head,
)

SECRET = "sk-test-SECRET-0123456789"

pieces_st = st.lists(st.binary(min_size=1, max_size=40), max_size=8)
token_st = st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=8)
extension_st = st.one_of(st.just(""), st.builds(lambda n, v: f";{n}={v}", token_st, token_st),
                         st.builds(lambda n: f" ; {n}", token_st))
trailers_st = st.lists(st.builds(lambda n, v: f"X-{n}: {v}\r\n", token_st, token_st),
                       max_size=3)
cuts_st = st.lists(st.integers(min_value=0, max_value=4096), max_size=12)


def chunked(pieces: Iterable[bytes], extension: str = "", trailers: Iterable[str] = (),
            upper: bool = False) -> bytes:
    """``pieces`` as a chunked body, one chunk each, then the last chunk and the trailers."""
    out = b""
    for piece in pieces:
        size = f"{len(piece):X}" if upper else f"{len(piece):x}"
        out += f"{size}{extension}\r\n".encode() + piece + b"\r\n"
    return out + f"0{extension}\r\n{''.join(trailers)}\r\n".encode()


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length); never an empty part."""
    points = sorted({cut % len(data) for cut in cuts if len(data)} - {0})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def feed_all(decoder: BodyDecoder, parts: list[bytes]) -> bytes:
    """Feed ``parts`` one by one: ``done`` must stay false until the last one is in."""
    out = b""
    for i, part in enumerate(parts):
        assert not decoder.done, f"done before part {i} of {len(parts)}"
        out += decoder.feed(part)
    assert decoder.done
    return out


def decoder_for(headers: str, method: str = "GET") -> BodyDecoder:
    return parse_head(f"HTTP/1.1 200 OK\r\n{headers}".encode("latin-1").rstrip()).body_decoder(
        method)


# --- bodies under any split -------------------------------------------------------------------


@given(pieces_st, extension_st, trailers_st, st.booleans(), cuts_st)
def test_chunked_any_split(pieces: list[bytes], extension: str, trailers: list[str],
                           upper: bool, cuts: list[int]) -> None:
    wire = chunked(pieces, extension, trailers, upper)
    decoder = BodyDecoder(None)
    assert feed_all(decoder, split(wire, cuts)) == b"".join(pieces)
    assert not decoder.surplus
    assert decoder.finish() == b""


@given(pieces_st, st.binary(min_size=1, max_size=30), cuts_st)
def test_chunked_surplus(pieces: list[bytes], extra: bytes, cuts: list[int]) -> None:
    wire = chunked(pieces) + extra
    decoder = BodyDecoder(None)
    payload = b"".join(decoder.feed(part) for part in split(wire, cuts))
    assert payload == b"".join(pieces)
    assert decoder.done and decoder.surplus


@given(st.binary(min_size=1, max_size=300), cuts_st)
def test_content_length_any_split(payload: bytes, cuts: list[int]) -> None:
    decoder = BodyDecoder(len(payload))
    assert feed_all(decoder, split(payload, cuts)) == payload
    assert not decoder.surplus
    assert decoder.finish() == b""


@given(st.binary(max_size=100), st.binary(min_size=1, max_size=30), cuts_st)
def test_content_length_surplus(payload: bytes, extra: bytes, cuts: list[int]) -> None:
    decoder = BodyDecoder(len(payload))
    assert decoder.done == (not payload)
    out = b"".join(decoder.feed(part) for part in split(payload + extra, cuts))
    assert out == payload
    assert decoder.done and decoder.surplus


@given(st.binary(max_size=300), cuts_st)
def test_until_close_any_split(payload: bytes, cuts: list[int]) -> None:
    decoder = decoder_for("X-No-Length: 1")
    assert decoder.until_close and not decoder.done
    out = b"".join(decoder.feed(part) for part in split(payload, cuts))
    assert not decoder.done
    assert out + decoder.finish() == payload
    assert decoder.done


compress: dict[str, Any] = {"gzip": gzip.compress, "x-gzip": gzip.compress,
                            "deflate": zlib.compress}


@pytest.mark.parametrize("coding", sorted(compress))
@given(payload=st.binary(max_size=2000), cuts=cuts_st, framing=st.sampled_from(
    ["length", "chunked", "close"]))
def test_content_codings_any_split(coding: str, payload: bytes, cuts: list[int],
                                   framing: str) -> None:
    body = compress[coding](payload)
    if framing == "length":
        headers, wire = f"Content-Length: {len(body)}", body
    elif framing == "chunked":
        headers, wire = "Transfer-Encoding: chunked", chunked(split(body, [c * 7 for c in cuts]))
    else:
        headers, wire = "X-Framing: none", body
    decoder = decoder_for(f"Content-Encoding: {coding.upper()}\r\n{headers}")
    out = b"".join(decoder.feed(part) for part in split(wire, cuts))
    assert out + decoder.finish() == payload
    assert decoder.done and not decoder.surplus


def test_corrupt_compressed_body_and_unknown_coding() -> None:
    decoder = decoder_for("Content-Encoding: gzip\r\nContent-Length: 10")
    with pytest.raises(FramingError, match="corrupt compressed body"):
        decoder.feed(b"not gzip!!")
    with pytest.raises(FramingError, match="unsupported content coding"):
        decoder_for("Content-Encoding: br\r\nContent-Length: 10")
    assert decoder_for("Content-Encoding: identity\r\nContent-Length: 2").feed(b"ok") == b"ok"


# --- malformed framing ------------------------------------------------------------------------


def feed_and_finish(wire: bytes, cuts: list[int], length: int | None = None) -> None:
    decoder = BodyDecoder(length)
    for part in split(wire, cuts):
        decoder.feed(part)
    decoder.finish()


@pytest.mark.parametrize("size", [b"zz", b"-1", b"", b"0x5", b"1_0", b"+5", b" 5", b"5 5",
                                  b"\xff"])
@given(cuts=cuts_st)
def test_bad_chunk_size(size: bytes, cuts: list[int]) -> None:
    """Only hex digits (then optional whitespace and extensions): what Python's int() also
    accepts (0x, _, +, spaces) is not a chunk size."""
    with pytest.raises(FramingError, match="invalid chunk size"):
        feed_and_finish(size + b"\r\nhello\r\n0\r\n\r\n", cuts)


@pytest.mark.parametrize("wire", [b"5\r\nhelloX\r\n0\r\n\r\n", b"5\r\nhello0\r\n\r\n",
                                  b"2\r\nhello\r\n0\r\n\r\n"])
@given(cuts=cuts_st)
def test_missing_crlf_after_a_chunk(wire: bytes, cuts: list[int]) -> None:
    with pytest.raises(FramingError, match="no CRLF after a chunk"):
        feed_and_finish(wire, cuts)


@pytest.mark.parametrize("wire", [
    b"1" * 9000,  # a size line that never ends
    b"0" * 9000 + b"5\r\nhello\r\n0\r\n\r\n",  # ends, but far too long
    b"5;" + b"e" * 9000 + b"\r\nhello\r\n0\r\n\r\n",  # an endless chunk extension
    b"0\r\nX-Long: " + b"v" * 9000 + b"\r\n\r\n",  # a trailer line
])
@given(cuts=cuts_st)
def test_overlong_line(wire: bytes, cuts: list[int]) -> None:
    """Refused however the bytes arrive (not only when the long line comes in pieces)."""
    with pytest.raises(FramingError, match="too long"):
        feed_and_finish(wire, cuts)


@given(pieces=pieces_st.filter(bool), cut=st.integers(min_value=1), cuts=cuts_st)
def test_truncated_chunked_body_then_finish(pieces: list[bytes], cut: int,
                                            cuts: list[int]) -> None:
    wire = chunked(pieces)
    with pytest.raises(FramingError, match="connection closed before the body ended"):
        feed_and_finish(wire[:cut % len(wire)], cuts)


@given(payload=st.binary(min_size=1, max_size=200), cut=st.integers(min_value=0),
       cuts=cuts_st)
def test_truncated_content_length_body_then_finish(payload: bytes, cut: int,
                                                   cuts: list[int]) -> None:
    with pytest.raises(FramingError, match="connection closed before the body ended"):
        feed_and_finish(payload[:cut % len(payload)], cuts, len(payload))


# --- parse_head -------------------------------------------------------------------------------


def test_parse_head_status_reason_and_headers() -> None:
    head = parse_head(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nX-ID:  r1 \t\r\n"
                      b"Set-Cookie: a=1\r\nSET-COOKIE: b=2\r\nx-empty:")
    assert (head.status, head.reason) == (429, "Too Many Requests")
    assert head.headers == {"retry-after": "2", "x-id": "r1", "set-cookie": "a=1, b=2",
                            "x-empty": ""}
    assert head.keep_alive
    assert repr(head) == "<ResponseHead 429 Too Many Requests>"
    assert parse_head(b"HTTP/1.1 200").reason == ""
    assert parse_head(b"HTTP/1.1 404 Not  Found").reason == "Not  Found"


@pytest.mark.parametrize(("version", "connection", "keep_alive"), [
    ("1.1", None, True), ("1.1", "close", False), ("1.1", "Keep-Alive, CLOSE", False),
    ("1.1", "keep-alive", True), ("1.0", None, False), ("1.0", "keep-alive", True),
    ("1.0", "Keep-Alive", True), ("1.0", "close", False),
])
def test_parse_head_keep_alive(version: str, connection: str | None, keep_alive: bool) -> None:
    block = f"HTTP/{version} 200 OK\r\nContent-Length: 0"
    if connection is not None:
        block += f"\r\nConnection: {connection}"
    assert parse_head(block.encode()).keep_alive is keep_alive


@pytest.mark.parametrize("line", [b"HTTP/2 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK",
                                  b"HTTP/1.1 abc OK", b"ICY 200 OK", b"", b"HTTP/1.1",
                                  b"hello world", b"HTTP/1.1  200 OK"])
def test_parse_head_bad_status_line(line: bytes) -> None:
    with pytest.raises(FramingError, match=r"not an HTTP/1\.x status line"):
        parse_head(line + b"\r\nContent-Length: 0")


@pytest.mark.parametrize("continuation", [b" more", b"\tmore", b" b: c", b"\tX-B: c"])
def test_parse_head_folded_header(continuation: bytes) -> None:
    """obs-fold is refused (RFC 9112 §5.2), also when the continuation holds a colon."""
    with pytest.raises(FramingError, match="folded header lines are not accepted"):
        parse_head(b"HTTP/1.1 200 OK\r\nX-A: a\r\n" + continuation)


@pytest.mark.parametrize("line", [b"no colon", b"X-A : space before colon", b": no name"])
def test_parse_head_malformed_header_line(line: bytes) -> None:
    with pytest.raises(FramingError, match="malformed header line") as info:
        parse_head(b"HTTP/1.1 200 OK\r\n" + line)
    assert "colon" not in str(info.value)  # the line's text is not echoed


# --- body_decoder -----------------------------------------------------------------------------


def head(status: int, headers: str = "") -> ResponseHead:
    return parse_head(f"HTTP/1.1 {status} X\r\n{headers}".encode().rstrip())


@pytest.mark.parametrize(("status", "method"), [
    (200, "HEAD"), (204, "GET"), (304, "GET"), (100, "POST"), (103, "GET"), (101, "GET"),
    (200, "CONNECT"), (299, "CONNECT"),
])
def test_no_body(status: int, method: str) -> None:
    response = head(status, "Content-Length: 100\r\nContent-Encoding: br")
    decoder = response.body_decoder(method)
    assert decoder.done and not decoder.until_close
    assert response.keep_alive
    assert decoder.feed(b"x") == b"" and decoder.surplus


def test_connect_refused_has_a_body() -> None:
    decoder = head(407, "Content-Length: 3").body_decoder("CONNECT")
    assert not decoder.done
    assert decoder.feed(b"abc") == b"abc" and decoder.done


@pytest.mark.parametrize("headers", ["", "Transfer-Encoding: gzip",
                                     "Transfer-Encoding: chunked, gzip"])
def test_until_close_is_not_keep_alive(headers: str) -> None:
    response = head(200, headers)
    assert response.keep_alive
    decoder = response.body_decoder("GET")
    assert decoder.until_close and not decoder.done
    assert not response.keep_alive


def test_transfer_encoding_wins_over_content_length() -> None:
    response = head(200, "Transfer-Encoding: gzip, Chunked\r\nContent-Length: 99")
    decoder = response.body_decoder("POST")
    assert not decoder.until_close
    assert decoder.feed(b"2\r\nok\r\n0\r\n\r\n") == b"ok" and decoder.done
    assert response.keep_alive


@pytest.mark.parametrize("value", ["5, 6", "-5", "", "5x", "0x5", "+5", "\u00b2", " , "])
def test_invalid_content_length(value: str) -> None:
    response = parse_head(f"HTTP/1.1 200 OK\r\nContent-Length: {value}".encode("latin-1"))
    with pytest.raises(FramingError, match="invalid Content-Length"):
        response.body_decoder("GET")


def test_repeated_equal_content_length() -> None:
    response = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2")
    assert response.headers["content-length"] == "2, 2"
    assert response.body_decoder("GET").feed(b"okay") == b"ok"


# --- encode_request ---------------------------------------------------------------------------


def test_encode_request() -> None:
    data = encode_request("POST", "/v1/chat?x=1", "api.example:8443",
                          {"Authorization": f"Bearer {SECRET}", "X-Latin": "caf\xe9"}, b"{}")
    assert data == (b"POST /v1/chat?x=1 HTTP/1.1\r\nHost: api.example:8443\r\n"
                    b"Authorization: Bearer " + SECRET.encode() + b"\r\nX-Latin: caf\xe9\r\n"
                    b"Accept-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}")


def test_encode_request_content_length_and_accept_encoding() -> None:
    assert encode_request("GET", "/", "h", {}, None) == (
        b"GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: identity\r\n\r\n")
    for method in ("POST", "PUT", "PATCH"):
        assert b"\r\nContent-Length: 0\r\n" in encode_request(method, "/", "h", {}, None)
    assert b"Content-Length: 3\r\n\r\nabc" in encode_request("DELETE", "/", "h", {}, b"abc")
    given_coding = encode_request("GET", "/", "h", {"accept-ENCODING": "gzip"}, None)
    assert b"accept-ENCODING: gzip\r\n" in given_coding
    assert b"identity" not in given_coding


@pytest.mark.parametrize(("name", "value"), [
    ("Authorization", f"Bearer {SECRET}\r\nX-Evil: 1"), ("Authorization", f"{SECRET}\n"),
    ("Authorization", f"{SECRET}\0"), ("Authorization", f"Bearer {SECRET}\u2603"),
    ("X-Bad\r\nName", SECRET), ("X-Snow\u2603", SECRET), ("X-Colon:", SECRET),
])
def test_unsendable_header_is_named_never_shown(name: str, value: str) -> None:
    headers = {"X-Fine": "ok", name: value, "X-After": "ok"}
    with pytest.raises(UnsendableRequest) as info:
        encode_request("POST", "/", "h", headers, b"{}")
    assert info.value.header == name
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


@pytest.mark.parametrize("target", ["/a b", "/a\r\nX: 1", "/a\n", "/\0", "/caf\u2603"])
def test_bad_target(target: str) -> None:
    with pytest.raises(UnsendableRequest) as info:
        encode_request("GET", target, "h", {"Authorization": SECRET}, None)
    assert info.value.header is None
    assert str(info.value) == "request target"


def test_max_head_is_64_kib() -> None:
    assert MAX_HEAD == 65536
