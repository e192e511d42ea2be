"""Prometheus metrics: one registry per service, pipeline and HTTP metrics named
`firstline_<what>` with a `service` label, and domain metrics each service adds as
`firstline_<service>_...`. Label sets stay bounded: never a resident id in a label.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "PipelineMetrics", "exposition"]


class PipelineMetrics:
    """Health of the event pipeline: outbox backlog, consumption, dead letters, handler time."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self._published = Counter(
            "firstline_outbox_published_total", "Events the outbox relay published", ["service"], registry=registry
        )
        self._backlog = Gauge(
            "firstline_outbox_backlog", "Events committed but not yet published", ["service"], registry=registry
        )
        self._oldest = Gauge(
            "firstline_outbox_oldest_age_seconds",
            "Age of the oldest unpublished event (0 when none)",
            ["service"],
            registry=registry,
        )
        self._consumed = Counter(
            "firstline_events_consumed_total",
            "Events a consumer handled, by outcome (applied, ignored)",
            ["service", "consumer", "event_type", "outcome"],
            registry=registry,
        )
        self._dead = Counter(
            "firstline_dead_letters_total",
            "Messages sent to the dead-letter topic, by kind of reason",
            ["service", "consumer", "kind"],
            registry=registry,
        )
        self._handler = Histogram(
            "firstline_handler_seconds",
            "Time to apply a batch of events, per event",
            ["service", "consumer"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "firstline_consumer_lag",
            "Messages behind the end of the topic, per consumer and topic",
            ["service", "consumer", "topic"],
            registry=registry,
        )
        self._published.labels(service)
        self._backlog.labels(service).set(0)
        self._oldest.labels(service).set(0)

    def relay_pass(self, published: int, backlog: int, oldest_age_s: float | None) -> None:
        self._published.labels(self.service).inc(published)
        self._backlog.labels(self.service).set(backlog)
        self._oldest.labels(self.service).set(oldest_age_s or 0)

    def consumed(self, consumer: str, event_type: str, outcome: str) -> None:
        self._consumed.labels(self.service, consumer, event_type, outcome).inc()

    def dead_lettered(self, consumer: str, kind: str) -> None:
        self._dead.labels(self.service, consumer, kind).inc()

    def handler_seconds(self, consumer: str, seconds: float, count: int) -> None:
        per_event = seconds / max(count, 1)
        for _ in range(min(count, 50)):  # a sample of the batch is enough for the distribution
            self._handler.labels(self.service, consumer).observe(per_event)


class HttpMetrics:
    """ASGI middleware: request count and latency by route template (bounded), method, status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, service: str) -> None:
        self.app = app
        self.service = service
        self.requests = Counter(
            "firstline_http_requests_total",
            "HTTP requests answered",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "firstline_http_request_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            if template != "/metrics":
                method = scope.get("method", "GET")
                self.requests.labels(self.service, method, template, str(status["code"])).inc()
                self.latency.labels(self.service, method, template).observe(time.perf_counter() - started)


def exposition(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
