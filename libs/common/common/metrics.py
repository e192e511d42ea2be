"""Prometheus metrics: one registry per service, pipeline and HTTP metrics named
`firstline_<what>` with a `service` label, and domain metrics each service adds as
`firstline_<service>_...`. Label sets stay bounded: never a resident id in a label.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DomainMetrics",
    "Family",
    "HttpMetrics",
    "LoopHistogram",
    "PipelineMetrics",
    "consumer_lag",
    "exposition",
]


DEAD_LETTER_KINDS = ("unparsable", "invalid-envelope", "invalid-payload", "unknown-type", "rejected", "failed")


class LoopHistogram:
    """A Prometheus histogram observed from the event loop's thread, for what a consumer
    observes per event: no lock (prometheus_client's Histogram takes two per observation);
    an observation is a bisect and two additions, and equal values of a batch count at once.

    Scraped from the same loop (the service's /metrics route), so no lock is needed; a
    collector in another thread would at worst see a sum one observation ahead of its counts.
    """

    def __init__(
        self, name: str, doc: str, labelnames: Sequence[str], buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.doc, self.labelnames = name, doc, tuple(labelnames)
        self.bounds = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], _LoopSeries] = {}
        registry.register(self)

    def labels(self, *values: str) -> _LoopSeries:
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {values!r} do not match {self.labelnames!r}")
            series = self._series[values] = _LoopSeries(self.bounds)
        return series

    def describe(self) -> Iterable[Metric]:
        yield HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, series in sorted(self._series.items()):
            cumulative = list(itertools.accumulate(series.counts))
            buckets = [(floatToGoString(b), c) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
            family.add_metric(list(values), buckets=[*buckets, ("+Inf", cumulative[-1])], sum_value=series.sum)
        yield family


class _LoopSeries:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += count  # buckets hold value <= bound
        self.sum += value * count


def register_process_collectors(registry: CollectorRegistry) -> None:
    """The process beside its own figures: CPU and resident memory (`process_*`), the Python
    build (`python_info`) and the garbage collector's work (`python_gc_*`)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class PipelineMetrics:
    """Health of the event pipeline: outbox backlog, consumption, dead letters, handler time."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        register_process_collectors(registry)
        self._published = Counter(
            "firstline_outbox_published_total", "Events the outbox relay published", ["service"], registry=registry
        )
        self._purged = Counter(
            "firstline_outbox_purged_total",
            "Sent outbox rows deleted after the retention period",
            ["service"],
            registry=registry,
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
        self._handler = LoopHistogram(
            "firstline_handler_seconds",
            "Time to apply a batch of events, per event (each event of a batch counts)",
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
        self.consumer_stalled = Gauge(
            "firstline_consumer_stalled",
            "1 while a consumer has lag and has committed nothing for pipeline_stall_s",
            ["service", "consumer"],
            registry=registry,
        )
        self.pipeline_healthy = Gauge(
            "firstline_pipeline_healthy",
            "1 when the service's event pipeline works (Kafka connected, outbox draining, consumers progressing)",
            ["service"],
            registry=registry,
        )
        self.pipeline_healthy.labels(service).set(1)
        self._published.labels(service)
        self._purged.labels(service)
        self._backlog.labels(service).set(0)
        self._oldest.labels(service).set(0)

    def relay_pass(self, published: int, backlog: int, oldest_age_s: float | None) -> None:
        self._published.labels(self.service).inc(published)
        self._backlog.labels(self.service).set(backlog)
        self._oldest.labels(self.service).set(oldest_age_s or 0)

    def outbox_purged(self, count: int) -> None:
        self._purged.labels(self.service).inc(count)

    def consumed(self, consumer: str, event_type: str, outcome: str, count: int = 1) -> None:
        self._consumed.labels(self.service, consumer, event_type, outcome).inc(count)

    def consumer_started(self, consumer: str) -> None:
        """Series at 0 for every kind of dead letter: `increase()` then sees the first one."""
        self.consumer_stalled.labels(self.service, consumer).set(0)
        for kind in DEAD_LETTER_KINDS:
            self._dead.labels(self.service, consumer, kind)

    def dead_lettered(self, consumer: str, kind: str) -> None:
        self._dead.labels(self.service, consumer, kind).inc()

    def handler_seconds(self, consumer: str, seconds: float, count: int) -> None:
        self._handler.labels(self.service, consumer).observe(seconds / max(count, 1), count)


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
                count, latency = self._series(scope.get("method", "GET"), template, status["code"])
                count.inc()
                latency.observe(time.perf_counter() - started)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - bounded: routes x methods x statuses
    def _series(self, method: str, template: str, status: int):
        """The two children for a label set, looked up once (`labels()` costs more than the update)."""
        return self.requests.labels(self.service, method, template, str(status)), self.latency.labels(
            self.service, method, template
        )


@dataclass(frozen=True)
class Family:
    """One domain metric: its name, type, help text and (bounded) label names."""

    name: str
    kind: str  # gauge | counter
    doc: str
    labels: tuple[str, ...] = ()


Values = Mapping[tuple[str, ...], float] | float


class DomainMetrics:
    """Figures a service computes from its own database in a periodic refresh (never in the
    hot path; shown from the first refresh on), swapped in whole: a scrape sees one refresh, never half of one, and a series
    whose rows are gone disappears from /metrics. Counters are cumulative counts of rows, so
    they survive restarts; every replica reports the same figures (aggregate with `max`).
    """

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.families: dict[str, Family] = {}
        self._values: dict[str, Values] = {}
        self._refreshed_at: float | None = None
        self._refresh_seconds = 0.0
        self._failures = 0
        self._registry: CollectorRegistry | None = registry

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Family:
        return self._declare(Family(name, "gauge", doc, tuple(labels)))

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Family:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end with _total")
        return self._declare(Family(name, "counter", doc, tuple(labels)))

    def _declare(self, family: Family) -> Family:
        if not family.name.startswith(f"firstline_{self.service}_"):
            raise ValueError(f"{family.name!r}: domain metrics are named firstline_{self.service}_...")
        if family.name in self.families:
            raise ValueError(f"metric {family.name!r} declared twice")
        self.families[family.name] = family
        return family

    def publish(self, values: Mapping[Family, Values]) -> None:
        """Replace every figure at once; a family left out has no series until next time."""
        checked: dict[str, Values] = {}
        for family, figures in values.items():
            if self.families.get(family.name) is not family:
                raise ValueError(f"{family.name!r} is not declared here")
            if isinstance(figures, Mapping):
                for labels in figures:
                    if len(labels) != len(family.labels):
                        raise ValueError(f"{family.name}: labels {labels!r} do not match {family.labels!r}")
                checked[family.name] = dict(figures)
            else:
                if family.labels:
                    raise ValueError(f"{family.name} has labels {family.labels!r}: give a mapping")
                checked[family.name] = float(figures)
        self._values = checked  # one assignment: a scrape sees the old snapshot or the new one
        if self._registry is not None:
            # Registered once every family is declared, so that a name another collector of
            # the service already uses fails here rather than as a broken scrape.
            registry, self._registry = self._registry, None
            registry.register(self)

    async def refresh(self, compute: Callable[[], Awaitable[Mapping[Family, Values]]]) -> None:
        """Run `compute` (which reads the database) and publish what it returns."""
        started = time.perf_counter()
        try:
            values = await compute()
        except Exception:
            self._failures += 1
            raise
        self.publish(values)
        self._refresh_seconds = time.perf_counter() - started
        self._refreshed_at = time.time()

    def describe(self) -> Iterable[Metric]:
        for family in self.families.values():
            kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            yield kind(family.name.removesuffix("_total") if family.kind == "counter" else family.name, family.doc)
        for name in ("firstline_metrics_refreshed_timestamp_seconds", "firstline_metrics_refresh_seconds"):
            yield GaugeMetricFamily(name, name)
        yield CounterMetricFamily("firstline_metrics_refresh_failures", "refresh failures")

    def collect(self) -> Iterator[Metric]:
        values = self._values
        for family in self.families.values():
            kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            name = family.name.removesuffix("_total") if family.kind == "counter" else family.name
            metric = kind(name, family.doc, labels=family.labels)
            figures = values.get(family.name)
            if isinstance(figures, Mapping):
                for labels, value in sorted(figures.items()):
                    metric.add_metric(list(labels), value)
            elif figures is not None:
                metric.add_metric([], figures)
            yield metric
        refreshed = GaugeMetricFamily(
            "firstline_metrics_refreshed_timestamp_seconds",
            "When the domain figures were last computed (Unix time; 0 before the first refresh)",
            labels=["service"],
        )
        refreshed.add_metric([self.service], self._refreshed_at or 0.0)
        yield refreshed
        duration = GaugeMetricFamily(
            "firstline_metrics_refresh_seconds", "How long the last refresh of domain figures took", labels=["service"]
        )
        duration.add_metric([self.service], self._refresh_seconds)
        yield duration
        failures = CounterMetricFamily(
            "firstline_metrics_refresh_failures", "Refreshes of domain figures that failed", labels=["service"]
        )
        failures.add_metric([self.service], self._failures)
        yield failures


def consumer_lag(
    end: Mapping[tuple[str, int], int],
    committed: Mapping[tuple[str, int], int],
    beginning: Mapping[tuple[str, int], int],
) -> dict[str, int]:
    """Messages behind the end, per topic: a partition with no committed offset yet is read
    from its beginning (auto_offset_reset=earliest), so all it holds is lag."""
    lag: dict[str, int] = {}
    for (topic, partition), last in end.items():
        position = committed.get((topic, partition))
        if position is None or position < 0:
            position = beginning.get((topic, partition), 0)
        lag[topic] = lag.get(topic, 0) + max(last - position, 0)
    return lag


def exposition(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
