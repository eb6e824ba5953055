"""Bytes on the wire: incremental SSE and NDJSON decoders (pure) and the HTTP transports.

``sse`` and ``ndjson`` turn bytes into events, however the bytes are split; ``http11`` is
HTTP/1.1 framing without I/O; ``sync_http`` (``http.client`` with a pool) and ``async_http``
with ``async_conn`` (asyncio sockets, a pool per loop) are the only modules that do network
I/O; ``mock`` answers requests in-process (the mock provider, tests).

May import ``promptkit.engine.dialect`` (the request a dialect builds) and ``promptkit._errors``.
"""
