"""The one redaction function: registered secrets and credential-looking values never shown."""

from __future__ import annotations

from promptkit._redact import REDACTED, redact, redact_value, register_secret


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
