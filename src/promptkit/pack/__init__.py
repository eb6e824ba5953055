"""Packs: reading and validating ``*.pack.json`` into frozen values, templates and variables.

``loading`` (JSON → :class:`~promptkit.pack.model.Pack`, every problem with its JSON path and
``line:column``, via ``positions``), ``model`` (the frozen values), ``template`` (compiled
``{{placeholders}}``), ``variables`` (typed, validated values per conversation).

``Pack.open`` / ``open_async`` / ``resume`` / ``resume_async`` reach the conversation drivers
through :func:`public`: the top-level package registers its lazy lookup of public names here
when it is imported, so ``pack.open("chat")`` is ``promptkit.open(pack, "chat")`` while this
layer imports nothing above it. (This module has no imports: ``import promptkit`` loads it.)

May import: ``promptkit._errors``, ``promptkit._json`` and the standard library (jsonschema
lazily). Nothing in ``promptkit`` above this layer.
"""

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `import promptkit` loads this module
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_lookup: "Callable[[str], Any] | None" = None
_found: "dict[str, Any]" = {}  # names already looked up (a conversation per request is common)


def register(lookup: "Callable[[str], Any]") -> None:
    """Install the function that returns a public name of ``promptkit`` (its ``__getattr__``)."""
    global _lookup
    _lookup = lookup


def public(name: str) -> "Any":
    """The public ``promptkit.<name>`` (``open``, ``open_async``, ``resume``, ``resume_async``),
    or ``_pack_from_json`` (the text loader ``Pack.from_json`` uses)."""
    try:
        return _found[name]
    except KeyError:
        pass
    if _lookup is None:  # cannot happen: importing this package runs promptkit/__init__.py first
        raise RuntimeError("promptkit is not initialised: import promptkit first")
    value = _found[name] = _lookup(name)
    return value
