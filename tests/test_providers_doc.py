"""docs/providers.md tells the truth: its presets table matches the code, every provider and
option it names can be opened (sync and async, no network), requests go where it says, and
its code examples run."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import promptkit
from promptkit.engine.dialect import ModelRequest
from promptkit.engine.messages import Message
from promptkit.providers._select import ENV_ORDER, PRESETS

from support import PACKS, REPO

DOC = (REPO / "docs" / "providers.md").read_text("utf-8")
HELLO = PACKS / "hello.pack.json"
VARS = {"user_name": "Ada"}

# the dialect column's words → the dialect class a conversation gets
DIALECTS = {"OpenAI Chat": "OpenAIChatDialect", "Anthropic Messages": "AnthropicDialect",
            "Gemini": "GeminiDialect", "Ollama": "OllamaDialect", "mock": "OpenAIChatDialect",
            "OpenAI Responses": "OpenAIResponsesDialect"}
PRESET_DIALECT = {"openai_chat": "OpenAI Chat", "anthropic": "Anthropic Messages",
                  "gemini": "Gemini", "ollama": "Ollama", "mock": "mock"}


def section(title: str) -> str:
    start = DOC.index(f"\n{title}\n")
    end = DOC.find("\n## ", start + len(title) + 2)
    return DOC[start:end if end >= 0 else len(DOC)]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first markdown table in ``text``, as stripped cells."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


PRESET_ROWS = {ticked(row[0])[0]: row for row in table_rows(section("## Presets"))}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, base URL or provider from the machine running the tests."""
    names = {variable for variable, _ in ENV_ORDER} | {"PROMPTKIT_PROVIDER",
                                                       "PROMPTKIT_MOCK_RESPONSES"}
    for preset in PRESETS.values():
        names |= set(preset.key_env) | set(preset.base_url_env)
    for name in names:
        monkeypatch.delenv(name, raising=False)


def test_the_presets_table_lists_every_preset_and_only_them() -> None:
    assert sorted(PRESET_ROWS) == sorted(PRESETS)


def test_the_list_of_known_providers_is_every_preset() -> None:
    sentence = DOC[DOC.index("listing\nthe known ones:"):]
    sentence = sentence[:sentence.index(".")]
    assert ticked(sentence) == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_presets_row_matches_the_code(name: str) -> None:
    _, dialect, base_url, keys, base_env, model, required = PRESET_ROWS[name]
    preset = PRESETS[name]
    assert dialect.startswith(PRESET_DIALECT[preset.dialect])
    if preset.dialect != "mock":
        assert ticked(base_url) == ([preset.base_url] if preset.base_url else [])
    assert ticked(keys) == list(preset.key_env)
    assert ticked(base_env) == list(preset.base_url_env)
    assert ticked(model) == ([preset.default_model] if preset.default_model else [])
    assert required == ("yes" if preset.key_required else "no")


def open_options(name: str) -> dict[str, Any]:
    """What opening ``name`` needs beyond ``provider=`` and ``api_key=``, read from its row."""
    _, _, base_url, _, _, model, _ = PRESET_ROWS[name]
    options: dict[str, Any] = {}
    if not ticked(model):
        options["model"] = "test-model"
    if not ticked(base_url) and name != "mock":
        options["base_url"] = "https://example.openai.azure.com"
    return options


def apis(name: str) -> list[str | None]:
    """The ``api=`` values the row names (``None``: the default)."""
    return [None, *re.findall(r'api="(\w+)"', PRESET_ROWS[name][1])]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_provider_and_api_the_doc_names_can_be_opened(name: str) -> None:
    for api in apis(name):
        dialect_words = PRESET_ROWS[name][1] if api is None else "OpenAI Responses"
        expected = next(cls for words, cls in DIALECTS.items() if dialect_words.startswith(words))
        options = {**open_options(name), "api": api}
        with promptkit.open(HELLO, "chat", provider=name, api_key="test", variables=VARS,
                            **options) as conv:
            assert conv.provider == name
            assert type(conv._binding.dialect).__name__ == expected

        async def open_async(options: dict[str, Any] = options) -> str:
            async with promptkit.open_async(HELLO, "chat", provider=name, api_key="test",
                                            variables=VARS, **options) as conv:
                return type(conv._binding.dialect).__name__

        assert asyncio.run(open_async()) == expected


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if len(apis(n)) == 1
                                         and n != "mock"))  # the mock ignores api=
def test_providers_the_doc_gives_no_responses_api_refuse_it(name: str) -> None:
    assert sorted(n for n in PRESETS if len(apis(n)) == 1) == ["anthropic", "gemini", "mock",
                                                               "ollama"]
    with pytest.raises(promptkit.ProviderNotConfiguredError, match="responses"):
        promptkit.open(HELLO, "chat", provider=name, api_key="test", variables=VARS,
                       api="responses", **open_options(name))


# the dialect column's words → (provider and api to open it with)
ROUTES = {"OpenAI Chat": ("openai", None), "OpenAI Responses": ("openai", "responses"),
          "Anthropic Messages": ("anthropic", None), "Gemini": ("gemini", None),
          "Ollama": ("ollama", None)}


def test_requests_go_where_the_doc_says() -> None:
    rows = table_rows(section("## Presets")[section("## Presets").index("Where the requests"):])
    assert sorted(row[0] for row in rows) == sorted(ROUTES)
    for words, cell in rows:
        provider, api = ROUTES[words]
        base = PRESETS[provider].base_url
        model = PRESETS[provider].default_model
        conv = promptkit.open(HELLO, "chat", provider=provider, api_key="test", api=api,
                              variables=VARS)
        request = conv._binding.dialect.build_request(ModelRequest(
            model=model, system="", messages=[Message(role="user", text="hi")]))
        conv.close()
        expected = ticked(cell)[0].removeprefix("POST ")
        assert request.url == expected.replace("<base>", base).replace("<model>", model), words


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_openai_compatible_examples_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "test")  # the example says: or api_key=
    monkeypatch.chdir(REPO)
    (block,) = python_blocks(section("## Any OpenAI-compatible server"))
    opened: list[Any] = []
    real_open = promptkit.open

    def recording_open(*args: Any, **kwargs: Any) -> Any:
        conv = real_open(*args, **kwargs)
        opened.append(conv)
        return conv

    monkeypatch.setattr(promptkit, "open", recording_open)
    exec(compile(block, "providers.md", "exec"), {})
    providers = [conv.provider for conv in opened]
    assert {"vllm", "llamacpp", "lmstudio", "openrouter", "azure", "openai"} <= set(providers)
    assert any(type(c._binding.dialect).__name__ == "OpenAIResponsesDialect" for c in opened)
    for conv in opened:
        conv.close()


def test_the_doc_no_longer_says_native_dialects_are_missing() -> None:
    lowered = DOC.lower()
    assert "not implemented yet" not in lowered
    assert "speaks one wire dialect" not in lowered
    for needed in ('api="responses"', "`azure`", "Anthropic Messages", "Gemini", "Ollama"):
        assert needed in DOC, needed


def test_the_guide_links_to_sections_that_exist() -> None:
    guide = (REPO / "docs" / "guide.md").read_text("utf-8")
    headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", DOC, flags=re.M)}
    for anchor in re.findall(r"providers\.md#([\w-]+)", guide):
        assert anchor in headings, anchor

