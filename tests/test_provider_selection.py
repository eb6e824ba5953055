"""Provider selection: explicit > pack provider block > model prefix > environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import promptkit
from promptkit.providers._select import infer_provider, resolve_provider

from support import PACKS, Driver

HELLO = PACKS / "hello.pack.json"
KEY = "sk-select-0123456789abcdefghijklmn"


def pack_with_provider(tmp_path: Path, block: dict[str, Any]) -> Path:
    data = json.loads(HELLO.read_text())
    data["provider"] = block
    path = tmp_path / "with-provider.pack.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("model", "provider"), [
    ("claude-sonnet-4-5", "anthropic"), ("gemini-2.5-flash", "gemini"), ("gpt-4o", "openai"),
    ("o3-mini", "openai"), ("o4-mini", "openai"), ("llama3.2:3b", "ollama"),
    ("mock-model", "mock"), ("mistral-large", None), ("openai/gpt-4o", None),
])
def test_model_prefix_inference(model: str, provider: str | None) -> None:
    assert infer_provider(model) == provider


def test_nothing_configured_opens_and_the_first_turn_names_the_variables_to_set(
        driver: Driver) -> None:
    conv = driver.open(HELLO, "chat", variables={"user_name": "Ada"})
    assert "Ada" in conv.render_system_prompt()  # works offline, with no provider
    assert conv.provider == "" and conv.model == ""
    chunks = driver.stream(conv, "Hello")
    assert [c.type for c in chunks] == [promptkit.ChunkType.ERROR]
    with pytest.raises(promptkit.ProviderNotConfiguredError) as info:
        driver.send(conv, "Hello")
    message = str(info.value)
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OLLAMA_HOST"):
        assert variable in message
    assert driver.run(lambda: conv.messages) == []  # nothing half-recorded
    with pytest.raises(promptkit.ProviderNotConfiguredError):
        resolve_provider()  # the selection itself still refuses


def test_nothing_configured_makes_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.providers import _select

    def no_transport() -> object:
        raise AssertionError("a transport was used")

    monkeypatch.setattr(_select, "shared_sync_transport", no_transport)
    conv = promptkit.open(HELLO, "chat", variables={"user_name": "Ada"})
    with pytest.raises(promptkit.ProviderNotConfiguredError):
        conv.send("Hello")


@pytest.mark.parametrize("url", [
    "localhost:8000/v1", "ftp://example.com/v1", "http:///v1", "http://host:99999/v1",
    "http://host name/v1", "http://[::1/v1", "http://host:port/v1",
])
def test_a_malformed_base_url_is_a_configuration_error_at_open(driver: Driver, url: str) -> None:
    with pytest.raises(promptkit.ProviderConfigError, match="base URL") as info:
        driver.open(HELLO, "chat", provider="openai", base_url=url, api_key=KEY)
    assert not info.value.retryable
    assert isinstance(info.value, promptkit.ProviderNotConfiguredError)


def test_a_malformed_base_url_from_the_environment_names_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "127.0.0.1:8000/v1")
    with pytest.raises(promptkit.ProviderConfigError, match="OPENAI_BASE_URL"):
        promptkit.open(HELLO, "chat")


def test_credentials_in_a_malformed_base_url_are_not_shown() -> None:
    with pytest.raises(promptkit.ProviderConfigError) as info:
        promptkit.open(HELLO, "chat", provider="openai", base_url="http://user:hunter22@/v1")
    assert "hunter22" not in str(info.value)


def test_a_model_naming_no_provider_with_nothing_configured_says_so() -> None:
    with pytest.raises(promptkit.ProviderNotConfiguredError, match="provider="):
        promptkit.open(HELLO, "chat", model="my-finetune")


def test_missing_key_for_the_chosen_provider_names_its_variable() -> None:
    with pytest.raises(promptkit.ProviderNotConfiguredError, match="OPENAI_API_KEY"):
        promptkit.open(HELLO, "chat", provider="openai")
    with pytest.raises(promptkit.ProviderNotConfiguredError, match="ANTHROPIC_API_KEY"):
        promptkit.open(HELLO, "chat", model="claude-sonnet-4-5")


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(promptkit.ProviderNotConfiguredError, match="openai"):
        promptkit.open(HELLO, "chat", provider="nonesuch")


def test_environment_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert resolve_provider().provider == "anthropic"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    binding = resolve_provider()
    assert (binding.provider, binding.model) == ("openai", "gpt-4o-mini")
    monkeypatch.setenv("PROMPTKIT_PROVIDER", "gemini")
    assert resolve_provider().provider == "gemini"


def test_model_prefix_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    binding = resolve_provider(model="claude-sonnet-4-5")
    assert (binding.provider, binding.model) == ("anthropic", "claude-sonnet-4-5")


def test_pack_provider_block_beats_model_prefix_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = pack_with_provider(tmp_path, {"name": "mock", "model": "mock-large"})
    conv = promptkit.open(path, "chat", variables={"user_name": "Ada"})
    assert (conv.provider, conv.model) == ("mock", "mock-large")
    conv = promptkit.open(path, "chat", variables={"user_name": "Ada"}, model="mock-small")
    assert conv.model == "mock-small"


def test_explicit_provider_beats_the_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    path = pack_with_provider(tmp_path, {"name": "openai", "model": "gpt-4o"})
    conv = promptkit.open(path, "chat", provider="mock", variables={"user_name": "Ada"})
    assert (conv.provider, conv.model) == ("mock", "mock-model")  # the pack's model is OpenAI's


def test_pack_model_only_infers_the_provider(tmp_path: Path) -> None:
    path = pack_with_provider(tmp_path, {"model": "llama3.2:1b"})
    conv = promptkit.open(path, "chat", variables={"user_name": "Ada"})
    assert (conv.provider, conv.model) == ("ollama", "llama3.2:1b")
    assert conv._binding.dialect.build_request(
        promptkit.engine.dialect.ModelRequest(model="m", system="", messages=())
    ).url == "http://localhost:11434/api/chat"


def test_ollama_host_without_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11500")
    binding = resolve_provider()
    assert binding.provider == "ollama"
    request = binding.dialect.build_request(
        promptkit.engine.dialect.ModelRequest(model="m", system="", messages=()))
    assert request.url == "http://127.0.0.1:11500/api/chat"
    assert "authorization" not in {k.lower() for k in request.headers}


def test_explicit_api_key_and_base_url_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-000000000000000000")
    binding = resolve_provider(provider="openai", api_key=KEY, base_url="http://127.0.0.1:9/v1")
    request = binding.dialect.build_request(
        promptkit.engine.dialect.ModelRequest(model="m", system="", messages=()))
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.url == "http://127.0.0.1:9/v1/chat/completions"


def test_compatible_server_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    binding = resolve_provider(provider="openai", base_url="http://127.0.0.1:8000/v1",
                               model="qwen2.5")
    assert binding.provider == "openai" and binding.model == "qwen2.5"
    for preset in ("vllm", "lmstudio", "llamacpp"):
        assert resolve_provider(provider=preset, model="local").provider == preset


def test_environment_keys_are_not_sent_to_an_explicit_base_url(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    binding = resolve_provider(provider="openai", base_url="http://127.0.0.1:9/v1")
    request = binding.dialect.build_request(
        promptkit.engine.dialect.ModelRequest(model="m", system="", messages=()))
    assert "authorization" not in request.headers
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    request = resolve_provider(provider="openai").dialect.build_request(
        promptkit.engine.dialect.ModelRequest(model="m", system="", messages=()))
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_a_base_url_alone_means_an_openai_compatible_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    binding = resolve_provider(base_url="http://127.0.0.1:8000/v1", model="qwen2.5")
    assert (binding.provider, binding.model) == ("openai", "qwen2.5")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert resolve_provider(model="qwen2.5").provider == "openai"
