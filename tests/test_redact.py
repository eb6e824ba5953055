"""The one redaction function: registered secrets and credential-looking values never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

import promptkit
from promptkit._redact import REDACTED, redact, redact_value, register_secret
from promptkit.testing import FakeServer, RecordedRequest, Reply

from support import REPO, Driver


def test_a_registered_secret_is_removed_wherever_it_appears() -> None:
    key = "pk-test-registered-0123456789"
    register_secret(key)
    text = f"bad key {key}; again:{key}."
    assert redact(text) == f"bad key {REDACTED}; again:{REDACTED}."


def test_credential_shapes_are_removed_even_when_not_registered() -> None:
    out = redact("Incorrect API key provided: Bearer gw-unknown-token-42. Check it.")
    assert out == f"Incorrect API key provided: Bearer {REDACTED}. Check it."
    assert "sk-" not in redact("key sk-proj-AAAAAAAAAAAAAAAAAAAA rejected")
    assert redact('{"x-api-key": "abcd1234efgh"}') == '{"x-api-key": "' + REDACTED + '"}'
    assert redact("GET /v1?key=AIzaSyA-secret&alt=sse") == f"GET /v1?key={REDACTED}&alt=sse"


def test_the_rest_of_the_message_is_kept() -> None:
    assert redact("rate limited, retry in 3 s") == "rate limited, retry in 3 s"
    assert redact("") == ""


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    assert redact("abc abc") == "abc abc"


def test_nested_values_are_redacted() -> None:
    register_secret("nested-secret-value-1")
    secret = "nested-secret-value-1"
    body = {"error": {"message": f"{secret} is wrong", "codes": [secret, 3]}}
    assert redact_value(body) == {"error": {"message": f"{REDACTED} is wrong",
                                            "codes": [REDACTED, 3]}}


# --- keys a server echoes in its error body -------------------------------------------------

HELLO = REPO / "examples" / "hello.pack.json"

# provider, api, path under the fake server, and the error envelope the dialect reads
DIALECTS = {
    "openai": ("openai", None, "/v1", lambda m: {"error": {"message": m, "type": "invalid"}}),
    "responses": ("openai", "responses", "/v1",
                  lambda m: {"error": {"message": m, "type": "invalid_request_error"}}),
    "anthropic": ("anthropic", None, "",
                  lambda m: {"type": "error",
                             "error": {"type": "authentication_error", "message": m}}),
    "gemini": ("gemini", None, "/v1beta",
               lambda m: {"error": {"code": 401, "message": m, "status": "UNAUTHENTICATED"}}),
    "ollama": ("ollama", None, "", lambda m: {"error": m}),
    "azure": ("azure", None, "", lambda m: {"error": {"message": m, "code": "401"}}),
}


def opaque_key() -> str:
    """A key in no well-known format, so only its registration can catch it."""
    return f"opaque{uuid.uuid4().hex}"


def echoing_server(envelope: object) -> FakeServer:
    """A server that answers 401 quoting every credential header it received, as some
    gateways and OpenAI-compatible servers do."""

    def reply(request: RecordedRequest) -> Reply:
        sent = {name: value for name, value in request.headers.items()
                if name in ("authorization", "x-api-key", "x-goog-api-key", "api-key")}
        message = "Incorrect API key provided: " + "; ".join(sent.values())
        body = envelope(message)  # type: ignore[operator]
        body["echo"] = sent
        return Reply.json(401, body)

    return FakeServer(reply)


def shown(error: BaseException) -> str:
    """Everything of an error a user or a log can see."""
    parts = [str(error), repr(error), str(error.args)]
    for name in ("message", "body"):
        value = getattr(error, name, None)
        parts.append(value if isinstance(value, str) else json.dumps(value, default=str))
    return "\n".join(parts)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_a_key_echoed_in_an_error_body_is_scrubbed(driver: Driver, dialect: str) -> None:
    provider, api, path, envelope = DIALECTS[dialect]
    key = opaque_key()
    with echoing_server(envelope) as server:
        conv = driver.open(HELLO, "chat", provider=provider, api=api, api_key=key,
                           base_url=server.url + path, model="some-model",
                           variables={"user_name": "Ada"}, max_retries=0)
        chunks = driver.stream(conv, "hi")
        with pytest.raises(promptkit.AuthenticationError) as caught:
            driver.send(conv, "hi")
        sent = [v for r in server.requests for v in r.headers.values() if key in v]
    assert sent, "the key was sent"
    errors = [c.error for c in chunks if c.error is not None]
    assert len(errors) == 1
    for error in (errors[0], caught.value):
        text = shown(error)
        assert key not in text
        assert "Incorrect API key provided: " in str(error)  # the rest of the message stays
        assert "[REDACTED]" in str(error)


def test_a_key_from_the_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    key = opaque_key()
    _, _, _, envelope = DIALECTS["openai"]
    with echoing_server(envelope) as server:
        monkeypatch.setenv("OPENAI_API_KEY", key)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        conv = promptkit.open(HELLO, "chat", variables={"user_name": "Ada"}, max_retries=0)
        with pytest.raises(promptkit.AuthenticationError) as caught:
            conv.send("hi")
    assert key not in shown(caught.value)


def test_a_key_in_an_http_tool_header_is_registered() -> None:
    key = opaque_key()
    tool = promptkit.HTTPTool("https://api.example.com/x", headers={"X-Service-Token": key})
    tool._call_headers()  # what every call does first
    assert redact(f"upstream said: {key}") == "upstream said: [REDACTED]"


def test_the_cli_error_line_and_json_object_are_scrubbed() -> None:
    key = opaque_key()
    _, _, _, envelope = DIALECTS["openai"]
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["GATEWAY_KEY"] = key
    with echoing_server(envelope) as server:
        outputs = []
        for extra in ([], ["--json"]):
            done = subprocess.run(
                [sys.executable, "-m", "promptkit.cli.main", "send", str(HELLO), "chat", "hi",
                 "--var", "user_name=Ada", "--base-url", server.url + "/v1",
                 "--api-key-env", "GATEWAY_KEY", *extra],
                capture_output=True, text=True, env=env, timeout=60, check=False)
            assert done.returncode == 1, done.stderr
            outputs.append(done.stdout + done.stderr)
    assert all(key not in out for out in outputs)
    assert "Incorrect API key provided: " in outputs[0]
    error = json.loads(outputs[1].splitlines()[0])["error"]
    assert error["type"] == "AuthenticationError" and key not in json.dumps(error)
