"""HTTP tools: requests built from arguments, secrets kept out of sight, and the SSRF guard.

Every test runs under ``guard``: connections and DNS lookups may only reach 127.0.0.0/8 (and
``localhost``), so nothing here sends traffic anywhere else.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from promptkit import ChunkType
from promptkit.engine.tool_round import ToolContext
from promptkit.testing import FakeServer, Reply
from promptkit.tools.http import (
    HTTPTool,
    HTTPToolError,
    HTTPToolRefusedError,
    HTTPToolTimeoutError,
)
from promptkit.tools.registry import tool_entry

from support import PACKS, Driver

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
REAL_CONNECT = socket.create_connection
REAL_GETADDRINFO = socket.getaddrinfo


@dataclass
class Guard:
    connects: list[tuple[str, int]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def guard(monkeypatch: pytest.MonkeyPatch) -> Guard:
    """Fail any connection or lookup that could leave 127.0.0.0/8."""
    seen = Guard()

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.connects.append(address)
        assert ipaddress.ip_address(address[0]) in LOOPBACK, f"traffic to {address}"
        return REAL_CONNECT(address, *args, **kwargs)

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        seen.lookups.append(host)
        if host != "localhost":
            assert ipaddress.ip_address(host) in LOOPBACK, f"lookup of {host}"
        return REAL_GETADDRINFO(host, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def fake_dns(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> list[str]:
    """Answer lookups with ``answers`` in turn (one list of IPs per lookup); returns the hosts
    looked up."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        ips = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port)) for ip in ips]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def local(srv: FakeServer, path: str, **options: Any) -> HTTPTool:
    return HTTPTool(srv.url + path, allow_hosts=["127.0.0.1"], **options)


# --- building requests -----------------------------------------------------------------------


def test_get_with_a_query_mapping(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {"temp": 21}))
    tool = local(server, "/weather", query={"q": "city", "n": "limit"})
    assert tool({"city": "São Paulo", "limit": 3, "unused": "x"}) == {"temp": 21}
    request = server.requests[0]
    assert (request.method, request.path) == ("GET", "/weather?q=S%C3%A3o+Paulo&n=3")
    assert request.headers["host"] == f"127.0.0.1:{server.port}"


def test_get_sends_every_argument_not_in_the_path_by_default(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {}))
    local(server, "/w/{city}?units=metric")({"city": "Paris", "days": 2, "hourly": True,
                                              "tags": ["a", "b"], "skip": None})
    assert server.requests[0].path == "/w/Paris?units=metric&days=2&hourly=true&tags=a&tags=b"


def test_path_parameters_are_quoted(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {}), Reply.json(200, {}))
    tool = local(server, "/stocks/{ticker}/quote", query={})
    tool({"ticker": "A/B?c=1#x"})
    tool({"ticker": ".."})
    assert [r.path for r in server.requests] == ["/stocks/A%2FB%3Fc%3D1%23x/quote",
                                                 "/stocks/%2E%2E/quote"]
    with pytest.raises(HTTPToolError, match="missing argument 'ticker'"):
        tool({})


def test_post_sends_the_arguments_as_json(server: FakeServer) -> None:
    server.enqueue(Reply.json(201, {"id": 9}), Reply.json(200, {}))
    tool = local(server, "/carts/{cart}/items", method="post")
    assert tool({"cart": "c1", "sku": "X", "qty": 2}) == {"id": 9}
    request = server.requests[0]
    assert (request.method, request.path, request.json) == ("POST", "/carts/c1/items",
                                                            {"sku": "X", "qty": 2})
    assert request.headers["content-type"] == "application/json"
    local(server, "/items", method="PUT", body={"quantity": "qty"}, query={"sku": "sku"})(
        {"sku": "X", "qty": 2, "other": 1})
    assert (server.requests[1].path, server.requests[1].json) == ("/items?sku=X",
                                                                  {"quantity": 2})


def test_a_registered_http_tool_is_a_dict_handler_with_context() -> None:
    entry = tool_entry(HTTPTool("https://api.example.com/x"))
    assert entry.takes_context and not entry.named_params and not entry.is_async
    assert entry.schema is None


# --- secrets -------------------------------------------------------------------------------------


def test_headers_and_env_headers_are_sent_but_never_shown(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHER_TOKEN", "Bearer env-secret-9876")
    echo = {"error": "bad key static-secret-123 / Bearer env-secret-9876", "raw": "env-secret-9876"}
    server.enqueue(Reply.json(200, {"ok": "static-secret-123"}), Reply.json(500, echo))
    tool = local(server, "/w", headers={"X-Api-Key": "static-secret-123"},
                 headers_from_env={"Authorization": "WEATHER_TOKEN"})
    assert tool({}) == {"ok": "[REDACTED]"}  # a server echoing a secret does not leak it
    with pytest.raises(HTTPToolError) as info:
        tool({})
    headers = server.requests[0].headers
    assert headers["x-api-key"] == "static-secret-123"
    assert headers["authorization"] == "Bearer env-secret-9876"
    message = str(info.value)
    assert info.value.status == 500 and "HTTP 500" in message and "[REDACTED]" in message
    for text in (message, repr(tool), str(vars(info.value))):
        assert "secret" not in text
    assert repr(tool) == f"HTTPTool('GET', '{server.url}/w')"


def test_a_missing_env_header_fails_without_a_request(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    tool = local(server, "/w", headers_from_env={"Authorization": "NO_SUCH_TOKEN"})
    with pytest.raises(HTTPToolError, match=r"NO_SUCH_TOKEN .*not set"):
        tool({})
    assert server.requests == []


def test_invalid_headers_are_refused_without_echoing_the_value() -> None:
    with pytest.raises(ValueError, match="X-Key") as info:
        HTTPTool("https://api.example.com/", headers={"X-Key": "abc\r\nInjected: 1"})
    assert "Injected" not in str(info.value)
    with pytest.raises(ValueError, match="Host"):
        HTTPTool("https://api.example.com/", headers={"Host": "evil.example"})


def test_redact_hides_fields_query_values_and_url_secrets(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {"temp": 20, "API_KEY": "k1", "items": [{"token": "t"}]}),
                   Reply.json(404, {"detail": "no key abcd-1234", "token": "t2"}))
    tool = local(server, "/w?appid=static-appid", redact=["api_key", "token", "appid"],
                 query={"key": "api_key", "city": "city"})
    assert tool({"city": "Paris", "api_key": "abcd-1234"}) == {
        "temp": 20, "API_KEY": "[REDACTED]", "items": [{"token": "[REDACTED]"}]}
    assert server.requests[0].path == "/w?appid=static-appid&key=abcd-1234&city=Paris"
    with pytest.raises(HTTPToolError) as info:
        tool({"city": "Oslo", "api_key": "abcd-1234"})
    message = str(info.value)
    assert "HTTP 404" in message and "key=[REDACTED]&city=Oslo" in message
    assert "abcd-1234" not in message and "static-appid" not in message and "t2" not in message
    assert "static-appid" not in repr(tool) and "appid=[REDACTED]" in repr(tool)


# --- responses -----------------------------------------------------------------------------------


def test_transform_gets_the_redacted_body(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {"main": {"temp": 21.5}, "secret": "s"}),
                   Reply.json(200, {"main": {}}))
    seen: list[Any] = []

    def transform(body: Any) -> Any:
        seen.append(body)
        return f"{body['main']['temp']} °C"

    tool = local(server, "/w", transform=transform, redact=["secret"])
    assert tool({}) == "21.5 °C"
    assert seen[0]["secret"] == "[REDACTED]"
    with pytest.raises(HTTPToolError, match=r"transform failed.*KeyError"):
        tool({})


@pytest.mark.parametrize(("reply", "expected"), [
    (Reply(200, {"content-type": "text/plain; charset=utf-8"}, "héllo".encode()), "héllo"),
    (Reply(200, {"content-type": "text/plain"}, b'{"looks": "json"}'), {"looks": "json"}),
    (Reply(200, {"content-type": "application/json"}, b"{broken"), "{broken"),
    (Reply(200, {"content-type": "text/html; charset=latin-1"}, "<p>é</p>".encode("latin-1")),
     "<p>é</p>"),
    (Reply(204), "(empty response, HTTP 204)"),
])
def test_bodies_are_parsed_as_json_or_returned_as_text(
        server: FakeServer, reply: Reply, expected: Any) -> None:
    server.enqueue(reply)
    assert local(server, "/x")({}) == expected


@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses_raise_with_an_excerpt(server: FakeServer, status: int) -> None:
    server.enqueue(Reply.json(status, {"message": "x" * 1000}))
    with pytest.raises(HTTPToolError) as info:
        local(server, "/missing")({})
    assert info.value.status == status
    assert str(info.value).startswith(f"HTTP {status} ")
    assert f"GET {server.url}/missing" in str(info.value)
    assert len(str(info.value)) < 500 and str(info.value).endswith("…")


def test_big_responses_are_cut_with_a_marker(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {"data": "x" * 50_000}),
                   Reply(200, {"content-type": "text/plain"}, [b"y" * 4096] * 100))
    tool = local(server, "/big", max_response_bytes=1000)
    first = tool({})
    assert isinstance(first, str) and first.startswith('{"data": "xxx')
    assert first.endswith("\n[truncated: the response exceeded 1000 bytes]")
    assert len(first) == 1000 + len("\n[truncated: the response exceeded 1000 bytes]")
    assert tool({}).startswith("y" * 1000 + "\n[truncated")


def test_a_slow_server_times_out(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {}, first_delay=3.0), Reply.json(200, {}, header_delay=3.0))
    tool = local(server, "/slow", timeout=0.2)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(HTTPToolTimeoutError, match=r"did not finish within 0\.2 s"):
            tool({})
        assert time.monotonic() - started < 1.0


def test_the_turn_deadline_bounds_the_call(server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {}, first_delay=3.0))
    ctx = ToolContext(conversation_id="c", call_id="1", tool_name="t",
                      deadline=time.monotonic() + 0.6)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        local(server, "/slow", timeout=30)({}, ctx)
    assert time.monotonic() - started < 2.5  # the 3 s reply was not awaited
    expired = ToolContext(conversation_id="c", call_id="2", tool_name="t", deadline=0.0)
    with pytest.raises(HTTPToolTimeoutError):
        local(server, "/slow")({}, expired)
    assert len(server.requests) == 1


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:8080/x", "127.0.0.1 is a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("http://[fd00:ec2::254]/latest", "cloud metadata"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://10.0.0.5/", "10.0.0.5 is a private address"),
    ("https://192.168.1.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::ffff:127.0.0.1]/", "loopback address (IPv4 127.0.0.1 inside IPv6)"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://[64:ff9b::a00:5]/", "private address (IPv4 10.0.0.5 inside IPv6)"),
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://2130706433/", "2130706433 (127.0.0.1) is a loopback address"),
    ("http://0177.0.0.1/", "0177.0.0.1 (127.0.0.1) is a loopback address"),
    ("http://0x7f.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0/", "unspecified"),
    ("http://127.0.0.1./", "loopback"),
])
def test_literal_non_public_addresses_are_refused_at_registration(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="allow_hosts") as info:
        HTTPTool(url)
    assert isinstance(info.value, HTTPToolRefusedError)
    assert str(info.value).startswith("refused: ") and why in str(info.value)


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://example.com/x", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://127.0.0.1:70/_x", "only http and https"),
    ("//example.com/x", "only http and https"),
    ("http://user:hunter22@example.com/", "credentials"),
    ("http:///nohost", "no host"),
    ("http://example.com:99999/", "malformed URL"),
    ("http://[::1/", "malformed URL"),
    ("http://exa mple.com/", "whitespace"),
    ("http://{host}/x", "placeholders"),
])
def test_bad_urls_are_refused_at_registration(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        HTTPTool(url)
    assert "hunter22" not in str(info.value)


@pytest.mark.parametrize(("url", "allow"), [
    ("http://10.0.0.5/x", ["10.0.0.5"]),
    ("http://10.0.0.5/x", ["10.0.0.0/8"]),
    ("http://[::1]:8080/", ["[::1]:8080"]),
    ("http://[::ffff:127.0.0.1]/", ["127.0.0.0/8"]),
    ("http://169.254.169.254/", ["169.254.169.254:80"]),
    ("https://127.0.0.1/", "127.0.0.1:443"),
])
def test_allow_hosts_permits_literal_addresses(url: str, allow: Any) -> None:
    HTTPTool(url, allow_hosts=allow)


def test_allow_hosts_ports_and_bad_entries() -> None:
    with pytest.raises(ValueError, match="refused"):
        HTTPTool("http://127.0.0.1:8080/", allow_hosts=["127.0.0.1:9090"])
    for entry in ("http://x/", "a b", "10.0.0.0/8:443", "user@host", "host:port"):
        with pytest.raises(ValueError, match="allow_hosts entry"):
            HTTPTool("https://api.example.com/", allow_hosts=[entry])


def test_a_host_resolving_to_loopback_is_refused_at_call_time(
        server: FakeServer, guard: Guard) -> None:
    tool = HTTPTool(f"http://localhost:{server.port}/x")  # a name: checked when called
    with pytest.raises(HTTPToolRefusedError) as info:
        tool({})
    assert "refused: localhost resolves to" in str(info.value)
    assert "loopback" in str(info.value) and "add 'localhost' to allow_hosts" in str(info.value)
    assert guard.connects == [] and server.requests == []
    server.enqueue(Reply.json(200, {"ok": True}))
    allowed = HTTPTool(f"http://localhost:{server.port}/x", allow_hosts=["localhost"])
    assert allowed({}) == {"ok": True}
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"


@pytest.mark.parametrize("answer", [["::ffff:127.0.0.1"], ["93.184.216.34", "10.1.2.3"],
                                    ["169.254.169.254"], ["fd00:ec2::254"]])
def test_any_non_public_resolved_address_refuses_the_call(
        monkeypatch: pytest.MonkeyPatch, guard: Guard, answer: list[str]) -> None:
    fake_dns(monkeypatch, answer)
    with pytest.raises(HTTPToolRefusedError, match=r"refused: api.example.test resolves to"):
        HTTPTool("https://api.example.test/v1")({})
    assert guard.connects == []


def test_dns_rebinding_cannot_swap_the_checked_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, ["93.184.216.34"], ["127.0.0.1"])
    targets: list[tuple[str, int]] = []

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        targets.append(address)
        raise ConnectionRefusedError("test: no real traffic")

    monkeypatch.setattr(socket, "create_connection", connect)
    with pytest.raises(HTTPToolError, match=r"Connection refused|no real traffic"):
        HTTPTool("http://rebind.example.test:8080/x")({})
    assert asked == ["rebind.example.test"]  # one lookup only
    assert targets == [("93.184.216.34", 8080)]  # the checked address, not a new lookup


# --- redirects ---------------------------------------------------------------------------------


@pytest.fixture
def second() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def test_a_redirect_to_a_host_not_allowed_is_refused(
        server: FakeServer, second: FakeServer, guard: Guard) -> None:
    server.enqueue(Reply(302, {"location": f"{second.url}/admin"}))
    tool = HTTPTool(f"{server.url}/start", allow_hosts=[f"127.0.0.1:{server.port}"])
    with pytest.raises(HTTPToolRefusedError, match=r"127.0.0.1 is a loopback address"):
        tool({})
    assert len(server.requests) == 1 and second.requests == []
    assert {port for _, port in guard.connects} == {server.port}


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data",
    "http://[::ffff:a9fe:a9fe]/latest",
    "http://2852039166/latest",
])
def test_a_redirect_to_the_metadata_address_makes_no_connection(
        server: FakeServer, guard: Guard, location: str) -> None:
    server.enqueue(Reply(301, {"location": location}))
    with pytest.raises(HTTPToolRefusedError, match=r"refused: .* cloud metadata"):
        HTTPTool(server.url + "/", allow_hosts=["127.0.0.1"])({})
    assert {address for address, _ in guard.connects} == {"127.0.0.1"}
    assert all(ipaddress.ip_address(host) in LOOPBACK for host in guard.lookups)


@pytest.mark.parametrize(("location", "why"), [
    ("file:///etc/passwd", "only http and https"),
    ("gopher://example.com/", "only http and https"),
    ("http://admin:pw@127.0.0.1/", "credentials"),
])
def test_redirects_to_other_schemes_or_with_credentials_are_refused(
        server: FakeServer, location: str, why: str) -> None:
    server.enqueue(Reply(302, {"location": location}))
    with pytest.raises(HTTPToolRefusedError, match=why):
        local(server, "/")({})


def test_redirects_are_followed_and_secrets_stay_with_the_origin(
        server: FakeServer, second: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "tok-123456")
    server.enqueue(Reply(307, {"location": "/moved?x=1"}),
                   Reply(302, {"location": f"{second.url}/final#frag"}))
    second.enqueue(Reply.json(200, {"done": True}))
    tool = local(server, "/start", headers_from_env={"Authorization": "TOKEN"})
    assert tool({}) == {"done": True}
    assert [r.path for r in server.requests] == ["/start", "/moved?x=1"]
    assert all(r.headers["authorization"] == "tok-123456" for r in server.requests)
    assert second.requests[0].path == "/final"
    assert "authorization" not in second.requests[0].headers


def test_post_becomes_get_after_a_303(server: FakeServer) -> None:
    server.enqueue(Reply(303, {"location": "/result"}), Reply.json(200, {"ok": 1}))
    assert local(server, "/submit", method="POST")({"a": 1}) == {"ok": 1}
    assert [(r.method, r.json) for r in server.requests] == [("POST", {"a": 1}), ("GET", None)]


def test_redirect_loops_stop_at_follow_redirects(server: FakeServer) -> None:
    server.handler = lambda request: Reply(302, {"location": "/again"})
    with pytest.raises(HTTPToolError, match="more than 2 redirects") as info:
        local(server, "/again", follow_redirects=2)({})
    assert info.value.status == 302 and len(server.requests) == 3
    with pytest.raises(HTTPToolError, match="more than 0 redirects"):
        local(server, "/again", follow_redirects=0)({})


# --- TLS to a pinned address -------------------------------------------------------------------


def tls_server(tmp_path: Path, name: str) -> tuple[socket.socket, Path, list[bytes]]:
    """A one-shot HTTPS server on 127.0.0.1 with a self-signed certificate for ``name``."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", f"/CN={name}", "-addext",
                    f"subjectAltName=DNS:{name}"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += tls.recv(4096)
                seen.append(data)
                body = b'{"secure": true}'
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n%b"
                            % (len(body), body))
        except (ssl.SSLError, OSError):
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, cert, seen


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guard: Guard) -> None:
    listener, cert, seen = tls_server(tmp_path, "api.example.test")
    port = listener.getsockname()[1]
    fake_dns(monkeypatch, ["127.0.0.1"])
    trust = ssl.create_default_context(cafile=str(cert))
    with listener:
        tool = HTTPTool(f"https://api.example.test:{port}/v1", ssl_context=trust,
                        allow_hosts=["api.example.test"])
        assert tool({}) == {"secure": True}
    assert guard.connects == [("127.0.0.1", port)]
    assert f"Host: api.example.test:{port}\r\n".encode() in seen[0]
    other, other_cert, _ = tls_server(tmp_path, "other.example.test")
    with other, pytest.raises(HTTPToolError, match=r"certificate|CERTIFICATE"):
        HTTPTool(f"https://api.example.test:{other.getsockname()[1]}/", allow_hosts=[
            "api.example.test"], ssl_context=ssl.create_default_context(
            cafile=str(other_cert)))({})


# --- through a conversation --------------------------------------------------------------------


def test_a_refused_call_reaches_the_model_as_an_error_result(
        driver: Driver, server: FakeServer) -> None:
    script = {"turns": {1: {"tool_calls": [{"name": "get_weather",
                                            "arguments": {"city": "Paris"}}]}, 2: "ok"}}
    conv = driver.open(PACKS / "assistant.pack.json", "assistant", provider="mock",
                       mock_responses=script, variables={"user_name": "Ada"})
    conv.on_tool("get_weather", HTTPTool(f"http://localhost:{server.port}/weather"))
    chunks = driver.stream(conv, "Weather in Paris?")
    results = [c.tool_result for c in chunks if c.type is ChunkType.TOOL_RESULT]
    assert len(results) == 1 and results[0] is not None and results[0].is_error
    assert "refused: localhost resolves to" in results[0].content
    assert chunks[-1].type is ChunkType.DONE and chunks[-1].response is not None
    assert chunks[-1].response.text == "ok" and server.requests == []


def test_an_allowed_call_returns_the_api_answer_to_the_model(
        driver: Driver, server: FakeServer) -> None:
    server.enqueue(Reply.json(200, {"city": "Paris", "temp": 18, "key": "k"}))
    script = {"turns": {1: {"tool_calls": [{"name": "get_weather",
                                            "arguments": {"city": "Paris"}}]}, 2: "ok"}}
    conv = driver.open(PACKS / "assistant.pack.json", "assistant", provider="mock",
                       mock_responses=script, variables={"user_name": "Ada"})
    conv.on_tool("get_weather", local(server, "/weather", redact=["key"]))
    chunks = driver.stream(conv, "Weather in Paris?")
    result = next(c.tool_result for c in chunks if c.type is ChunkType.TOOL_RESULT)
    assert result is not None and not result.is_error
    assert json.loads(result.content) == {"city": "Paris", "temp": 18, "key": "[REDACTED]"}
    assert server.requests[0].path == "/weather?city=Paris"
