"""Bytes on the wire: incremental SSE and NDJSON decoders (pure) and the HTTP transports.

``sse`` and ``ndjson`` turn bytes into events, however the bytes are split; ``sync_http``
(``http.client`` with a pool) and ``async_http`` (aiohttp) are the only modules that import an
HTTP client library; ``mock`` answers requests in-process (the mock provider, tests).

May import ``promptkit.engine.dialect`` (the request a dialect builds) and ``promptkit._errors``.
"""
