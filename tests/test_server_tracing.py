"""``promptkit serve`` continues the caller's trace: a request carrying W3C ``traceparent``
gets its turn's span as a child of the caller's span, on every streaming endpoint; without the
header (or with a malformed one) the turn starts a trace of its own."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptkit.server import create_app

from serve_support import HELLO, LiveServer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def traced() -> Iterator[tuple[LiveServer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(HELLO, provider="mock", open_options={"tracer_provider": provider})
    with LiveServer(app) as server:
        yield server, exporter


def post(url: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, body=json.dumps(body).encode(),
                 headers={"content-type": "application/json", **headers})
    response = conn.getresponse()
    result = response.status, response.read()
    conn.close()
    return result


def turn_span(exporter: InMemorySpanExporter) -> Any:
    [span] = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    return span


def native_turn(url: str, headers: dict[str, str]) -> None:
    status, body = post(url, "/v1/conversations",
                        {"prompt": "chat", "variables": {"user_name": "Ada"}}, {})
    assert status == 201, body
    conversation = json.loads(body)["id"]
    status, body = post(url, f"/v1/conversations/{conversation}/messages",
                        {"content": "hi"}, headers)
    assert status == 200 and b"done" in body, body


def openai_turn(url: str, headers: dict[str, str]) -> None:
    status, body = post(url, "/v1/chat/completions",
                        {"model": "chat", "stream": True, "variables": {"user_name": "Ada"},
                         "messages": [{"role": "user", "content": "hi"}]}, headers)
    assert status == 200 and b"[DONE]" in body, body


def agui_turn(url: str, headers: dict[str, str]) -> None:
    status, body = post(url, "/agui", {
        "threadId": "t1", "runId": "r1", "state": {}, "tools": [], "context": [],
        "forwardedProps": {"prompt": "chat", "variables": {"user_name": "Ada"}},
        "messages": [{"id": "m1", "role": "user", "content": "hi"}]}, headers)
    assert status == 200 and b"RUN_FINISHED" in body, body


@pytest.mark.parametrize("turn", [native_turn, openai_turn, agui_turn])
def test_the_callers_traceparent_parents_the_turn(
        traced: tuple[LiveServer, InMemorySpanExporter], turn: Any) -> None:
    server, exporter = traced
    turn(server.url, {"traceparent": TRACEPARENT})
    span = turn_span(exporter)
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.parent.is_remote


@pytest.mark.parametrize("headers", [{}, {"traceparent": "00-not-a-trace-01"}])
def test_without_a_valid_traceparent_the_turn_starts_its_own_trace(
        traced: tuple[LiveServer, InMemorySpanExporter], headers: dict[str, str]) -> None:
    server, exporter = traced
    native_turn(server.url, headers)
    span = turn_span(exporter)
    assert span.parent is None and f"{span.context.trace_id:032x}" != TRACE_ID
