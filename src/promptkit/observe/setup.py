"""How a conversation is observed: the ``open()`` options and :func:`promptkit.instrument`.

Nothing here imports ``opentelemetry``: a conversation loads ``promptkit.observe.otel`` (and so
the OpenTelemetry API) only when it has a tracer or meter provider, its own (``open(...,
tracer_provider=..., meter_provider=...)``) or the global ones once :func:`instrument` was
called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["ObserveOptions", "capture_content_default", "instrument", "instrumented",
           "require_otel", "uninstrument"]

_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True, slots=True)
class ObserveOptions:
    """A conversation's telemetry options (``None``: the global ones, if instrumented)."""

    tracer_provider: Any = None
    meter_provider: Any = None
    capture_content: bool | None = None

    def enabled(self) -> bool:
        return (self.tracer_provider is not None or self.meter_provider is not None
                or _global is not None)


_global: ObserveOptions | None = None


def capture_content_default() -> bool:
    """``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` turns content capture on."""
    return os.environ.get(_CAPTURE_ENV, "").strip().lower() == "true"


def instrument(tracer_provider: Any = None, meter_provider: Any = None, *,
               capture_content: bool | None = None) -> None:
    """Trace every conversation opened from now on (those opened with their own providers
    keep them): with the given providers, or OpenTelemetry's global ones.

    Needs ``pip install 'promptkit-sdk[otel]'``. ``capture_content=True`` records messages and
    tool arguments/results on the spans (off by default; also
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``).

        promptkit.instrument()   # after configuring opentelemetry's TracerProvider
    """
    global _global
    trace, metrics = require_otel()
    _global = ObserveOptions(tracer_provider or trace.get_tracer_provider(),
                             meter_provider or metrics.get_meter_provider(), capture_content)


def uninstrument() -> None:
    """Undo :func:`instrument` (conversations opened later are not traced)."""
    global _global
    _global = None


def require_otel() -> tuple[Any, Any]:
    """``(opentelemetry.trace, opentelemetry.metrics)``, or ImportError naming the extra."""
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:  # pragma: no cover - exercised without the extra installed
        raise ImportError("OpenTelemetry support needs the otel extra: "
                          "pip install 'promptkit-sdk[otel]'") from exc
    return trace, metrics


def instrumented() -> bool:
    return _global is not None
