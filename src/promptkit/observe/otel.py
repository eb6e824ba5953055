"""OpenTelemetry spans and metrics for turns, model calls and tool calls (extra ``otel``).

The only module of promptkit that imports ``opentelemetry`` (the API package; any SDK or
exporter the application configures does the rest). ``watch.TurnWatch`` decides what to
record; :class:`Telemetry` holds the tracer and the instruments of one pair of providers and
makes every call safe: an exporter or SDK that raises is logged and the turn goes on.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from promptkit.observe import logs, setup
from promptkit.observe import semconv as sc
from promptkit.observe.setup import ObserveOptions, require_otel

__all__ = ["Telemetry", "continue_trace", "telemetry_for"]

_SCOPE = "promptkit"


_cache: dict[tuple[int, int, bool], Telemetry] = {}
_MAX_TELEMETRY = 64  # distinct provider pairs kept (an application has one or two)


def telemetry_for(options: ObserveOptions) -> Telemetry:
    """The (shared) Telemetry of these options, resolved against :func:`instrument`'s: a
    conversation per request costs no new tracer or instruments."""
    default = setup._global
    tracer_provider = options.tracer_provider
    meter_provider = options.meter_provider
    capture = options.capture_content
    if default is not None:
        tracer_provider = tracer_provider or default.tracer_provider
        meter_provider = meter_provider or default.meter_provider
        if capture is None:
            capture = default.capture_content
    if capture is None:
        capture = setup.capture_content_default()
    key = (id(tracer_provider), id(meter_provider), bool(capture))
    found = _cache.get(key)
    if found is None or found.options.tracer_provider is not tracer_provider \
            or found.options.meter_provider is not meter_provider:
        if len(_cache) >= _MAX_TELEMETRY:  # providers made per conversation: keep it bounded
            _cache.clear()
        found = _cache[key] = Telemetry(ObserveOptions(tracer_provider, meter_provider,
                                                       capture))
    return found


@contextlib.contextmanager
def continue_trace(headers: Mapping[str, str]) -> Iterator[None]:
    """While inside, the trace a request's headers carry (W3C ``traceparent``/``tracestate``,
    or whatever propagators the application configured) is the current context, so a turn
    planned then (``conversation.stream()``) is a child span of the caller's. Does nothing,
    and imports nothing, unless the request has a ``traceparent`` and OpenTelemetry is already
    loaded (an application that does not trace has nothing to continue)."""
    if "traceparent" not in headers or "opentelemetry" not in sys.modules:
        yield
        return
    try:
        from opentelemetry import context, propagate

        token = context.attach(propagate.extract(headers))
    except Exception as exc:  # a broken propagator must not fail the request
        logs.handler_failed(continue_trace, "the request's trace context", exc)
        yield
        return
    try:
        yield
    finally:
        context.detach(token)


#: the metric attributes of a model call: (provider, request model, host, port, response
#: model, error type)
CallKey = tuple[str, str, str | None, int | None, str | None, str | None]
_MAX_CALL_KEYS = 256


@functools.cache
def _version() -> str:
    """promptkit's version, for the instrumentation scope."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("promptkit-sdk")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def _epoch_ns(monotonic: float | None) -> int | None:
    """A ``time.monotonic()`` instant as the epoch nanoseconds spans want."""
    if monotonic is None:
        return None
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


class Telemetry:
    """A tracer and the GenAI client histograms, for the spans a TurnWatch opens and ends."""

    def __init__(self, options: ObserveOptions) -> None:
        trace, metrics = require_otel()
        from opentelemetry import context

        self._trace = trace
        self._context = context
        self.options = options
        self.capture_content = bool(options.capture_content)
        self._status_error = trace.Status(trace.StatusCode.ERROR)
        provider = options.tracer_provider or trace.get_tracer_provider()
        scope_version = _version()
        self.tracer = provider.get_tracer(_SCOPE, scope_version)
        meter_provider = options.meter_provider or metrics.get_meter_provider()
        meter = meter_provider.get_meter(_SCOPE, scope_version)
        self.token_usage = meter.create_histogram(
            sc.GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=sc.TOKEN_BUCKETS)
        self.duration = meter.create_histogram(
            sc.GEN_AI_CLIENT_OPERATION_DURATION, unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS)
        self._evals: dict[str, Any] = {}
        self._meter = meter
        self._call_attributes: dict[CallKey, tuple[dict[str, Any], ...]] = {}

    def current_context(self) -> Any:
        """The caller's context now (its open span parents the turn's span)."""
        try:
            return self._context.get_current()
        except Exception as exc:
            logs.handler_failed(self, "context", exc)
            return None

    def start_span(self, name: str, parent: Any, attributes: dict[str, Any], *,
                   start: float | None = None, child_of_span: bool = False,
                   client: bool = False) -> Any:
        """Start a span under ``parent`` (a context, or a span with ``child_of_span``)."""
        try:
            trace = self._trace
            context = parent
            if child_of_span:
                context = None if parent is None else trace.set_span_in_context(parent)
            kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
            return self.tracer.start_span(name, context=context, kind=kind,
                                          attributes=attributes, start_time=_epoch_ns(start))
        except Exception as exc:
            logs.handler_failed(self, f"span {name}", exc)
            return None

    def end_span(self, span: Any, attributes: dict[str, Any], error_type: str | None,
                 description: str | None = None) -> None:
        """Set the closing attributes (``error.type`` and ERROR status on failure), end it."""
        if span is None:
            return
        try:
            if attributes:
                span.set_attributes(attributes)
            if error_type is not None:
                span.set_attribute(sc.ERROR_TYPE, error_type)
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                   description or error_type))
            span.end()
        except Exception as exc:
            logs.handler_failed(self, "span end", exc)

    def record_call(self, key: CallKey, *, duration: float, input_tokens: int | None,
                    output_tokens: int | None) -> None:
        """The metrics of one model call, its attributes from ``key``. (Time to first chunk is
        a span attribute, not a third histogram: each record costs the SDK about as much as a
        span attribute set, and the conventions list it as optional.)"""
        try:
            found = self._call_attributes.get(key)
            if found is None:
                found = self._metric_attributes(key)
            self.duration.record(duration, found[0])
            if input_tokens is not None:
                self.token_usage.record(input_tokens, found[1])
            if output_tokens is not None:
                self.token_usage.record(output_tokens, found[2])
        except Exception as exc:
            logs.handler_failed(self, "metrics", exc)

    def _metric_attributes(self, key: CallKey) -> tuple[dict[str, Any], ...]:
        """The attribute sets of a call's duration, input and output token records, made once
        per distinct ``key`` (the SDK copies what it is given, so they are shared)."""
        provider, model, host, port, response_model, error_type = key
        attributes: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.CHAT,
                                      sc.GEN_AI_PROVIDER_NAME: provider,
                                      sc.GEN_AI_REQUEST_MODEL: model}
        if host:
            attributes[sc.SERVER_ADDRESS] = host
        if port:
            attributes[sc.SERVER_PORT] = port
        if response_model is not None:
            attributes[sc.GEN_AI_RESPONSE_MODEL] = response_model
        if error_type is not None:
            attributes[sc.ERROR_TYPE] = error_type
        found = (attributes, {**attributes, sc.GEN_AI_TOKEN_TYPE: "input"},
                 {**attributes, sc.GEN_AI_TOKEN_TYPE: "output"})
        if len(self._call_attributes) >= _MAX_CALL_KEYS:
            self._call_attributes.clear()
        self._call_attributes[key] = found
        return found

    def record_eval(self, result: Any, prompt_name: str) -> None:
        """An eval's score (or pass/fail as 1/0) on its metric: a histogram named by the
        eval's ``metric`` (``promptkit.eval`` when it has none)."""
        try:
            metric = getattr(result, "metric", None)
            name = getattr(metric, "name", None) or (metric if isinstance(metric, str)
                                                     else sc.PROMPTKIT_EVAL_METRIC)
            instrument = self._evals.get(name)
            if instrument is None:
                instrument = self._evals[name] = self._meter.create_histogram(
                    name, unit="1", description="promptkit eval score")
            score = getattr(result, "score", None)
            value = float(score) if isinstance(score, int | float) else \
                float(bool(getattr(result, "passed", False)))
            instrument.record(value, {"promptkit.eval.id": str(getattr(result, "id", "")),
                                      sc.PROMPTKIT_PROMPT_NAME: prompt_name})
        except Exception as exc:
            logs.handler_failed(self, "eval metric", exc)
