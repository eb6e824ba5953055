"""A small stdio MCP server for tests/test_mcp.py (run as ``python tests/mcp_server_demo.py``).

Tools: ``add``, ``echo``, ``env`` (reads a variable), ``fail`` (an ``isError`` result),
``slow`` (sleeps), ``crash`` (the process dies mid-call), ``structured`` (structured output
only). Works with mcp 2.x (``MCPServer``) and 1.x (``FastMCP``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

try:
    from mcp.server.mcpserver import MCPServer as Server
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server
    from mcp.server.fastmcp.exceptions import ToolError

server: Any = Server("demo", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def env(name: str) -> str:
    """The value of an environment variable of the server process ("" if unset)."""
    return os.environ.get(name, "")


@server.tool()
def fail(message: str) -> str:
    """Always fails with ``message`` (an ``isError`` result)."""
    raise ToolError(message)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep (without blocking the server), then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds:g}"


@server.tool()
def crash() -> str:
    """Kill the server process in the middle of the call."""
    os.write(2, b"demo server: crashing on purpose\n")
    os._exit(3)


@server.tool(structured_output=True)
def structured(city: str) -> dict[str, Any]:
    """Weather as structured content."""
    return {"city": city, "temp_c": 21}


if __name__ == "__main__":
    server.run()
