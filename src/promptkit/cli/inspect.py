"""``promptkit inspect``: a pack's prompts with their variables, tools and parameters."""

from __future__ import annotations

import sys
from typing import Any

from promptkit._errors import PackError
from promptkit.cli._session import error_line, report_error
from promptkit.cli._terminal import safe_json, safe_text

__all__ = ["describe", "run_inspect"]


def describe(pack: Any) -> dict[str, Any]:
    """A JSON-able summary of a pack."""
    prompts = {}
    for name, spec in pack.prompts.items():
        prompts[name] = {
            "description": spec.description,
            "version": spec.version,
            "variables": [
                {"name": v.name, "type": v.type, "required": v.required,
                 **({"default": v.default} if v.has_default else {}),
                 **({"description": v.description} if v.description else {})}
                for v in spec.variables
            ],
            "tools": list(spec.tools),
            "parameters": dict(spec.parameters),
            "tool_policy": {"tool_choice": spec.tool_policy.tool_choice,
                            "max_rounds": spec.tool_policy.max_rounds},
        }
    return {
        "id": pack.id, "name": pack.name, "version": pack.version,
        "provider": None if pack.provider is None else
        {"name": pack.provider.name, "model": pack.provider.model},
        "prompts": prompts,
        "tools": {name: {"description": t.description, "parameters": dict(t.parameters)}
                  for name, t in pack.tools.items()},
        "fragments": sorted(pack.fragments),
    }


def _issues(exc: PackError) -> dict[str, Any]:
    issues = getattr(exc, "issues", None)
    if not issues:
        return {}
    return {"issues": [{"path": i.path, "message": i.message, "line": i.line,
                        "column": i.column} for i in issues]}


def _safe_print(text: str = "") -> None:
    sys.stdout.write(safe_text(text) + "\n")


def run_inspect(path: str, *, as_json: bool) -> int:
    from promptkit.pack.loading import load_pack

    try:
        pack = load_pack(path)
    except PackError as exc:
        if as_json:  # a machine reading stdout gets an answer it can parse
            print(safe_json({"error": {"type": type(exc).__name__,
                                       "message": error_line(exc).partition(": ")[2],
                                       **_issues(exc)}}, indent=2))
        return report_error(exc)
    info = describe(pack)
    if as_json:
        print(safe_json(info, indent=2))
        return 0
    out = _safe_print  # pack text is shown without terminal controls
    out(f"{info['name']} ({info['id']} v{info['version']})")
    if info["provider"]:
        out(f"  provider: {info['provider']['name'] or '-'} / {info['provider']['model'] or '-'}")
    for name, prompt in info["prompts"].items():
        out(f"\nprompt {name}" + (f" — {prompt['description']}" if prompt["description"] else ""))
        for var in prompt["variables"]:
            flag = "required" if var["required"] else f"default {var.get('default')!r}"
            out(f"  var  {var['name']}: {var['type']} ({flag})")
        for tool in prompt["tools"]:
            out(f"  tool {tool}")
        if prompt["parameters"]:
            params = ", ".join(f"{k}={v}" for k, v in prompt["parameters"].items())
            out(f"  parameters: {params}")
    if info["fragments"]:
        out(f"\nfragments: {', '.join(info['fragments'])}")
    return 0
