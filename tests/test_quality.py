"""Tooling enforces taste: ruff and mypy --strict are clean, modules stay small, the README's
Python examples run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from support import REPO

PACKAGE = REPO / "src" / "promptkit"


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    assert path, f"{name} is not installed (pip install -e '.[test]')"
    return path


def test_ruff_is_clean() -> None:
    done = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean() -> None:
    done = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_module_is_over_600_lines() -> None:
    big = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 600}
    assert big == {}


def _readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples() -> None:
    assert _readme_python_blocks()


def clean_env() -> dict[str, str]:
    """The environment of a fresh machine: no key, no endpoint, no provider chosen."""
    from promptkit.providers._select import ENV_ORDER, PRESETS

    provider_vars = {v for p in PRESETS.values() for v in (*p.key_env, *p.base_url_env)}
    provider_vars |= {v for v, _ in ENV_ORDER}
    return {k: v for k, v in os.environ.items()
            if k not in provider_vars and not k.startswith("PROMPTKIT_")
            and not k.endswith(("_API_KEY", "_BASE_URL"))}


@pytest.mark.parametrize("index", range(len(_readme_python_blocks())))
def test_readme_examples_run(index: int, tmp_path: object) -> None:
    """Each README example runs as written, from the repository root, in a clean
    environment (nothing configured: the snippets say provider="mock" where they need one)."""
    code = _readme_python_blocks()[index]
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env=clean_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "a README example should show its result"


def test_readme_tools_example_runs_a_tool_round() -> None:
    code = next(block for block in _readme_python_blocks() if "@conv.tool" in block)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env=clean_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "['get_weather']" in done.stdout and "22.5" in done.stdout


def test_readme_quick_start_chat_command_runs_offline() -> None:
    """The set-up section's `promptkit chat ...` line, in a clean environment."""
    text = (REPO / "README.md").read_text()
    line = re.search(r"&& (promptkit chat [^\n]+)", text)
    assert line, "the README shows a chat command"
    args = line.group(1).split()[1:]
    done = subprocess.run([sys.executable, "-m", "promptkit.cli.main", *args], cwd=REPO,
                          input="Hello\n/exit\n", capture_output=True, text=True,
                          env=clean_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "offline mock provider" in done.stderr and "Mock response" in done.stdout
