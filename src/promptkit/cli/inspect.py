"""``promptkit inspect``: a pack's prompts with their variables, tools, parameters,
validators and evals."""

from __future__ import annotations

import json
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
            "validators": [_validator(v) for v in spec.validators],
            "evals": _evals(pack, spec),
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


def _validator(entry: Any) -> dict[str, Any]:
    params = dict(entry.get("params") or {})
    return {"type": entry.get("type"), "enabled": entry.get("enabled", True) is not False,
            "mode": "monitor" if entry.get("fail_on_violation", True) is False else "enforce",
            "direction": params.pop("direction", "output"), "params": params}


def _evals(pack: Any, spec: Any) -> list[dict[str, Any]]:
    chosen: dict[str, dict[str, Any]] = {}
    for level, entries in (("pack", pack.raw.get("evals") or ()),
                           ("prompt", spec.raw.get("evals") or ())):
        for entry in entries:
            item = {"id": entry.get("id"), "type": entry.get("type"),
                    "trigger": entry.get("trigger"), "level": level}
            if entry.get("trigger") in ("sample_turns", "sample_sessions"):
                item["sample_percentage"] = entry.get("sample_percentage", 5)
            chosen[str(entry.get("id"))] = item  # a prompt eval overrides a pack one by id
    return list(chosen.values())


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
        for v in prompt["validators"]:
            params = json.dumps(v["params"], ensure_ascii=False)
            state = "" if v["enabled"] else ", disabled"
            out(f"  validator {v['type']} ({v['mode']}, {v['direction']}{state}) {params}")
        for e in prompt["evals"]:
            sample = f" {e['sample_percentage']}%" if "sample_percentage" in e else ""
            out(f"  eval {e['id']}: {e['type']} ({e['trigger']}{sample}, {e['level']})")
    if info["fragments"]:
        out(f"\nfragments: {', '.join(info['fragments'])}")
    return 0
