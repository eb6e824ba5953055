"""Optional parts live behind extras: not in the base dependencies, imported only when used,
with an error naming the extra when missing; the README says which extra each part needs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~; \[]", item, maxsplit=1)[0].lower() for item in requirements}


def test_redis_is_an_extra_not_a_dependency() -> None:
    assert "redis" not in _names(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    assert _names(extras["redis"]) == {"redis"}
    assert "redis" in _names(extras["test"])  # so the suite still runs the Redis stores


@pytest.mark.parametrize("name", ["RedisStore", "AsyncRedisStore"])
def test_a_redis_store_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                            name: str) -> None:
    from promptkit import stores

    store_class = getattr(stores, name)
    for module in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'promptkit-sdk\[redis\]'") as caught:
        store_class("redis://127.0.0.1:1/0")
    assert caught.value.name == "redis"


def test_only_the_redis_stores_import_redis() -> None:
    code = ("import sys, promptkit, promptkit.stores\n"
            "from promptkit.stores import MemoryStore, SQLiteStore, RedisStore\n"
            "conv = promptkit.open('examples/hello.pack.json', 'chat', provider='mock',\n"
            "                      variables={'user_name': 'Ada'}, store=MemoryStore())\n"
            "conv.send('hi')\n"
            "print('redis' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_readme_names_the_extra_of_each_optional_part() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for extra in ("mcp", "redis", "bench", "otel", "serve"):
        assert extra in PROJECT["optional-dependencies"]
        assert f"pip install 'promptkit-sdk[{extra}]'" in readme, extra
    assert "pip install -e '.[realmodel]'" in readme
