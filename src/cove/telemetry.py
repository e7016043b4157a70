"""OpenTelemetry traces of requests: one trace per request, a span per call attempt.

The request's span is the root; each call attempt's span is a child of its parent call's
(latest) attempt span, so the trace has the shape of the call tree. Spans are built from
the engine's events (``cove.engine.events``), so tracing adds nothing to the hot path
when it is off. It is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and the ``otel`` extra is installed
(``pip install 'cove[otel]'``); spans go out over OTLP/HTTP in batches. A request that
resumes after a server restart continues in a new trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from cove.engine.events import Entry, EventLog

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class Tracing:
    """Turns a request's events into spans on ``provider``'s tracer."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.tracer = provider.get_tracer("cove")
        self.requests: dict[str, Span] = {}
        # request id -> call id -> the span of its latest attempt (kept for its children).
        self.calls: dict[str, dict[str, Span]] = {}

    def attach(self, events: EventLog) -> Tracing:
        events.listeners.append(self.on_event)
        return self

    def on_event(self, request_id: str, app: str, entry: Entry) -> None:
        at = int(entry.at * 1e9)
        data, kind = entry.data, entry.kind
        if kind == "request_started":
            self._end_request(request_id, None, at)  # a replay starts a new trace
            self.requests[request_id] = self.tracer.start_span(
                f"request {app}",
                kind=SpanKind.SERVER,
                start_time=at,
                attributes={
                    "cove.request_id": request_id,
                    "cove.application": app,
                    "cove.application_version": data["application_version"],
                    "cove.resumed": data["resumed"],
                },
            )
            self.calls[request_id] = {}
        elif kind == "call_started":
            self._call_started(request_id, data, at)
        elif kind == "call_finished":
            span = self.calls.get(request_id, {}).get(data["call_id"])
            if span is not None and span.is_recording():
                span.set_attribute("cove.status", data["status"])
                if data["status"] in ("failed", "lost"):
                    error = data["error"] or {}
                    span.set_attribute("cove.reason", str(error.get("reason")))
                    span.set_status(Status(StatusCode.ERROR, str(error.get("message"))))
                span.end(end_time=at)
        elif kind == "progress":
            span = self.calls.get(request_id, {}).get(data["call_id"])
            if span is not None and span.is_recording():
                attributes = {"current": data["current"], "total": data["total"]}
                if data["message"]:
                    attributes["message"] = data["message"]
                span.add_event("progress", attributes, timestamp=at)
        elif kind == "request_finished":
            self._end_request(request_id, data, at)

    def _call_started(self, request_id: str, data: Mapping[str, Any], at: int) -> None:
        calls = self.calls.get(request_id)
        if calls is None:
            return
        parent_id = data["parent_id"]
        parent = calls.get(parent_id) if parent_id else self.requests.get(request_id)
        context = trace.set_span_in_context(parent) if parent is not None else None
        calls[data["call_id"]] = self.tracer.start_span(
            data["function"],
            context=context,
            start_time=at,
            attributes={
                "cove.request_id": request_id,
                "cove.call_id": data["call_id"],
                "cove.function": data["function"],
                "cove.attempt": data["attempt"],
                "cove.container": data["container"],
                "cove.retry": data["retry"],
            },
        )

    def _end_request(self, request_id: str, data: Mapping[str, Any] | None, at: int) -> None:
        for span in self.calls.pop(request_id, {}).values():
            if span.is_recording():  # still running when the request ended (cancelled)
                span.set_attribute("cove.status", "stopped")
                span.end(end_time=at)
        if request_id not in self.requests:
            return
        span = self.requests.pop(request_id)
        status = data["status"] if data else "superseded"
        span.set_attribute("cove.status", status)
        if status != "succeeded":
            message = str(((data or {}).get("error") or {}).get("message") or status)
            span.set_status(Status(StatusCode.ERROR, message))
        span.end(end_time=at)


def tracing_from_env(events: EventLog, environ: Mapping[str, str]) -> TracerProvider | None:
    """With an OTLP endpoint in ``environ``: export the engine's traces there (returns the
    provider, to shut down at exit). Without one: None, and nothing is traced."""
    if not any(environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'cove[otel]' to export traces"
        )
        return None
    service = environ.get("OTEL_SERVICE_NAME") or "cove"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    Tracing(provider).attach(events)
    return provider
