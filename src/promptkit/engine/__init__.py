"""The engine: messages, chunks and the turn generator that runs one turn's tool loop, sans I/O.

``messages`` and ``chunks`` are the vocabulary (Message, ToolCall, StreamChunk, Response);
``dialect`` is the contract a provider dialect fulfils (requests out, round results in);
``turn`` is the generator that yields CallModel / Backoff / RunTools / Emit / Commit steps to a
driver; ``tool_round`` and ``arguments`` plan and check a round of tool calls; ``held`` keeps
calls waiting for approval or for the client; ``retry``, ``timeouts``, ``pricing`` and
``media`` are the policies and helpers a turn uses.

Pure: may import ``promptkit._errors``, ``promptkit._json`` and ``promptkit.pack``, never
asyncio, an HTTP client library, a store driver, the drivers, ``cli`` or ``server``.
"""
