"""``promptkit validate``: schema and semantic checks, ``file:line:col: path: message``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from promptkit._errors import PackNotFoundError, PackValidationError

__all__ = ["run_validate"]


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
        for warning in pack.warnings:
            where = f"{path}:{warning.line}:{warning.column}" if warning.line else path
            print(f"{where}: warning: {warning.path}: {warning.message}")
        print(f"{path}: ok ({len(pack.prompts)} prompt(s), {len(pack.tools)} tool(s))")
    return status
