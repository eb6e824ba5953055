"""Observability: typed events (``conv.on``), the ``promptkit`` logger tree, OpenTelemetry.

``events`` holds :class:`Event`, the event names and the per-conversation hub that calls the
handlers; ``logs`` the logger tree, ``PROMPTKIT_LOG`` and the log lines (every one redacted by
``promptkit._redact.redact``); ``watch`` the turn observer the engine reports its steps to
(``engine/observer.py``) and that fans them out to events, logs and traces; ``setup`` the
options and ``promptkit.instrument()``; ``otel`` the spans and metrics (the only module that
imports ``opentelemetry``, loaded only when a tracer or meter provider is configured);
``semconv`` the GenAI semantic-convention names.

May import ``promptkit.engine``, ``promptkit.pack`` and the leaf utilities (``_errors``,
``_redact``); never the drivers, ``cli`` or ``server``. ``conversation/`` wires it in.
"""
