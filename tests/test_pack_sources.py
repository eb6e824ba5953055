"""Packs from a mapping or from text (same validation and error paths as files), and bounded
file reads: devices, FIFOs and directories are refused, and the size is capped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import promptkit
from promptkit import Pack, PackNotFoundError, PackValidationError
from promptkit.pack.loading import DEFAULT_MAX_PACK_BYTES


def minimal(**prompt_fields: Any) -> dict[str, Any]:
    prompt = {"id": "chat", "name": "Chat", "version": "1.0.0",
              "system_template": "You are {{role}}.",
              "variables": [{"name": "role", "type": "string", "required": False,
                             "default": "helpful"}]}
    prompt.update(prompt_fields)
    return {
        "id": "demo",
        "name": "Demo",
        "version": "1.0.0",
        "template_engine": {"version": "v1", "syntax": "{{variable}}"},
        "prompts": {"chat": prompt},
    }


# --- load_pack(mapping) ------------------------------------------------------------------------


def test_load_pack_takes_a_mapping_and_builds_the_same_pack_as_the_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.pack.json"
    path.write_text(json.dumps(minimal()), "utf-8")
    from_file = promptkit.load_pack(path)
    from_mapping = promptkit.load_pack(minimal())
    assert from_mapping.prompts == from_file.prompts
    assert from_mapping.path is None and from_file.path == str(path)


def test_load_pack_takes_any_mapping_including_a_loaded_packs_raw() -> None:
    pack = promptkit.load_pack(minimal())
    again = promptkit.load_pack(pack.raw)  # a MappingProxyType at the top
    assert again.prompts == pack.prompts
    nested = OrderedDict(minimal())
    nested["prompts"] = MappingProxyType({"chat": MappingProxyType(minimal()["prompts"]["chat"])})
    assert promptkit.load_pack(nested).prompt("chat").system_template == "You are {{role}}."


def test_load_pack_copies_the_mapping() -> None:
    data = minimal()
    pack = promptkit.load_pack(data)
    data["prompts"]["chat"]["system_template"] = "changed"
    assert pack.prompt("chat").system_template == "You are {{role}}."


def test_a_mapping_with_schema_problems_reports_json_paths() -> None:
    data = minimal(variables=[{"name": "role", "type": "strin", "required": False}])
    del data["version"]
    with pytest.raises(PackValidationError) as caught:
        promptkit.load_pack(data)
    paths = {issue.path for issue in caught.value.issues}
    assert "$.prompts.chat.variables[0].type" in paths
    assert any("version" in issue.message for issue in caught.value.issues)
    assert all(issue.line is None for issue in caught.value.issues)
    assert "<dict>" in str(caught.value)


def test_a_mapping_holding_values_json_cannot_hold_is_refused_at_their_paths() -> None:
    data = minimal()
    data["prompts"]["chat"]["tools"] = {"a", "b"}  # a set
    data["prompts"]["chat"][1] = "x"  # a key that is not a string
    with pytest.raises(PackValidationError) as caught:
        promptkit.load_pack(data)
    by_path = {issue.path: issue.message for issue in caught.value.issues}
    assert "not a JSON value: set" in by_path["$.prompts.chat.tools"]
    assert "keys must be strings" in by_path["$.prompts.chat"]


def test_a_mapping_with_semantic_problems_reports_them_too() -> None:
    data = minimal(tools=["missing"])
    with pytest.raises(PackValidationError, match=r"\$\.prompts\.chat\.tools\[0\]: tool 'missing'"):
        promptkit.load_pack(data)


def test_load_pack_refuses_what_is_neither_a_path_nor_a_mapping() -> None:
    with pytest.raises(TypeError, match="a path or a mapping"):
        promptkit.load_pack(42)  # type: ignore[arg-type]


def test_a_pack_from_a_mapping_opens_conversations_in_both_drivers() -> None:
    pack = promptkit.load_pack(minimal())
    with pack.open("chat", provider="mock") as conv:
        assert conv.render_system_prompt() == "You are helpful."
        assert conv.send("hi").text


async def test_a_pack_from_a_mapping_opens_async_conversations() -> None:
    pack = promptkit.load_pack(minimal())
    async with pack.open_async("chat", provider="mock") as conv:
        assert (await conv.send("hi")).text


# --- Pack.from_json(text) ----------------------------------------------------------------------


def test_from_json_builds_a_pack_from_text() -> None:
    pack = Pack.from_json(json.dumps(minimal()))
    assert isinstance(pack, Pack)
    assert pack.prompt_names == ["chat"] and pack.path is None
    assert Pack.from_json(json.dumps(minimal()).encode()).prompts == pack.prompts


def test_from_json_reports_schema_problems_with_line_and_column() -> None:
    bad = [{"name": "role", "type": "strin", "required": False}]
    text = json.dumps(minimal(variables=bad), indent=2)
    with pytest.raises(PackValidationError) as caught:
        Pack.from_json(text, source="inline")
    (issue,) = caught.value.issues
    assert issue.path == "$.prompts.chat.variables[0].type"
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"strin"' in row)
    assert issue.line == line and issue.column is not None
    assert f"inline:{line}:" in str(caught.value)


def test_from_json_reports_a_syntax_error_at_its_position() -> None:
    with pytest.raises(PackValidationError) as caught:
        Pack.from_json('{\n  "id": "demo",\n  "name": \n}')
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (4, 1)


def test_from_json_works_in_a_fresh_interpreter() -> None:
    """``Pack.from_json`` reaches the loader through promptkit's lazy names, with nothing
    loaded beforehand."""
    code = textwrap.dedent(f"""
        from promptkit import Pack
        print(Pack.from_json({json.dumps(json.dumps(minimal()))}).id)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "demo"


def test_from_json_refuses_non_text() -> None:
    with pytest.raises(TypeError, match="JSON text"):
        Pack.from_json(minimal())  # type: ignore[arg-type]


# --- bounded reads -----------------------------------------------------------------------------


def _load_in_subprocess(path: str) -> subprocess.CompletedProcess[str]:
    """load_pack(path) in another interpreter under a memory limit, so a regression (reading
    without end, or blocking) fails this test instead of hanging or exhausting the machine."""
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        import promptkit
        try:
            promptkit.load_pack({path!r})
        except promptkit.PackNotFoundError as exc:
            print(exc)
            sys.exit(3)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused_without_reading_it() -> None:
    result = _load_in_subprocess("/dev/zero")
    assert result.returncode == 3, result.stderr
    assert "'/dev/zero'" in result.stdout and "character device" in result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pack.fifo"
    os.mkfifo(fifo)
    result = _load_in_subprocess(str(fifo))
    assert result.returncode == 3, result.stderr
    assert "FIFO" in result.stdout and str(fifo) in result.stdout
    with pytest.raises(PackNotFoundError, match="not a regular file"):
        promptkit.load_pack(fifo)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackNotFoundError, match="is a directory") as caught:
        promptkit.load_pack(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_a_file_just_over_the_default_cap_is_refused_naming_the_cap(tmp_path: Path) -> None:
    assert DEFAULT_MAX_PACK_BYTES == 16 * 1024 * 1024
    text = json.dumps(minimal())
    path = tmp_path / "big.pack.json"
    path.write_text(text + " " * (DEFAULT_MAX_PACK_BYTES - len(text)), "utf-8")
    assert promptkit.load_pack(path).id == "demo"  # exactly at the cap: read
    with path.open("a", encoding="utf-8") as file:
        file.write(" ")
    with pytest.raises(PackNotFoundError) as caught:
        promptkit.load_pack(path)
    message = str(caught.value)
    assert "16 MiB" in message and str(path) in message and "max_bytes" in message


def test_the_cap_can_be_set(tmp_path: Path) -> None:
    path = tmp_path / "demo.pack.json"
    path.write_text(json.dumps(minimal()), "utf-8")
    size = path.stat().st_size
    assert promptkit.load_pack(path, max_bytes=size).id == "demo"
    with pytest.raises(PackNotFoundError, match=f"{size - 1} bytes limit"):
        promptkit.load_pack(path, max_bytes=size - 1)
    path.write_text(json.dumps(minimal(description="x" * 2000)), "utf-8")
    with pytest.raises(PackNotFoundError, match="1 KiB limit"):
        promptkit.load_pack(path, max_bytes=1024)
