"""The frozen values a loaded pack is made of: Pack, PromptSpec, ToolSpec, VariableSpec, ...

``promptkit.pack.loading`` builds them from JSON; everything else reads them. ``Pack.open`` and
its siblings reach the conversation drivers through the top-level package's public names
(``promptkit.pack.public``), so this layer never imports the layers built on it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from promptkit._errors import PromptNotFoundError, ValidationIssue
from promptkit.pack import public
from promptkit.pack.template import CompiledTemplate, compile_template

if TYPE_CHECKING:
    from promptkit.conversation.async_driver import AsyncConversation
    from promptkit.conversation.sync_driver import Conversation

__all__ = [
    "TOOL_CHOICE_MODES",
    "Pack",
    "PromptSpec",
    "ProviderHint",
    "ToolChoice",
    "ToolChoiceMode",
    "ToolPolicy",
    "ToolSpec",
    "VariableSpec",
    "VariableType",
    "VariableValidation",
]

VariableType = Literal["string", "number", "boolean", "object", "array"]
ToolChoiceMode = Literal["auto", "required", "none"]
#: a :data:`ToolChoiceMode`, or the key of one of the prompt's tools to force a call to it (an
#: extension to the PromptPack schema, which allows only the modes)
ToolChoice = ToolChoiceMode | str
TOOL_CHOICE_MODES: frozenset[str] = frozenset(("auto", "required", "none"))

def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def empty_tool_parameters() -> Mapping[str, Any]:
    return MappingProxyType({"type": "object", "properties": {}})


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderHint:
    """The pack's optional top-level ``"provider": {"name", "model"}`` block (an extension)."""

    name: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableValidation:
    """A variable's ``validation`` rules, checked whenever a value is set or used."""

    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableSpec:
    """A template variable a prompt declares: its type, whether it is required, its default."""

    name: str
    type: VariableType = "string"
    required: bool = False
    #: the pack's default as written in JSON (meaningful only when ``has_default``)
    default: Any = None
    has_default: bool = False
    description: str = ""
    example: Any = None
    validation: VariableValidation | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolPolicy:
    """How a prompt may use tools; the turn engine enforces it."""

    tool_choice: ToolChoice = "auto"
    max_rounds: int = 5
    max_tool_calls_per_turn: int = 10
    blocklist: tuple[str, ...] = ()

    @property
    def forced_tool(self) -> str | None:
        """The tool key ``tool_choice`` names, or ``None`` when it is a mode."""
        return None if self.tool_choice in TOOL_CHOICE_MODES else self.tool_choice


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """A tool the pack defines: its name, description and JSON Schema for arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=empty_tool_parameters)

    def json_schema(self) -> dict[str, Any]:
        """A fresh, JSON-serialisable copy of ``parameters`` (to put in a provider request)."""
        return copy.deepcopy(dict(self.parameters))


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptSpec:
    """One prompt of a pack: system template, variables, allowed tools, model parameters."""

    #: the key of the pack's ``prompts`` map (what ``open(path, name)`` takes)
    name: str
    id: str
    #: the prompt's human-readable ``name`` field
    display_name: str
    description: str = ""
    version: str = ""
    system_template: str
    variables: tuple[VariableSpec, ...] = ()
    #: names of the pack tools this prompt may use
    tools: tuple[str, ...] = ()
    tool_policy: ToolPolicy = field(default_factory=ToolPolicy)
    #: generation parameters present in the pack (temperature, max_tokens, top_p, top_k, ...)
    parameters: Mapping[str, Any] = field(default_factory=frozen)
    #: the ``validators`` entries as written
    validators: tuple[Mapping[str, Any], ...] = ()
    raw: Mapping[str, Any] = field(default_factory=frozen)
    #: ``system_template`` parsed once, for rendering every turn
    template: CompiledTemplate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", compile_template(self.system_template))


@dataclass(frozen=True, kw_only=True)
class Pack:
    """A loaded, validated PromptPack. Look prompts up with :meth:`prompt`."""

    id: str
    name: str
    version: str
    description: str = ""
    prompts: Mapping[str, PromptSpec]
    tools: Mapping[str, ToolSpec] = field(default_factory=frozen)
    fragments: Mapping[str, str] = field(default_factory=frozen)
    provider: ProviderHint | None = None
    #: absolute path of the file it was loaded from (None when loaded from a string or dict)
    path: str | None = None
    #: the parsed JSON document (top level read-only)
    raw: Mapping[str, Any] = field(default_factory=frozen)
    #: problems worth knowing that do not stop the pack from working
    warnings: tuple[ValidationIssue, ...] = ()

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "<string>",
                  validate: bool = True) -> Pack:
        """Parse and validate pack JSON text (as ``load_pack`` does a file): problems carry
        their JSON path and ``line:column``; ``source`` names the text in messages."""
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8-sig")
        if not isinstance(text, str):
            raise TypeError(f"Pack.from_json() takes JSON text, not {type(text).__name__}")
        # through promptkit's lazy names: pack.loading imports this module
        loaded: Pack = public("_pack_from_json")(text, source=source, validate=validate)
        return loaded

    def prompt(self, name: str) -> PromptSpec:
        """The prompt under ``name`` in the ``prompts`` map, or PromptNotFoundError."""
        try:
            return self.prompts[name]
        except KeyError:
            raise PromptNotFoundError(name, sorted(self.prompts), pack_id=self.id) from None

    @property
    def prompt_names(self) -> list[str]:
        """The names ``open`` accepts, sorted."""
        return sorted(self.prompts)

    def open(self, prompt: str, **options: Any) -> Conversation:
        """Open a conversation with one of this pack's prompts; options as :func:`promptkit.open`.

        Loading once and opening many conversations skips re-reading and re-validating.
        """
        opened: Conversation = public("open")(self, prompt, **options)
        return opened

    def open_async(self, prompt: str, **options: Any) -> AsyncConversation:
        """The asyncio twin of :meth:`open`."""
        opened: AsyncConversation = public("open_async")(self, prompt, **options)
        return opened

    def resume(self, conversation_id: str, prompt: str, **options: Any) -> Conversation:
        """Continue a stored conversation with one of this pack's prompts (promptkit.resume)."""
        resumed: Conversation = public("resume")(conversation_id, self, prompt, **options)
        return resumed

    async def resume_async(self, conversation_id: str, prompt: str,
                           **options: Any) -> AsyncConversation:
        """The asyncio twin of :meth:`resume`."""
        resumed: AsyncConversation = await public("resume_async")(
            conversation_id, self, prompt, **options)
        return resumed
