"""Helpers for the guardrail and eval tests: small packs on disk, OpenAI SSE replies, and the
compat corpus (read through one path constant, so it can point at a vendored copy)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptkit.testing import Reply

# The compat corpus, vendored into the repository (tests/data/compat/, with its licence).
COMPAT_PACKS = Path(__file__).parent / "data" / "compat" / "packs"


def compat_pack(relative: str) -> Path:
    """A pack of the compat corpus, by its path under the corpus root."""
    return COMPAT_PACKS / relative


def write_pack(directory: Path, *, validators: Sequence[Any] = (), evals: Sequence[Any] = (),
               prompt_evals: Sequence[Any] = (), name: str = "guarded") -> Path:
    """A one-prompt pack (prompt ``chat``) written to ``directory``, for line numbers."""
    prompt: dict[str, Any] = {"id": "chat", "name": "Chat", "version": "1.0.0",
                              "system_template": "You are terse."}
    if validators:
        prompt["validators"] = list(validators)
    if prompt_evals:
        prompt["evals"] = list(prompt_evals)
    data: dict[str, Any] = {
        "$schema": "https://promptpack.org/schema/latest/promptpack.schema.json",
        "id": name.replace("_", "-"), "name": name, "version": "1.0.0",
        "template_engine": {"version": "v1", "syntax": "{{variable}}"},
        "prompts": {"chat": prompt},
    }
    if evals:
        data["evals"] = list(evals)
    path = directory / f"{name}.pack.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    payload = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def text_reply(deltas: Sequence[str], **options: Any) -> Reply:
    """An OpenAI Chat Completions stream sending ``deltas`` as content, one event each."""
    body = [event({"role": "assistant", "content": ""})]
    body += [event({"content": d}) for d in deltas]
    body.append(event({}, "stop"))
    body.append(b"data: [DONE]\n\n")
    return Reply(200, {"content-type": "text/event-stream"}, body, **options)
