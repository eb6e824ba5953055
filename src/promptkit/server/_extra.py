"""The ``serve`` extra: a clear ImportError when Starlette, uvicorn or ag-ui-protocol is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["SERVE_EXTRA_HINT", "require"]

SERVE_EXTRA_HINT = "install the serve extra: pip install 'promptkit-sdk[serve]'"


def require(module: str) -> ModuleType:
    """Import ``module`` (a dependency of the serve extra) or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"promptkit serve needs {module.split('.', maxsplit=1)[0]}: "
                          f"{SERVE_EXTRA_HINT}") from exc
