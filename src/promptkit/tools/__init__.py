"""Tools the model can call: handler registration, schemas from signatures, HTTP and MCP tools.

``registry`` (name → handler entries, built once per function), ``signature`` (a typed Python
function → a JSON Schema), ``http`` (:class:`~promptkit.tools.http.HTTPTool`, with its SSRF
guard), ``mcp`` (stdio MCP servers as tools). What a tool *is* to a turn, and how a round of
calls is planned, lives in ``promptkit.engine.tool_round``.

May import ``promptkit.engine`` and ``promptkit._errors`` (and, lazily, the ``mcp`` extra);
never the drivers, ``cli`` or ``server``.
"""
