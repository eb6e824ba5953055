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


@pytest.mark.parametrize("index", range(len(_readme_python_blocks())))
def test_readme_examples_run(index: int, tmp_path: object) -> None:
    """Each README example runs offline against the mock provider."""
    code = _readme_python_blocks()[index]
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["PROMPTKIT_PROVIDER"] = "mock"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "a README example should show its result"
