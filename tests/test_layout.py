"""The package's shape: no import cycles (lazy and type-only imports included) and one-way layers.

The graph is read from the source with ``ast``, so it sees every import: module level,
inside functions, under ``TYPE_CHECKING``, ``importlib.import_module("...")`` and the top-level
package's lazy name table. ``docs/design.md`` ("Package layout") draws the same picture.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "promptkit"

# Which rooms each room may import (besides itself and the standard library). "root" is
# promptkit/__init__.py, the composition root: it may name everything, nothing may import it
# except the CLI (which uses the public API).
BASE = {"_errors", "_json", "_redact"}  # leaf utilities every room may use
ALLOWED: dict[str, set[str]] = {
    "_errors": {"_redact"},
    "_json": set(),
    "_redact": set(),
    "pack": BASE,
    "engine": BASE | {"pack"},
    "tools": BASE | {"engine", "pack"},
    "transport": BASE | {"engine"},
    "providers": BASE | {"engine", "transport"},
    "stores": BASE | {"engine"},
    "checks": BASE | {"engine", "pack"},
    "observe": BASE | {"engine", "pack"},
    "conversation": BASE | {"pack", "engine", "tools", "providers", "transport", "stores",
                            "checks", "observe"},
    "testing": BASE | {"engine", "providers", "transport"},
    "server": BASE | {"root", "pack", "engine", "conversation", "stores", "observe", "checks"},
    # cli -> providers: the mock fallback asks providers._select.nothing_configured whether
    # the environment names a provider, so the CLI and open() agree on "nothing configured"
    "cli": BASE | {"root", "pack", "engine", "tools", "conversation", "providers", "stores",
                   "checks", "observe", "server"},
    "root": BASE | {"pack", "engine", "tools", "conversation", "stores", "checks", "observe"},
}

# The one upward reference, for typing only: Pack.open's return annotations name the drivers
# (under TYPE_CHECKING; at run time Pack.open goes through promptkit.pack.openers). Every other
# type-only import counts like any import.
TYPE_ONLY_EXCEPTIONS = {
    ("promptkit.pack.model", "promptkit.conversation.sync_driver"),
    ("promptkit.pack.model", "promptkit.conversation.async_driver"),
}

# The pure core: no event loop, no HTTP client library, no sockets, no store driver.
PURE = {"pack", "engine"}
FORBIDDEN_IN_PURE = ("asyncio", "aiohttp", "httpx", "http.client", "urllib.request", "socket",
                     "ssl", "sqlite3", "redis", "concurrent.futures", "selectors")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    parts = module.split(".")
    return "root" if len(parts) == 1 else parts[1]


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return ((PACKAGE.parent / relative).with_suffix(".py").exists()
            or (PACKAGE.parent / relative / "__init__.py").exists())


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            found.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return found


def imports_of(path: Path, *, type_only: bool = True) -> tuple[set[str], set[str]]:
    """(promptkit modules, other modules) that ``path`` imports anywhere; ``type_only=False``
    leaves out the imports under ``TYPE_CHECKING``."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    internal: set[str] = set()
    external: set[str] = set()
    typing_only = set() if type_only else _type_checking_nodes(tree)

    def add(name: str) -> None:
        if name == "promptkit" or name.startswith("promptkit."):
            internal.add(name)
        else:
            external.add(name)

    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("promptkit"):
                add(target)
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                add(candidate if _is_module(candidate) else target)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            name = node.args[0].value
            add(f"promptkit{name}" if name.startswith(".") else name)
        elif (isinstance(node, ast.AnnAssign | ast.Assign) and path == PACKAGE / "__init__.py"
              and "_LAZY" in {getattr(target, "id", "") for target in
                              (node.targets if isinstance(node, ast.Assign) else [node.target])}
              and isinstance(node.value, ast.Dict)):
            for value in node.value.values:
                assert isinstance(value, ast.Constant)
                add(f"promptkit{value.value}")
    internal.discard(module)
    return internal, external


def graph() -> dict[str, set[str]]:
    """Every import edge, type-only ones included, less the listed exceptions."""
    edges = {module_name(p): imports_of(p)[0] for p in sorted(PACKAGE.rglob("*.py"))}
    for source, target in TYPE_ONLY_EXCEPTIONS:
        edges[source].discard(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_graph_sees_lazy_and_type_only_imports() -> None:
    edges = graph()
    lazy_only = imports_of(PACKAGE / "__init__.py", type_only=False)[0]
    assert "promptkit.conversation.sync_driver" in lazy_only  # the lazy name table
    assert "promptkit.pack" in edges["promptkit"]
    # a function-level import and a TYPE_CHECKING one
    assert "promptkit.tools.http" in edges["promptkit.conversation.core"]
    assert "promptkit.providers.binding" in edges["promptkit.conversation.core"]


def test_the_type_only_exceptions_are_type_only() -> None:
    for source, target in TYPE_ONLY_EXCEPTIONS:
        path = PACKAGE.parent / Path(*source.split(".")).with_suffix(".py")
        assert target in imports_of(path)[0]
        assert target not in imports_of(path, type_only=False)[0]


def test_find_cycle_reports_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_within_the_package() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_rooms_import_only_the_rooms_below_them() -> None:
    wrong = []
    for module, targets in graph().items():
        allowed = ALLOWED[room(module)] | {room(module)}
        wrong += [f"{module} -> {t}" for t in sorted(targets) if room(t) not in allowed]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_pure_core_imports_no_io_library() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if room(module) not in PURE:
            continue
        _, external = imports_of(path)
        wrong += [f"{module} imports {name}" for name in sorted(external)
                  if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_PURE)]
    assert not wrong, "\n".join(wrong)


def test_a_forbidden_import_would_be_caught(tmp_path: Path) -> None:
    """The checks above can fail: an engine module importing asyncio and the drivers."""
    source = "import asyncio\nfrom promptkit.conversation import core\n"
    path = PACKAGE / "engine" / "__layout_probe__.py"
    try:
        path.write_text(source)
        _, external = imports_of(path)
        assert "asyncio" in external
        edges = graph()
        assert room(next(iter(edges["promptkit.engine.__layout_probe__"]))) == "conversation"
        assert "conversation" not in ALLOWED["engine"]
    finally:
        path.unlink()


def test_at_most_twelve_private_modules_at_the_top_and_none_over_600_lines() -> None:
    top = [p.name for p in PACKAGE.glob("_*.py") if p.name != "__init__.py"]
    assert len(top) <= 12, top
    long = [f"{p.relative_to(PACKAGE)}: {n}" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600]
    assert not long, long


def test_every_room_says_what_lives_there_and_what_it_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert doc, f"{init.parent.name}/__init__.py has no docstring"
        if init.parent.name not in ("_data",):
            assert "import" in doc, f"{init.parent.name}/__init__.py does not say what it imports"


@pytest.mark.parametrize("chunk", [0, 1])
def test_each_module_imports_alone(chunk: int) -> None:
    """Each module imported first in a fresh module table (no hidden import-order cycle)."""
    modules = sorted(graph())[chunk::2]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'promptkit']:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
