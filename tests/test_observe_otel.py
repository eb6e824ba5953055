"""OpenTelemetry: the GenAI span tree and metrics of turns, through both drivers, with
in-memory exporters; spans end however a stream ends; nothing is imported when it is off."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import promptkit
from promptkit.observe import semconv
from promptkit.observe.setup import uninstrument
from promptkit.testing import FakeServer, Reply

from support import PACKS, REPO, WIRE, Driver

ASSISTANT = PACKS / "assistant.pack.json"
DOC = REPO / "docs" / "observability.md"
WEATHER = {"turns": {
    1: {"type": "tool_calls", "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris", "country": "FR"}}]},
    2: "It is sunny in Paris.",
}}


class Telemetry:
    """A tracer provider and a meter provider writing to memory, and what they hold."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def options(self, **more: Any) -> dict[str, Any]:
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider,
                **more}

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.finished()}

    def histograms(self) -> dict[str, Any]:
        data = self.metrics.get_metrics_data()
        found = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()


def open_mock(driver: Driver, otel: Telemetry, script: Any = None, **options: Any) -> Any:
    options.setdefault("variables", {"user_name": "Ada"})
    return driver.open(ASSISTANT, "assistant", provider="mock",
                       mock_responses=script or {"defaultResponse": "Hello there."},
                       **otel.options(), **options)


def span_tree(spans: list[ReadableSpan]) -> str:
    """The spans as an indented tree: names, then attributes (timings shown as <seconds>)."""
    children: dict[int | None, list[ReadableSpan]] = {}
    ids = {span.context.span_id for span in spans}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def show(span: ReadableSpan, depth: int) -> None:
        pad = "    " * depth
        status = "" if span.status.status_code is StatusCode.UNSET else \
            f"  [{span.status.status_code.name}]"
        lines.append(f"{pad}{span.name}{status}")
        for key, raw in sorted((span.attributes or {}).items()):
            value: Any = raw
            if isinstance(raw, float) and ("time" in key or "duration" in key):
                value = "<seconds>"
            elif isinstance(raw, tuple):
                value = list(raw)
            lines.append(f"{pad}    {key} = {value!r}")
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)
    return "\n".join(lines)


def test_our_names_are_the_semantic_conventions() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
    from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
    from opentelemetry.semconv.attributes import error_attributes, server_attributes

    packages = (gen_ai_attributes, gen_ai_metrics, error_attributes, server_attributes)
    checked = 0
    for name in dir(semconv):
        if not name.isupper() or name.startswith("PROMPTKIT") or name.endswith("BUCKETS"):
            continue
        ours = getattr(semconv, name)
        theirs = [getattr(p, name) for p in packages if hasattr(p, name)]
        if name in ("CHAT", "INVOKE_AGENT", "EXECUTE_TOOL"):
            theirs = [gen_ai_attributes.GenAiOperationNameValues[name].value]
        assert theirs, f"{name} is not in opentelemetry-semantic-conventions"
        assert ours == theirs[0], name
        checked += 1
    assert checked >= 25


def test_a_tool_calling_turn_is_one_tree_with_provenance(driver: Driver, otel: Telemetry
                                                         ) -> None:
    conv = open_mock(driver, otel, WEATHER, conversation_id="conv-1")
    conv.on_tool("get_weather", lambda args: {"temp_c": 21})
    response = driver.send(conv, "Weather in Paris?")
    spans = otel.finished()
    assert [s.name for s in spans] == ["chat mock-model", "execute_tool get_weather",
                                       "chat mock-model", "invoke_agent assistant"]
    turn = spans[-1]
    assert turn.parent is None
    assert all(s.parent is not None and s.parent.span_id == turn.context.span_id
               for s in spans[:-1])
    assert turn.context.trace_id == spans[0].context.trace_id
    attributes = dict(turn.attributes or {})
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "assistant"
    assert attributes["gen_ai.conversation.id"] == "conv-1"
    assert attributes["promptkit.pack.id"] == "test-assistant"
    assert attributes["promptkit.pack.version"] == "1.2.0"
    assert attributes["promptkit.prompt.name"] == "assistant"
    assert attributes["promptkit.time_to_first_token"] == response.time_to_first_token
    chat = dict(spans[0].attributes or {})
    assert chat["gen_ai.provider.name"] == "mock"
    assert chat["gen_ai.request.model"] == chat["gen_ai.response.model"] == "mock-model"
    assert chat["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chat["gen_ai.request.temperature"] == 0.2 and chat["gen_ai.request.max_tokens"] == 256
    assert chat["gen_ai.usage.input_tokens"] > 0 and chat["gen_ai.usage.output_tokens"] > 0
    assert chat["gen_ai.response.time_to_first_chunk"] >= 0
    assert spans[0].kind is trace.SpanKind.CLIENT
    tool = dict(spans[1].attributes or {})
    assert tool == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
                    "gen_ai.tool.call.id": "call_1_get_weather"}
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert not any("gen_ai.input.messages" in (s.attributes or {}) for s in spans)


def test_the_documented_span_tree_is_the_printed_one(otel: Telemetry) -> None:
    """docs/observability.md shows this test's output; PROMPTKIT_REGENERATE_DOCS=1 rewrites it."""
    conv = open_mock(Driver("sync"), otel, WEATHER, conversation_id="conv-1")
    conv.on_tool("get_weather", lambda args: {"temp_c": 21})
    conv.send("Weather in Paris?")
    tree = span_tree(otel.finished())
    begin, end = "<!-- span-tree:begin -->\n```text\n", "\n```\n<!-- span-tree:end -->"
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    if os.environ.get("PROMPTKIT_REGENERATE_DOCS"):
        DOC.write_text(head + begin + tree + end + tail, encoding="utf-8")
        return
    assert rest.split(end)[0] == tree


def test_metrics_are_the_genai_histograms(driver: Driver, otel: Telemetry) -> None:
    conv = open_mock(driver, otel, WEATHER)
    conv.on_tool("get_weather", lambda args: "sunny")
    response = driver.send(conv, "hi")
    metrics = otel.histograms()
    tokens = metrics["gen_ai.client.token.usage"]
    duration = metrics["gen_ai.client.operation.duration"]
    assert tokens.unit == "{token}" and duration.unit == "s"
    points = list(tokens.data.data_points)
    assert tuple(points[0].explicit_bounds) == semconv.TOKEN_BUCKETS
    assert tuple(duration.data.data_points[0].explicit_bounds) == semconv.DURATION_BUCKETS
    by_type = {p.attributes["gen_ai.token.type"]: p for p in points}
    assert by_type["input"].sum == response.usage.input_tokens
    assert by_type["output"].sum == response.usage.output_tokens
    assert by_type["input"].count == 2  # two model calls
    assert by_type["input"].attributes["gen_ai.operation.name"] == "chat"
    assert by_type["input"].attributes["gen_ai.provider.name"] == "mock"
    assert duration.data.data_points[0].count == 2


def test_content_is_captured_only_on_opt_in(driver: Driver, otel: Telemetry,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    conv = open_mock(driver, otel, WEATHER, capture_content=True)
    conv.on_tool("get_weather", lambda args: {"temp_c": 21})
    driver.send(conv, "Weather in Paris?")
    spans = otel.by_name()
    chat = spans["chat mock-model"].attributes or {}
    assert "Weather in Paris?" in str(chat["gen_ai.input.messages"])
    assert "It is sunny in Paris." in str(chat["gen_ai.output.messages"])
    tool = spans["execute_tool get_weather"].attributes or {}
    assert "Paris" in str(tool["gen_ai.tool.call.arguments"])
    assert "21" in str(tool["gen_ai.tool.call.result"])
    assert "Ada" in str(spans["invoke_agent assistant"].attributes[
        "gen_ai.system_instructions"])

    otel.spans.clear()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    conv = open_mock(driver, otel)
    driver.send(conv, "from the environment")
    assert "from the environment" in str(
        otel.by_name()["chat mock-model"].attributes["gen_ai.input.messages"])


class CountingProcessor(SpanProcessor):
    """Counts spans started and ended."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: Any) -> None:
        self.ended += 1


def test_spans_end_with_error_type_when_the_turn_fails(driver: Driver, otel: Telemetry) -> None:
    with FakeServer() as server:
        server.enqueue(Reply.json(401, {"error": {"message": "bad key",
                                                  "type": "invalid_request_error"}}))
        conv = driver.open(ASSISTANT, "assistant", provider="openai", model="gpt-4o-mini",
                           api_key="sk-otel-0123456789abcdefghij", base_url=server.url + "/v1",
                           variables={"user_name": "Ada"}, **otel.options())
        chunks = driver.stream(conv, "hi")
    assert chunks[-1].type is promptkit.ChunkType.ERROR
    spans = otel.by_name()
    for name in ("chat gpt-4o-mini", "invoke_agent assistant"):
        span = spans[name]
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "AuthenticationError"
    chat = spans["chat gpt-4o-mini"].attributes
    assert chat["server.address"] == "127.0.0.1" and chat["server.port"] == server.port
    assert otel.histograms()["gen_ai.client.operation.duration"].data.data_points[0] \
        .attributes["error.type"] == "AuthenticationError"


def test_a_retried_call_has_its_own_failed_span(driver: Driver, otel: Telemetry) -> None:
    with FakeServer() as server:
        server.enqueue(Reply.json(503, {"error": {"message": "busy"}},
                                  headers={"retry-after": "0"}),
                       Reply.sse(WIRE / "openai-chat" / "text-after-tool-result.sse"))
        conv = driver.open(ASSISTANT, "assistant", provider="openai", model="gpt-4o-mini",
                           api_key="sk-otel-0123456789abcdefghij", base_url=server.url + "/v1",
                           variables={"user_name": "Ada"}, **otel.options())
        driver.send(conv, "hi")
    chats = [s for s in otel.finished() if s.name.startswith("chat ")]
    assert [s.status.status_code for s in chats] == [StatusCode.ERROR, StatusCode.UNSET]
    assert chats[0].attributes["error.type"] == "OverloadedError"
    assert otel.by_name()["invoke_agent assistant"].status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("ending", ["close", "break", "cancel", "timeout"])
def test_no_span_is_left_open_however_the_stream_ends(driver: Driver, ending: str,
                                                      otel: Telemetry) -> None:
    if ending == "cancel" and not driver.is_async:
        pytest.skip("task cancellation is an asyncio ending")
    counting = CountingProcessor()
    otel.tracer_provider.add_span_processor(counting)
    script = {"defaultResponse": " ".join(["word"] * 30), "delay": 0.02}
    conv = open_mock(driver, otel, script)
    timeout = 0.15 if ending == "timeout" else None

    def consume_sync() -> None:
        stream = conv.stream("hi", timeout=timeout)
        for n, _ in enumerate(stream):
            if n == 2 and ending == "close":
                stream.close()
            if n == 2 and ending == "break":
                break
        del stream

    async def consume_async() -> None:
        if ending == "cancel":
            task = asyncio.create_task(conv.send("hi"))
            await asyncio.sleep(0.08)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return
        stream = conv.stream("hi", timeout=timeout)
        n = 0
        async for _ in stream:
            n += 1
            if n == 3 and ending == "close":
                await stream.aclose()
            if n == 3 and ending == "break":
                break
        await stream.aclose()

    if driver.is_async:
        asyncio.run(consume_async())
    else:
        consume_sync()
    spans = otel.by_name()
    assert counting.started == counting.ended == len(otel.finished()) == 2  # none left open
    expected = "TurnTimeout" if ending == "timeout" else "cancelled"
    for span in spans.values():
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == expected


def test_a_user_span_around_send_is_the_parent(driver: Driver, otel: Telemetry) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    conv = open_mock(driver, otel)
    if driver.is_async:
        async def go() -> None:
            with tracer.start_as_current_span("handle request"):
                await conv.send("hi")

        asyncio.run(go())
    else:
        with tracer.start_as_current_span("handle request"):
            conv.send("hi")
    spans = otel.by_name()
    outer, turn = spans["handle request"], spans["invoke_agent assistant"]
    assert turn.parent is not None and turn.parent.span_id == outer.context.span_id
    assert turn.context.trace_id == outer.context.trace_id


class Exploding(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("the collector is down")


def test_an_exporter_or_handler_that_raises_never_breaks_a_turn(
        driver: Driver, caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Exploding()))
    conv = driver.open(ASSISTANT, "assistant", provider="mock", tracer_provider=provider,
                       mock_responses=WEATHER, variables={"user_name": "Ada"})
    conv.on_tool("get_weather", lambda args: "sunny")
    conv.on("*", lambda event: 1 / 0)
    assert driver.send(conv, "hi").text == "It is sunny in Paris."
    assert len(conv.messages) == 4


def test_instrument_traces_conversations_opened_afterwards(driver: Driver,
                                                           otel: Telemetry) -> None:
    before = driver.open(ASSISTANT, "assistant", provider="mock",
                         variables={"user_name": "Ada"})
    promptkit.instrument(otel.tracer_provider, otel.meter_provider)
    try:
        after = driver.open(ASSISTANT, "assistant", provider="mock",
                            variables={"user_name": "Ada"})
        driver.send(before, "opened before instrument(): not traced")
        assert otel.finished() == []
        driver.send(after, "traced")
        assert [s.name for s in otel.finished()] == ["chat mock-model", "invoke_agent assistant"]
    finally:
        uninstrument()


OFF = """
import sys, promptkit
conv = promptkit.open({pack!r}, "assistant", provider="mock", variables={{"user_name": "A"}})
conv.on("*", lambda e: None)
conv.send("hi")
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""

GLOBAL = """
import promptkit
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, ConsoleSpanExporter
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
promptkit.instrument()
conv = promptkit.open({pack!r}, "assistant", provider="mock", variables={{"user_name": "A"}})
conv.send("hi")
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, env=env, cwd=Path(REPO))


def test_without_a_provider_no_opentelemetry_module_is_imported() -> None:
    done = run_python(OFF.format(pack=str(ASSISTANT)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_instrument_uses_the_global_providers() -> None:
    done = run_python(GLOBAL.format(pack=str(ASSISTANT)))
    assert done.returncode == 0, done.stderr
    assert '"name": "invoke_agent assistant"' in done.stdout
    assert '"name": "chat mock-model"' in done.stdout


def test_providers_made_per_conversation_keep_the_telemetry_cache_bounded() -> None:
    """A Telemetry (tracer, instruments) per distinct provider pair, reused for the same pair;
    an application creating providers per conversation does not grow it without end."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    from promptkit.observe import otel
    from promptkit.observe.setup import ObserveOptions

    tracer, meter = NoOpTracerProvider(), NoOpMeterProvider()
    first = otel.telemetry_for(ObserveOptions(tracer, meter, False))
    assert otel.telemetry_for(ObserveOptions(tracer, meter, False)) is first
    kept = [(NoOpTracerProvider(), NoOpMeterProvider()) for _ in range(200)]
    for pair in kept:
        otel.telemetry_for(ObserveOptions(*pair, False))
    assert len(otel._cache) <= otel._MAX_TELEMETRY
