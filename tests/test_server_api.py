"""``promptkit serve``'s native API and its security and limits (DESIGN §14), against a live
uvicorn on 127.0.0.1: conversations, SSE turns, 400/401/404/409/413, CORS, CSP, ids, a client
disconnect cancelling the upstream call, and no key or token in any response or log line."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
from typing import Any

import pytest

from promptkit.server import create_app
from promptkit.testing import FakeServer, Reply

from serve_support import HELLO, LiveServer, parse_sse
from support import WIRE

TOKEN = "tok-9f2c1e7a55d04b8e"
KEY = "sk-test-SECRETKEY-0123456789abcdef"


def call(url: str, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"content-type": "application/json",
                                                   **(headers or {})})
    response = conn.getresponse()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return result


def mock_app(**options: Any) -> Any:
    options.setdefault("provider", "mock")
    return create_app(HELLO, **options)


@pytest.fixture
def live() -> Any:
    with LiveServer(mock_app()) as server:
        yield server


def new_conversation(url: str, headers: dict[str, str] | None = None) -> str:
    status, _, body = call(url, "POST", "/v1/conversations",
                           {"prompt": "chat", "variables": {"user_name": "Ada"}}, headers)
    assert status == 201, body
    return str(json.loads(body)["id"])


def test_prompts_list_the_variables_and_openapi_documents_every_endpoint(live: Any) -> None:
    status, _, body = call(live.url, "GET", "/v1/prompts")
    assert status == 200
    prompt = json.loads(body)["prompts"][0]
    assert prompt["name"] == "chat"
    assert prompt["variables"][0]["name"] == "user_name" and prompt["variables"][0]["required"]
    status, _, body = call(live.url, "GET", "/openapi.json")
    paths = json.loads(body)["paths"]
    for path in ("/healthz", "/v1/prompts", "/v1/conversations", "/v1/conversations/{id}",
                 "/v1/conversations/{id}/messages", "/v1/chat/completions", "/v1/models",
                 "/agui"):
        assert path in paths
    assert call(live.url, "GET", "/healthz")[2] == b'{"status":"ok"}'


def test_a_conversation_streams_turns_keeps_history_and_can_be_deleted(live: Any) -> None:
    conversation = new_conversation(live.url)
    status, headers, body = call(live.url, "POST", f"/v1/conversations/{conversation}/messages",
                                 {"content": "Hello"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = parse_sse(body)
    assert [e for e, _ in events[:-1]] == ["chunk"] * (len(events) - 1)
    assert all(d["type"] == "text" for _, d in events[:-1])
    name, done = events[-1]
    assert name == "done" and done["type"] == "done"
    text = "".join(d["text"] for _, d in events[:-1])
    assert text == done["response"]["text"] == "Mock response from mock-model to: Hello"
    assert done["response"]["usage"]["output_tokens"] > 0

    status, _, body = call(live.url, "POST", f"/v1/conversations/{conversation}/messages",
                           {"content": "Again", "stream": False})
    assert status == 200 and json.loads(body)["text"].endswith("to: Again")

    status, _, body = call(live.url, "GET", f"/v1/conversations/{conversation}")
    got = json.loads(body)
    assert got["prompt"] == "chat" and got["variables"] == {"user_name": "Ada"}
    assert [(m["role"], m["text"]) for m in got["messages"]] == [
        ("user", "Hello"), ("assistant", "Mock response from mock-model to: Hello"),
        ("user", "Again"), ("assistant", "Mock response from mock-model to: Again")]

    assert call(live.url, "DELETE", f"/v1/conversations/{conversation}")[0] == 204
    assert call(live.url, "GET", f"/v1/conversations/{conversation}")[0] == 404
    assert call(live.url, "DELETE", f"/v1/conversations/{conversation}")[0] == 404


def test_conversation_ids_are_128_random_bits(live: Any) -> None:
    ids = {new_conversation(live.url) for _ in range(40)}
    assert len(ids) == 40
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    # 40 ids of 128 uniformly random bits: every bit position varies
    bits = [int(i, 16) for i in ids]
    assert all(len({(b >> k) & 1 for b in bits}) == 2 for k in range(0, 128, 8))


def test_bad_requests_get_a_json_error(live: Any) -> None:
    status, headers, body = call(live.url, "POST", "/v1/conversations", raw=b"{not json")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "invalid_json"
    status, _, body = call(live.url, "POST", "/v1/conversations", {"prompt": "chat"})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_variables"
    assert "user_name" in json.loads(body)["error"]["message"]
    status, _, body = call(live.url, "POST", "/v1/conversations", {"prompt": "nope"})
    assert status == 400 and json.loads(body)["error"]["type"] == "unknown_prompt"
    conversation = new_conversation(live.url)
    status, _, body = call(live.url, "POST", f"/v1/conversations/{conversation}/messages",
                           {"content": 42})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request"


@pytest.mark.parametrize("path", ["/v1/conversations/0123456789abcdef0123456789abcdef",
                                  "/v1/conversations/not%20an%20id", "/nowhere"])
def test_unknown_ids_and_routes_are_404_json(live: Any, path: str) -> None:
    status, headers, body = call(live.url, "GET", path)
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "not_found"
    status, _, _ = call(live.url, "POST", path + "/messages", {"content": "hi"})
    assert status == 404


def test_bodies_over_the_limit_are_413_declared_or_chunked() -> None:
    with LiveServer(mock_app(max_body=1024)) as live:
        big = json.dumps({"prompt": "chat", "variables": {"user_name": "x" * 2000}}).encode()
        status, _, body = call(live.url, "POST", "/v1/conversations", raw=big)
        assert status == 413 and json.loads(body)["error"]["type"] == "request_too_large"
        host, port = live.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/v1/conversations", body=iter([big[:600], big[600:]]),
                     headers={"content-type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413
        conn.close()
    with LiveServer(mock_app()) as live:  # the default is 1 MiB
        over = b'{"prompt": "chat", "pad": "' + b"x" * (1024 * 1024) + b'"}'
        assert call(live.url, "POST", "/v1/conversations", raw=over)[0] == 413


def test_a_second_message_to_a_busy_conversation_is_409() -> None:
    slow = {"defaultResponse": "one two three four five six seven eight", "delay": 0.1}
    with LiveServer(mock_app(mock_responses=slow)) as live:
        conversation = new_conversation(live.url)
        host, port = live.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", f"/v1/conversations/{conversation}/messages",
                     body=json.dumps({"content": "first"}),
                     headers={"content-type": "application/json"})
        first = conn.getresponse()
        assert first.readline().startswith(b"event: chunk")  # the first turn is streaming
        status, _, body = call(live.url, "POST", f"/v1/conversations/{conversation}/messages",
                               {"content": "second"})
        assert status == 409 and json.loads(body)["error"]["type"] == "conversation_busy"
        rest = first.read()
        conn.close()
        assert b"event: done" in rest
        messages = json.loads(call(live.url, "GET", f"/v1/conversations/{conversation}")[2])
        assert [m["text"] for m in messages["messages"] if m["role"] == "user"] == ["first"]


def test_the_token_guards_every_api_route_with_a_bare_401(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import promptkit.server.app as app_module

    compared: list[tuple[bytes, bytes]] = []
    real = app_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(app_module.hmac, "compare_digest", spy)
    with LiveServer(mock_app(token=TOKEN)) as live:
        answers = set()
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN},
                        {"authorization": f"Bearer {TOKEN}x"}):
            for method, path in (("GET", "/v1/prompts"), ("POST", "/v1/conversations"),
                                 ("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                                 ("POST", "/agui")):
                status, got, body = call(live.url, method, path, {}, headers)
                assert status == 401, (method, path, headers)
                assert got["www-authenticate"] == "Bearer"
                answers.add(body)
        assert answers == {b'{"error":{"type":"unauthorized","message":"unauthorized"}}'}
        assert compared, "the token is compared with hmac.compare_digest"
        good = {"authorization": f"Bearer {TOKEN}"}
        assert call(live.url, "GET", "/v1/prompts", headers=good)[0] == 200
        assert new_conversation(live.url, good)
        assert call(live.url, "GET", "/")[0] == 200  # the page itself asks for the token
        assert call(live.url, "GET", "/healthz")[0] == 200


def test_cors_is_off_unless_an_origin_is_given() -> None:
    preflight = {"origin": "http://app.example", "access-control-request-method": "POST"}
    with LiveServer(mock_app()) as live:
        _, headers, _ = call(live.url, "OPTIONS", "/v1/conversations", headers=preflight)
        assert "access-control-allow-origin" not in headers
        _, headers, _ = call(live.url, "GET", "/v1/prompts", headers={"origin": "http://x"})
        assert "access-control-allow-origin" not in headers
    with LiveServer(mock_app(cors_origins=["http://app.example"])) as live:
        status, headers, _ = call(live.url, "OPTIONS", "/v1/conversations", headers=preflight)
        assert status == 200 and headers["access-control-allow-origin"] == "http://app.example"
        _, headers, _ = call(live.url, "GET", "/v1/prompts", headers={"origin": "http://evil"})
        assert "access-control-allow-origin" not in headers


def test_the_page_is_served_with_a_csp_allowing_only_its_own_scripts(live: Any) -> None:
    status, headers, body = call(live.url, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    html = body.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="/static/' in attrs and not inner.strip()
                           for attrs, inner in scripts)
    assert "http://" not in html and "https://" not in html  # no CDN
    for asset in ("/static/app.js", "/static/app.css", "/static/favicon.svg"):
        assert call(live.url, "GET", asset)[0] == 200
    script = call(live.url, "GET", "/static/app.js")[2].decode()
    assert "innerHTML" not in script and "eval(" not in script


def _openai_upstream_app(fake: FakeServer, **options: Any) -> Any:
    return create_app(HELLO, provider="openai", base_url=fake.url + "/v1", api_key=KEY,
                      **options)


def test_a_client_disconnect_cancels_the_upstream_call_and_commits_nothing() -> None:
    sse = (WIRE / "openai-chat" / "text-with-usage.sse").read_bytes()
    # two events, then the upstream holds the stream open (a slow model)
    with FakeServer([Reply.sse(sse, stall_after=2)]) as fake, \
            LiveServer(_openai_upstream_app(fake)) as live:
        conversation = new_conversation(live.url)
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
        body = json.dumps({"content": "Tell me a long story"}).encode()
        sock.sendall(b"POST /v1/conversations/" + conversation.encode() + b"/messages "
                     b"HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        seen = b""
        while b"event: chunk" not in seen:
            seen += sock.recv(4096)
        assert fake.active_connections == 1
        sock.close()
        assert fake.wait_idle(1.0), "the upstream call was not closed within a second"
        got = json.loads(call(live.url, "GET", f"/v1/conversations/{conversation}")[2])
        assert got["messages"] == []
        # the conversation stays usable
        fake.enqueue(Reply.sse(sse))
        _status, _, body = call(live.url, "POST", f"/v1/conversations/{conversation}/messages",
                               {"content": "Hi"})
        assert parse_sse(body)[-1][0] == "done"


def test_no_key_or_token_in_any_response_or_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    unauthorized = (WIRE / "openai-chat" / "error-401-invalid-api-key.json").read_text()
    echoed = json.loads(unauthorized)
    echoed["error"]["message"] = f"Incorrect API key provided: {KEY}"
    bodies: list[bytes] = []
    with FakeServer(lambda request: Reply.json(401, echoed)) as fake, \
            LiveServer(_openai_upstream_app(fake, token=TOKEN)) as live:
        good = {"authorization": f"Bearer {TOKEN}"}
        conversation = new_conversation(live.url, good)
        for stream in (True, False):
            _, headers, body = call(
                live.url, "POST", f"/v1/conversations/{conversation}/messages",
                {"content": "hi", "stream": stream}, good)
            bodies.append(body + json.dumps(headers).encode())
        _status, headers, body = call(live.url, "POST", "/v1/chat/completions",
                                     {"model": "chat", "messages": [
                                         {"role": "user", "content": "hi"}],
                                      "variables": {"user_name": "A"}}, good)
        bodies.append(body + json.dumps(headers).encode())
        for path in ("/v1/prompts", f"/v1/conversations/{conversation}", "/openapi.json", "/"):
            bodies.append(call(live.url, "GET", path, headers=good)[2])
        assert fake.requests and fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    everything = b"\n".join(bodies).decode() + "\n" + caplog.text
    assert "AuthenticationError" in everything  # the failure itself is reported
    assert KEY not in everything and KEY[8:] not in everything
    assert TOKEN not in everything


def test_another_packs_conversation_in_a_shared_store_is_404() -> None:
    from promptkit import Message
    from promptkit.stores import ConversationMetadata, MemoryStore

    store = MemoryStore()
    foreign = "f" * 32
    store.append(foreign, [Message(role="user", text="private")], 0,
                 metadata=ConversationMetadata(pack_id="another-pack", prompt="chat"))
    with LiveServer(mock_app(store=store)) as live:
        assert call(live.url, "GET", f"/v1/conversations/{foreign}")[0] == 404
        assert call(live.url, "POST", f"/v1/conversations/{foreign}/messages",
                    {"content": "hi"})[0] == 404
        assert call(live.url, "DELETE", f"/v1/conversations/{foreign}")[0] == 404
    assert store.load(foreign) is not None


def test_chunk_types_added_later_are_encoded_generically() -> None:
    from dataclasses import dataclass
    from types import SimpleNamespace

    from promptkit.server.encoding import chunk_json

    @dataclass(frozen=True)
    class Verdict:
        type: str
        passed: bool
        message: str
        details: tuple[str, ...]

    chunk = SimpleNamespace(
        type=SimpleNamespace(value="validation"), text="", tool_call=None, tool_result=None,
        response=None, error=None,
        validation=Verdict("content_excludes", False, "blocked", ("word",)))
    assert chunk_json(chunk) == {"type": "validation", "validation": {  # type: ignore[arg-type]
        "type": "content_excludes", "passed": False, "message": "blocked",
        "details": ["word"]}}


def test_a_guardrail_block_streams_as_a_validation_chunk_and_stores_the_replacement() -> None:
    """End to end with the pack's guardrails: the banned word never reaches the client."""
    guard = [{"type": "banned_words", "params": {"words": ["mock"], "message": "[withheld]"}}]
    with LiveServer(mock_app(open_options={"guardrails": guard})) as server:
        conversation = new_conversation(server.url)
        status, _, body = call(server.url, "POST",
                               f"/v1/conversations/{conversation}/messages", {"content": "Hi"})
        assert status == 200
        events = parse_sse(body)
        kinds = [d["type"] for _, d in events]
        assert "validation" in kinds and kinds[-1] == "done"
        shown = "".join(d.get("text", "") for _, d in events if d["type"] == "text")
        assert "mock" not in shown.lower()
        validation = next(d for _, d in events if d["type"] == "validation")["validation"]
        assert validation["blocked"] is True
        done = events[-1][1]["response"]
        assert done["finish_reason"] == "safety" and done["text"] == "[withheld]"
        _, _, body = call(server.url, "GET", f"/v1/conversations/{conversation}")
        texts = [m["text"] for m in json.loads(body)["messages"]]
        assert texts == ["Hi", "[withheld]"]
