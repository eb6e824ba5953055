"""Shared fixtures."""

from __future__ import annotations

import pytest
from hypothesis import settings

from support import Driver

# Property tests assert results, not speed: no per-example deadline (CI machines get busy).
settings.register_profile("promptkit", deadline=None)
settings.load_profile("promptkit")

PROVIDER_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                "GEMINI_API_KEY", "GOOGLE_API_KEY", "OLLAMA_HOST", "PROMPTKIT_PROVIDER",
                "OPENROUTER_API_KEY")


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up real credentials from the environment."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> Driver:
    return Driver(request.param)


# The serve tests need the serve extra (Starlette, uvicorn); without it they are not collected.
import importlib.util  # noqa: E402

collect_ignore_glob = [] if importlib.util.find_spec("starlette") else ["test_server_*.py"]
