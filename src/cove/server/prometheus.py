"""``GET /metrics``: the server's metrics in the Prometheus text format.

Counters and histograms are fed by the engine's events (requests finished by status,
call attempt latencies by function, retries, timeouts); gauges are read from the pools
when scraped (queue depth, containers by state, cold starts, requests in flight, requests
taken over from other replicas, journal writes refused by the lease fence). Each
server has its own registry, so several engines in one process do not mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from cove.engine.events import Entry

if TYPE_CHECKING:
    from cove.engine.engine import Engine

router = APIRouter(tags=["observability"])
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class EngineMetrics:
    """The Prometheus registry of one engine."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.started = Counter(
            "cove_requests_started",
            "Requests started (resumed ones again).",
            ["application"],
            registry=r,
        )
        self.finished = Counter(
            "cove_requests_finished",
            "Requests finished, by final status.",
            ["application", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "cove_call_duration_seconds",
            "Duration of function call attempts.",
            ["application", "function"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "cove_call_attempts",
            "Function call attempts that ended, by how they ended.",
            ["application", "function", "status"],
            registry=r,
        )
        self.retries = Counter(
            "cove_call_retries",
            "Function call attempts that were retries.",
            ["application", "function"],
            registry=r,
        )
        self.timeouts = Counter(
            "cove_call_timeouts",
            "Function call attempts stopped by their timeout.",
            ["application", "function"],
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        r.register(PoolCollector(engine))
        engine.events.listeners.append(self.on_event)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: looked up on every event of every call."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def on_event(self, _request_id: str, app: str, entry: Entry) -> None:
        data, kind = entry.data, entry.kind
        if kind == "request_started":
            self._child(self.started, app).inc()
        elif kind == "request_finished":
            self._child(self.finished, app, data["status"]).inc()
        elif kind == "call_started" and data["retry"]:
            self._child(self.retries, app, data["function"]).inc()
        elif kind == "call_finished":
            function = data["function"]
            self._child(self.attempts, app, function, data["status"]).inc()
            if data["duration"] is not None:
                self._child(self.latency, app, function).observe(data["duration"])
            if (data["error"] or {}).get("reason") == "function_timeout":
                self._child(self.timeouts, app, function).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class PoolCollector(Collector):
    """Gauges read from the engine's pools and live requests at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        labels = ["application", "function"]
        queue = GaugeMetricFamily(
            "cove_queue_depth", "Calls waiting for a container.", labels=labels
        )
        containers = GaugeMetricFamily(
            "cove_containers", "Containers by state.", labels=[*labels, "state"]
        )
        cold = CounterMetricFamily(
            "cove_cold_starts", "Containers started for calls or readiness.", labels=labels
        )
        for pool in self.engine.all_pools():
            key = [pool.version.app, pool.name]
            queue.add_metric(key, len(pool.queue))
            states = {"starting": pool.starting, "idle": 0, "busy": 0}
            for slot in pool.slots:
                if slot.alive:
                    states[slot.state] = states.get(slot.state, 0) + 1
            for state, count in states.items():
                containers.add_metric([*key, state], count)
            cold.add_metric(key, getattr(pool, "cold_starts", 0))
        flight = GaugeMetricFamily(
            "cove_requests_in_flight",
            "Requests not finished yet, by status.",
            labels=["application", "status"],
        )
        counts: dict[tuple[str, str], int] = {}
        for run in list(self.engine.live.values()):
            counts[(run.app, run.status)] = counts.get((run.app, run.status), 0) + 1
        for (app, status), count in sorted(counts.items()):
            flight.add_metric([app, status], count)
        takeovers = CounterMetricFamily(
            "cove_request_takeovers",
            "Requests this replica took over from replicas whose leases expired.",
            value=self.engine.leases.takeovers,
        )
        fenced = CounterMetricFamily(
            "cove_fenced_writes",
            "Journal writes of requests this replica no longer holds the lease of, refused "
            "(nothing written).",
            value=self.engine.leases.fenced_writes,
        )
        yield from (queue, containers, cold, flight, takeovers, fenced)

    def describe(self) -> Iterator[Metric]:
        return iter(())


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    exporter: Any = request.app.state.prometheus
    return Response(exporter.render(), media_type=CONTENT_TYPE_LATEST)
