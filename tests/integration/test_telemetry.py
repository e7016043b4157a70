"""OpenTelemetry traces: one trace per request, a span per call attempt, as the call tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from cove.engine.engine import Engine
from cove.engine.settings import Settings
from cove.server import create_app
from cove.telemetry import Tracing, tracing_from_env
from tests.conftest import APPS


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    engine = Engine(settings)
    Tracing(provider).attach(engine.events)
    with TestClient(create_app(settings, engine)) as c:
        path = APPS / "watched.py"
        r = c.post("/applications", files={"code": (path.name, path.read_bytes())})
        assert r.status_code == 201, r.text
        yield c, exporter


def spans_of(
    exporter: InMemorySpanExporter, client: TestClient, app: str, body: Any
) -> list[ReadableSpan]:
    exporter.clear()
    r = client.post(f"/applications/{app}", params={"wait": 60}, json=body)
    rid = r.headers["x-cove-request-id"]
    return [
        s
        for s in exporter.get_finished_spans()
        if s.attributes is not None and s.attributes.get("cove.request_id") == rid
    ]


def test_one_trace_per_request_with_spans_shaped_like_the_call_tree(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    spans = spans_of(exporter, client, "fan", 3)
    [request] = [s for s in spans if s.name == "request fan"]
    [fan] = [s for s in spans if s.name == "fan"]
    squares = [s for s in spans if s.name == "square"]
    assert len(spans) == 5 and len(squares) == 3
    assert request.parent is None
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}
    assert fan.parent is not None and fan.parent.span_id == request.context.span_id
    for s in squares:
        assert s.parent is not None and s.parent.span_id == fan.context.span_id
        assert s.attributes is not None and s.attributes["cove.attempt"] == 1
        assert fan.start_time is not None and s.start_time is not None and s.end_time is not None
        assert (
            fan.start_time <= s.start_time
            and fan.end_time is not None
            and s.end_time <= fan.end_time
        )
    assert sorted(str((s.attributes or {})["cove.call_id"]) for s in squares) == [
        "0.0.0",
        "0.0.1",
        "0.0.2",
    ]
    assert request.attributes is not None and request.attributes["cove.status"] == "succeeded"
    progress = [e for e in fan.events if e.name == "progress"]
    assert [e.attributes["current"] for e in progress if e.attributes] == [0, 1, 2, 3]


def test_each_attempt_is_a_span_and_failures_are_errors(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    spans = spans_of(exporter, client, "wobbly", None)
    shaky = sorted((s for s in spans if s.name == "shaky"), key=lambda s: s.start_time or 0)
    [wobbly] = [s for s in spans if s.name == "wobbly"]
    assert [(s.attributes or {})["cove.attempt"] for s in shaky] == [1, 2, 3]
    assert [s.status.status_code for s in shaky] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert all(s.parent is not None and s.parent.span_id == wobbly.context.span_id for s in shaky)
    assert [(s.attributes or {})["cove.retry"] for s in shaky] == [False, True, True]


def test_otlp_export_only_when_an_endpoint_is_set(tmp_path: Path) -> None:
    engine = Engine(Settings(data_dir=tmp_path))
    assert tracing_from_env(engine.events, {}) is None and not engine.events.listeners
    provider = tracing_from_env(
        engine.events, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    )
    assert provider is not None and len(engine.events.listeners) == 1
    provider.shutdown()
    engine.store.close()
