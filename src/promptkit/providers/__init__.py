"""Provider wire dialects, one pure module each, and choosing one for a conversation.

``openai_chat`` (and every OpenAI-compatible server), ``openai_responses``, ``anthropic``,
``gemini``, ``ollama``: each builds HTTP requests from a ``ModelRequest`` and decodes the
response bytes into chunks (``promptkit.engine.dialect`` is the contract). ``_select`` resolves
``provider=`` / the pack / the environment into a ``binding.Binding``; ``mock`` is the offline
provider, a faithful fake of the OpenAI Chat dialect. Dialects are imported only when used.

May import ``promptkit.engine``, the pure decoders of ``promptkit.transport`` and
``promptkit._errors``/``_json``; only ``_select`` creates HTTP transports (lazily).
"""
