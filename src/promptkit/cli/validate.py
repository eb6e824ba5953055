"""``promptkit validate``: schema and semantic checks, ``file:line:col: path: message``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from promptkit._errors import PackNotFoundError, PackValidationError

__all__ = ["check_issues", "run_validate"]


def check_issues(pack: Any) -> tuple[list[Any], list[Any]]:
    """The validators' and evals' problems: errors (the pack would not open) and warnings
    (unusable parameters, unknown eval types: skipped when it opens)."""
    from promptkit.checks.evals import eval_findings
    from promptkit.checks.guardrails import guardrail_findings
    from promptkit.checks.problems import Findings

    findings = Findings(pack)
    guardrail_findings(pack, findings)
    eval_findings(pack, findings)
    return findings.locator.sorted(findings.errors), findings.locator.sorted(findings.warnings)


def run_validate(paths: Sequence[str]) -> int:
    """Check each pack; exit 0 if all are valid, 1 if any has problems, 2 if unreadable."""
    from promptkit.pack.loading import load_pack

    status = 0
    for path in paths:
        try:
            pack = load_pack(path)
        except PackNotFoundError as exc:
            print(f"{path}: error: {exc.reason}", file=sys.stderr)
            status = max(status, 2)
            continue
        except PackValidationError as exc:
            for issue in exc.issues:
                where = f"{path}:{issue.line}:{issue.column}" if issue.line else path
                print(f"{where}: error: {issue.path}: {issue.message}")
            print(f"{path}: {len(exc.issues)} problem(s)", file=sys.stderr)
            status = max(status, 1)
            continue
        errors, warnings = check_issues(pack)
        if errors:
            for issue in errors:
                where = f"{path}:{issue.line}:{issue.column}" if issue.line else path
                print(f"{where}: error: {issue.path}: {issue.message}")
            print(f"{path}: {len(errors)} problem(s)", file=sys.stderr)
            status = max(status, 1)
            continue
        for warning in [*pack.warnings, *warnings]:
            where = f"{path}:{warning.line}:{warning.column}" if warning.line else path
            print(f"{where}: warning: {warning.path}: {warning.message}")
        print(f"{path}: ok ({len(pack.prompts)} prompt(s), {len(pack.tools)} tool(s))")
    return status
