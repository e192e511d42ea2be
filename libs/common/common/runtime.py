"""A service's moving parts, built by its `create_app(settings)` and started by the app's
lifespan: database, Kafka broker, outbox relay, consumers and periodic jobs.

Nothing here connects at import time, and tests build their own runtime with a manual
clock, their own database and `start_consumers=False` when they drive handlers by hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from common import asyncapi, migrations
from common.bus import Consumer, ConsumerRunner
from common.clock import Clock, SystemClock
from common.db import Database
from common.events.base import Event
from common.gc import settle_garbage_collector
from common.kafka import broker_security, client_kwargs
from common.metrics import PipelineMetrics, consumer_lag
from common.outbox import OutboxRelay, UnitOfWork
from common.retention import HEALTH_EVENT_TYPES
from common.settings import ServiceSettings
from common.topics import ensure_topics, produced_by
from common.transport import PRODUCER_CONFIG, send_in_batches

log = logging.getLogger(__name__)

CONSUMER_LAG_INTERVAL_S = 15.0  # how often each consumer group's lag is measured
READY_TIMEOUT_S = 2.0  # /readyz answers within this, whatever the database does
RELAY_SILENT_S = 60.0  # a relay that has reported nothing for this long is wedged
OUTBOX_PURGE_INTERVAL_S = 3600.0  # how often sent outbox rows past their retention are deleted


class Work:
    """`Runtime.work`'s block. A class rather than an `asynccontextmanager`: a consumer enters
    one per event, and the generator machinery cost four times as much (docs/performance.md)."""

    __slots__ = ("_given", "_own", "_runtime")

    def __init__(self, runtime: Runtime, uow: UnitOfWork | None) -> None:
        self._runtime, self._given, self._own = runtime, uow, None

    async def __aenter__(self) -> UnitOfWork:
        if self._given is not None:
            return self._given
        self._own = self._runtime.uow()
        return await self._own.__aenter__()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        own = self._own
        if own is None:
            return
        try:
            if exc_type is None:
                await own.commit()
        finally:
            await own.__aexit__(exc_type, exc, tb)


class Runtime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        clock: Clock | None = None,
        publishes: Sequence[type[Event]] = (),
        migrations_dir: str | Path | None = None,
        description: str = "",
    ) -> None:
        self.settings = settings
        self.service = settings.service
        self.clock = clock or SystemClock()
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry, self.service)
        self.db = Database(settings.database_url)
        self.migrations_dir = migrations_dir
        self.broker = KafkaBroker(
            # A cluster's list ("host:port,host:port"): FastStream hands a single string to
            # aiokafka as one host, so it gets the hosts one by one.
            [host.strip() for host in settings.kafka_bootstrap_servers.split(",") if host.strip()],
            security=broker_security(settings, settings.kafka_principal) if settings.kafka_enabled else None,
            client_id=f"firstline-{self.service}",
            graceful_timeout=5.0,  # a batch in progress may finish; SIGTERM must end a service within 10 s
            **PRODUCER_CONFIG,
            middlewares=[KafkaPrometheusMiddleware(registry=self.registry, app_name=self.service)],
            logger=logging.getLogger(f"{self.service}.kafka"),
            log_level=logging.DEBUG,
            description=description,
        )
        self.relay = OutboxRelay(
            self.db,
            self._publish,
            clock=self.clock,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            publish_timeout_s=settings.outbox_publish_timeout_s,
            on_pass=self._relay_pass,
        )
        # What /pipelinez reports: the relay's last figures, and per consumer group the
        # committed offsets' sum, when it last moved, and the lag last measured.
        self._relay_seen: tuple[float, int, float | None] | None = None  # (monotonic, backlog, oldest age)
        self._progress: dict[str, tuple[int, float]] = {}
        self._lag: dict[str, int] = {}
        self.runners: list[ConsumerRunner] = []
        self._jobs: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = []
        self._tasks: list[asyncio.Task] = []
        self.broker_connected = False
        self._relay_producer: AIOKafkaProducer | None = None
        self._lag_probe: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None
        self.publishes = tuple(publishes)
        self.description = description
        if settings.outbox_retention_hours > 0:
            self.every("outbox-purge", self.purge_outbox, OUTBOX_PURGE_INTERVAL_S)
        if settings.outbox_health_retention_hours > 0:
            self.every("outbox-health-purge", self.purge_health_outbox, OUTBOX_PURGE_INTERVAL_S)

    # -- wiring -----------------------------------------------------------------------

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.db, self.clock, on_commit=self.relay.wake)

    def work(self, uow: UnitOfWork | None = None) -> Work:
        """The caller's unit of work (a consumer's handler: the runner commits it), or a new
        one committed when the block ends without an error. Use cases that routes and
        handlers share run in this."""
        return Work(self, uow)

    def consume(self, consumer: Consumer) -> ConsumerRunner:
        consumer.max_attempts = self.settings.consumer_max_attempts
        consumer.retry_backoff_s = self.settings.consumer_retry_backoff_s
        runner = ConsumerRunner(
            consumer,
            self.broker,
            self.uow,
            self.metrics,
            max_records=self.settings.consumer_max_records,
            kafka_enabled=self.settings.kafka_enabled,
        )
        self.metrics.consumer_started(consumer.name)
        if self.settings.start_consumers:
            runner.attach()
        self.runners.append(runner)
        return runner

    def every(self, name: str, job: Callable[[], Awaitable[Any]], interval_s: float | None = None) -> None:
        """Run `job` periodically. Jobs are idempotent use cases: safe on several replicas."""
        self._jobs.append((name, interval_s or self.settings.jobs_interval_s, job))

    async def run_job(self, name: str) -> Any:
        """Run a scheduled job once, now: for tests and operators, whatever the interval."""
        for job_name, _interval, job in self._jobs:
            if job_name == name:
                return await job()
        raise KeyError(f"no job {name!r}; scheduled: {', '.join(n for n, _, _ in self._jobs)}")

    def _relay_pass(self, published: int, backlog: int, oldest_age_s: float | None) -> None:
        self._relay_seen = (time.monotonic(), backlog, oldest_age_s)
        self.metrics.relay_pass(published, backlog, oldest_age_s)

    def _client(self, role: str) -> dict[str, Any]:
        """aiokafka keyword arguments for one of the service's own clients, as its principal."""
        return client_kwargs(self.settings, self.settings.kafka_principal, client_id=f"firstline-{self.service}-{role}")

    async def _publish(self, records: Sequence[tuple[str, bytes, bytes]], headers: dict[str, str]) -> list[Awaitable]:
        # The relay's own aiokafka producer: the stored envelopes are already encoded, and
        # FastStream's publish path (codec, middlewares) cost more than the send itself.
        if self._relay_producer is None:
            raise ConnectionError("not connected to Kafka yet")
        return await send_in_batches(self._relay_producer, records, headers)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.settings.migrate_on_start and self.migrations_dir:
            await migrations.upgrade(self.db, self.migrations_dir)
        else:
            await self.db.create_all()
        if self.settings.kafka_enabled:
            self._tasks.append(asyncio.create_task(self._connect(), name=f"{self.service}-broker"))
            self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.service}-relay"))
        jobs = list(self._jobs)
        if self.settings.kafka_enabled and self.settings.start_consumers and self.runners:
            lag_interval = min(CONSUMER_LAG_INTERVAL_S, self.settings.jobs_interval_s)
            jobs.append(("consumer-lag", lag_interval, self.measure_consumer_lag))
        if self.settings.jobs_interval_s > 0:
            for name, interval, job in jobs:
                self._tasks.append(asyncio.create_task(self._repeat(name, interval, job), name=name))
        settle_garbage_collector()

    async def _connect(self) -> None:
        """Connect in the background: HTTP answers (and the outbox fills) while Kafka is away."""
        delay = 0.5
        while True:
            try:
                own = [t.name for t in produced_by(self.service)]
                if own:  # a service may create only its own topics; the others are their producers'
                    await ensure_topics(self._client("admin"), self.settings.kafka_replication_factor, own)
                producer = AIOKafkaProducer(**self._client("relay"), **PRODUCER_CONFIG)
                await producer.start()
                try:
                    await self.broker.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._relay_producer = producer
                self.broker_connected = True
                log.info("%s connected to Kafka at %s", self.service, self.settings.kafka_bootstrap_servers)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("Kafka not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _repeat(self, name: str, interval: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed", name)
            await asyncio.sleep(interval)

    async def purge_outbox(self) -> int:
        """Delete the outbox rows sent more than `outbox_retention_hours` ago."""
        purged = await self.relay.purge_sent(timedelta(hours=self.settings.outbox_retention_hours))
        self.metrics.outbox_purged(purged)
        if purged:
            log.info(
                "%s: purged %d outbox rows sent over %g h ago",
                self.service,
                purged,
                self.settings.outbox_retention_hours,
            )
        return purged

    async def purge_health_outbox(self) -> int:
        """Delete the sent outbox rows of health-carrying events (common/retention.py) sent
        more than `outbox_health_retention_hours` ago."""
        hours = self.settings.outbox_health_retention_hours
        purged = await self.relay.purge_sent(timedelta(hours=hours), event_types=HEALTH_EVENT_TYPES)
        self.metrics.outbox_purged(purged)
        if purged:
            log.info("%s: purged %d health-carrying outbox rows sent over %g h ago", self.service, purged, hours)
        return purged

    async def measure_consumer_lag(self) -> dict[str, dict[str, int]]:
        """Per consumer group and topic, the messages between its committed offsets and the
        end of the topic; sets `firstline_consumer_lag`. Skipped while Kafka is away."""
        if not self.broker_connected or not self.runners:
            return {}
        if self._lag_probe is None:
            admin = AIOKafkaAdminClient(**self._client("lag"))
            probe = AIOKafkaConsumer(**self._client("lag"), enable_auto_commit=False)
            await admin.start()
            try:
                await probe.start()
            except Exception:
                await admin.close()
                raise
            self._lag_probe = (admin, probe)
        admin, probe = self._lag_probe
        out: dict[str, dict[str, int]] = {}
        for runner in self.runners:
            group = runner.consumer.name
            topics = list(runner.consumer.topics)
            partitions = [
                TopicPartition(described["topic"], p["partition"])
                for described in await admin.describe_topics(topics)
                if not described.get("error_code")
                for p in described["partitions"]
            ]
            if not partitions:
                continue
            end = {(tp.topic, tp.partition): o for tp, o in (await probe.end_offsets(partitions)).items()}
            beginning = {(tp.topic, tp.partition): o for tp, o in (await probe.beginning_offsets(partitions)).items()}
            committed = {
                (tp.topic, tp.partition): meta.offset
                for tp, meta in (await admin.list_consumer_group_offsets(group, partitions=partitions)).items()
            }
            lag = consumer_lag(end, committed, beginning)
            for topic in topics:
                self.metrics.consumer_lag.labels(self.service, group, topic).set(lag.get(topic, 0))
            out[group] = lag
            self._note_progress(group, sum(o for o in committed.values() if o and o > 0), sum(lag.values()))
        return out

    def _note_progress(self, group: str, committed: int, lag: int) -> None:
        """A group whose committed offsets have not moved for `pipeline_stall_s` while it has
        lag is stalled (a wedged consumer, a handler stuck on one event)."""
        now = time.monotonic()
        before = self._progress.get(group)
        if before is None or before[0] != committed or lag == 0:
            self._progress[group] = (committed, now)
        self._lag[group] = lag
        stalled = lag > 0 and now - self._progress[group][1] >= self.settings.pipeline_stall_s
        self.metrics.consumer_stalled.labels(self.service, group).set(int(stalled))

    async def _close_lag_probe(self) -> None:
        if self._lag_probe is not None:
            admin, probe = self._lag_probe
            self._lag_probe = None
            await asyncio.gather(probe.stop(), admin.close(), return_exceptions=True)

    async def stop(self) -> None:
        self.relay.stop()
        for runner in self.runners:
            runner.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._close_lag_probe()
        if self._relay_producer is not None:
            producer, self._relay_producer = self._relay_producer, None
            await producer.stop()
        if self.broker_connected:
            await self.broker.stop()
            self.broker_connected = False
        await self.db.dispose()

    async def readiness(self) -> dict[str, bool]:
        """What HTTP needs: the database. Writes reach Kafka through the outbox, so a broker
        outage is no reason to turn traffic away (that is /pipelinez's business)."""
        try:
            database = await asyncio.wait_for(self.db.ping(), timeout=READY_TIMEOUT_S)
        except TimeoutError:
            database = False
        return {"database": database}

    async def pipeline(self) -> dict[str, Any]:
        """The event pipeline's health: Kafka answering (2 s at most), and from what the relay
        and the lag job last saw, the outbox draining and every consumer applying and committing."""
        kafka = self.broker_connected and bool(await self.broker.ping(timeout=READY_TIMEOUT_S))
        now = time.monotonic()
        problems: list[str] = []
        relay: dict[str, Any] = {"backlog": None, "oldest_age_s": None, "reported_s_ago": None}
        if self.settings.kafka_enabled:
            if not kafka:
                problems.append("Kafka does not answer: events wait in the outbox")
            if self._relay_seen is not None:
                at, backlog, age = self._relay_seen
                relay = {"backlog": backlog, "oldest_age_s": age, "reported_s_ago": round(now - at, 1)}
                if age is not None and age > self.settings.pipeline_max_outbox_age_s:
                    problems.append(f"the oldest unpublished event is {age:.0f} s old ({backlog} waiting)")
                if now - at > RELAY_SILENT_S:
                    problems.append(f"the outbox relay has reported nothing for {now - at:.0f} s")
        consumers: dict[str, Any] = {}
        for runner in self.runners:
            group = runner.consumer.name
            committed_at = self._progress.get(group, (0, None))[1]
            lag = self._lag.get(group)
            idle_s = None if committed_at is None else round(now - committed_at, 1)
            stalled = bool(lag) and idle_s is not None and idle_s >= self.settings.pipeline_stall_s
            consumers[group] = {"applying": runner.healthy, "lag": lag, "committed_s_ago": idle_s, "stalled": stalled}
            if not runner.healthy:
                problems.append(f"{group}: paused while the database or the broker is away")
            if stalled:
                problems.append(f"{group}: {lag} events behind and nothing committed for {idle_s:.0f} s")
        healthy = not problems
        self.metrics.pipeline_healthy.labels(self.service).set(int(healthy))
        return {"healthy": healthy, "problems": problems, "kafka": kafka, "relay": relay,
                "consumers": consumers}  # fmt: skip

    def asyncapi(self, title: str | None = None) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of what this service publishes and consumes."""
        doc = asyncapi.document(self.service, self.description, self.publishes, [r.consumer for r in self.runners])
        if title:
            doc["info"]["title"] = title
        return doc
