"""Every real pack in the shared compatibility corpus loads, validates and renders.

The corpus (PromptKit and promptpack-python pack files, Apache-2.0) is vendored in
``tests/data/compat/`` with its README, licence, NOTICE and provenance, so a clone alone runs
every test here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from promptkit._errors import MissingVariableError
from promptkit.pack.loading import load_pack
from promptkit.pack.model import PromptSpec, VariableSpec
from promptkit.pack.template import compile_template, stringify
from promptkit.pack.variables import VariableSet, check_value

COMPAT = Path(__file__).resolve().parent / "data" / "compat"
CORPUS = COMPAT / "packs"
PACKS = sorted(CORPUS.rglob("*.json"))

# Prompts whose templates use placeholders they do not declare: the Go runtime fills them from
# a workflow (workflow_context), per-send JSON input (input) or variable providers
# (current_month, current_year). They load with a warning and need the values at runtime.
UNDECLARED = {
    ("promptkit/sdk/examples/hitl/hitl-workflow.pack.json", "confirmation"): {"workflow_context"},
    ("promptkit/sdk/examples/json-function/research.pack.json", "plan"): {"input"},
    ("promptkit/sdk/examples/variables/assistant.pack.json", "assistant"):
        {"current_month", "current_year"},
}


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(CORPUS)) for path in paths]


def sample_value(variable: VariableSpec) -> str:
    """A value that satisfies the variable's type and validation rules."""
    rules = variable.validation
    if rules is not None and rules.enum:
        candidate = stringify(rules.enum[0]) or ""
    elif variable.type == "number":
        low = rules.minimum if rules is not None else None
        high = rules.maximum if rules is not None else None
        candidate = str(low if low is not None else high if high is not None else 1)
    elif variable.type == "boolean":
        candidate = "true"
    elif variable.type in ("object", "array"):
        candidate = "{}" if variable.type == "object" else "[]"
    elif isinstance(variable.example, str):
        candidate = variable.example
    else:
        size = max(rules.min_length or 1, 1) if rules is not None else 1
        candidate = "x" * size
    return check_value(variable, candidate)  # fails loudly if no valid value was found


def test_corpus_is_complete() -> None:
    assert len(PACKS) == 42


def test_corpus_carries_its_licence_and_provenance() -> None:
    assert "Apache License" in (COMPAT / "LICENSE").read_text("utf-8")
    notice = (COMPAT / "NOTICE").read_text("utf-8")
    assert "AltairaLabs/PromptKit" in notice and "AltairaLabs/promptpack-python" in notice
    provenance = (COMPAT / "PROVENANCE.md").read_text("utf-8")
    assert "86d9f367" in provenance and "c78e36bd" in provenance
    assert (COMPAT / "README.md").is_file()


def test_no_test_reads_files_outside_the_repository() -> None:
    """A clone alone runs every test: nothing refers to the shared directory beside it."""
    here = Path(__file__).resolve().parent
    outside = ('/ "shared"', "/work/shared", "../shared", "parents[2]")
    offenders = [f"{path.name}: {needle}" for path in sorted(here.glob("*.py"))
                 if path.name != Path(__file__).name
                 for needle in outside if needle in path.read_text("utf-8")]
    assert not offenders


@pytest.mark.parametrize("path", PACKS, ids=_ids(PACKS))
def test_pack_loads_and_every_prompt_renders(path: Path) -> None:
    pack = load_pack(path)
    assert pack.prompts
    for warning in pack.warnings:
        assert "is not a declared variable" in warning.message, warning
    for name, prompt in pack.prompts.items():
        assert pack.prompt(name) is prompt
        undeclared = UNDECLARED.get((path.relative_to(CORPUS).as_posix(), name), set())
        _check_prompt(prompt, pack.fragments, undeclared)


def _check_prompt(prompt: PromptSpec, fragments: Mapping[str, str], undeclared: set[str]) -> None:
    required = {v.name: sample_value(v) for v in prompt.variables if v.required}
    declared = {v.name for v in prompt.variables}
    names = prompt.template.all_names(fragments)
    assert {n for n in names if re.split(r"[.\[]", n, maxsplit=1)[0] not in declared} == undeclared

    variables = VariableSet(prompt.variables, required)
    if undeclared:
        with pytest.raises(MissingVariableError) as caught:
            variables.resolve(prompt.template, fragments, prompt.name)
        assert set(caught.value.names) == undeclared
        variables.set_many({name: f"<{name}>" for name in undeclared})
    rendered = variables.resolve(prompt.template, fragments, prompt.name)
    leftover = compile_template(rendered)
    assert not leftover.names and not leftover.fragment_refs, rendered
    for value in required.values():
        assert value in rendered


@pytest.mark.parametrize("path", PACKS, ids=_ids(PACKS))
def test_pack_loads_without_validation_too(path: Path) -> None:
    assert load_pack(path, validate=False).prompts.keys() == load_pack(path).prompts.keys()
