"""Consuming events: validate, apply once, commit, then commit the offset; dead-letter
what cannot be applied, with the reason and origin in headers, and carry on.

Each consumer reads a batch, applies every valid event in one transaction (the fast
path), and falls back to one transaction per event with retries when any of them fails,
so one bad event never holds back or rolls back the others. Only deterministic failures
(undecodable, invalid, untrusted, rejected by the domain) are dead-lettered; when the
database or the broker is away the consumer waits for it, reported not ready, and loses
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import ConsumerRecord
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from common import envelope as ce
from common import topics
from common.db import COPY_PAYS_FROM, copy_if_all_new
from common.errors import DomainError
from common.events.base import Event
from common.gc import collector_paused
from common.metrics import PipelineMetrics
from common.outbox import InboxMessage, UnitOfWork
from common.sensitivity import redact

log = logging.getLogger(__name__)

Handler = Callable[[Any, ce.CloudEvent, UnitOfWork], Awaitable[None]]

# Dead-letter headers: why the message is here and where it came from.
H_REASON = "dlq-reason"
H_KIND = "dlq-kind"
H_TOPIC = "dlq-origin-topic"
H_PARTITION = "dlq-origin-partition"
H_OFFSET = "dlq-origin-offset"
H_CONSUMER = "dlq-consumer"
H_STUB = "dlq-stub"  # the record could not be published whole: only its origin and digest are kept
H_DIGEST = "dlq-digest"

# Publishing these can never succeed, however often it is tried: dead-letter a stub instead.
UNPUBLISHABLE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, InvalidTopicError)
OUTAGE_BACKOFF_MAX_S = 5.0  # short enough to notice a database back soon, and to stop quickly


class ConsumerStopping(Exception):
    """Raised out of a batch that was waiting when the service stopped."""


def is_outage(exc: BaseException) -> bool:
    """The database or the broker is unreachable (or out of space): waiting helps, and the
    event is not at fault, so it must never be dead-lettered."""
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    outage = (OSError, TimeoutError, OperationalError, InterfaceError, DisconnectionError, PoolTimeout,
              KafkaConnectionError, KafkaTimeoutError)  # fmt: skip
    seen: BaseException | None = exc
    for _ in range(5):  # drivers wrap the socket's error once or twice
        if seen is None:
            return False
        if isinstance(seen, outage) or getattr(seen, "connection_invalidated", False):
            return True
        if type(seen).__module__.startswith("asyncpg") and (
            "Connect" in type(seen).__name__ or str(getattr(seen, "sqlstate", "") or "")[:2] in OUTAGE_SQLSTATES
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# PostgreSQL's error classes that mean "the server, not the event": 08 connection exception,
# 53 insufficient resources (a full disk), 57 operator intervention (shutting down, starting up).
OUTAGE_SQLSTATES = frozenset({"08", "53", "57"})


@dataclass
class Consumer:
    """One consumer group: the topics it reads and the event classes it applies."""

    name: str  # consumer group and inbox name, e.g. "command"
    topics: Sequence[str]
    handlers: dict[type[Event], Handler]
    dead_letter_topic: str
    on_unknown: Literal["dead_letter", "ignore"] = "dead_letter"
    # For services that load or write a batch in bulk: called in the batch's transaction
    # before its events are applied (with the events new to this consumer) and before commit.
    prepare: Callable[[UnitOfWork, list[Event]], Awaitable[None]] | None = None
    finish: Callable[[UnitOfWork], Awaitable[None]] | None = None
    max_attempts: int = 5
    retry_backoff_s: float = 0.2
    _by_type: dict[str, tuple[type[Event], Handler]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._by_type = {cls.event_type(): (cls, h) for cls, h in self.handlers.items()}


class ConsumerRunner:
    """Runs a `Consumer` on a FastStream broker, with a unit of work per transaction."""

    def __init__(
        self,
        consumer: Consumer,
        broker: KafkaBroker,
        uow: Callable[[], UnitOfWork],
        metrics: PipelineMetrics,
        *,
        max_records: int = 500,
        kafka_enabled: bool = True,
    ) -> None:
        self.consumer = consumer
        self.kafka_enabled = kafka_enabled
        self.broker = broker
        self.uow = uow
        self.metrics = metrics
        self.max_records = max_records
        self.healthy = True  # False while an outage holds the consumer back
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """The service is stopping: a batch waiting out an outage gives up now, unacknowledged,
        so the next start reads it again."""
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        if self._stopping.is_set():
            raise ConsumerStopping(self.consumer.name)

    def attach(self) -> None:
        c = self.consumer
        subscriber = self.broker.subscriber(
            *c.topics,
            group_id=c.name,
            batch=True,
            max_records=self.max_records,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_records,
            title=f"{c.name} consumes {', '.join(c.topics)}",
            description=f"Applies: {', '.join(sorted(c._by_type))}",
        )
        subscriber(self._on_batch)

    async def _on_batch(self, msg: KafkaMessage) -> None:
        records: Sequence[ConsumerRecord] = msg.raw_message  # type: ignore[assignment]
        if isinstance(records, ConsumerRecord):
            records = [records]
        await self.handle(records)
        await msg.ack()  # offsets are committed only after every effect is durable

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply a batch of records: the public entry point, also used by tests."""
        valid = await self._parse(records)
        if not valid:
            return
        started = time.perf_counter()
        outages = 0
        while True:
            try:
                with collector_paused():
                    await self._apply_batch(valid)
            except Exception as exc:  # noqa: BLE001 - isolate the failing event below
                if is_outage(exc):
                    outages += 1
                    await self._wait_out(exc, outages)
                    continue
                log.info(
                    "%s: batch of %d failed (%s); applying one by one", self.consumer.name, len(valid), redact(str(exc))
                )
                for item in valid:
                    await self._apply_with_retries(*item)
            else:
                self._recovered()
                for event_type, count in Counter(envelope.type for _r, envelope, _e, _h in valid).items():
                    self.metrics.consumed(self.consumer.name, event_type, "applied", count)
            break
        self.metrics.handler_seconds(self.consumer.name, time.perf_counter() - started, len(valid))

    async def _wait_out(self, exc: BaseException, outages: int) -> None:
        """Hold the batch (its offsets do not move) until the outage ends; cancellable, so a
        stopping service does not wait for the database."""
        if self.healthy:
            log.error("%s: paused, %s: %s", self.consumer.name, type(exc).__name__, redact(str(exc)))
        self.healthy = False
        await self._pause(min(self.consumer.retry_backoff_s * 2 ** min(outages, 10), OUTAGE_BACKOFF_MAX_S))

    def _recovered(self) -> None:
        if not self.healthy:
            log.warning("%s: resumed", self.consumer.name)
        self.healthy = True

    async def _parse(
        self, records: Sequence[ConsumerRecord]
    ) -> list[tuple[ConsumerRecord, ce.CloudEvent, Event, Handler]]:
        valid: list[tuple[ConsumerRecord, ce.CloudEvent, Event, Handler]] = []
        for record in records:
            if record.value is None:  # a tombstone on a compacted topic: nothing to apply
                self.metrics.consumed(self.consumer.name, "tombstone", "ignored")
                continue
            try:
                envelope = ce.parse(record.value)
                decoded = self._decode(envelope, record.topic)
            except ce.InvalidMessage as exc:
                await self.dead_letter(record, exc.reason, exc.kind)
                continue
            if decoded is None:
                self.metrics.consumed(self.consumer.name, envelope.type, "ignored")
                continue
            event, handler = decoded
            valid.append((record, envelope, event, handler))
        return valid

    async def _apply_batch(self, valid: list[tuple[ConsumerRecord, ce.CloudEvent, Event, Handler]]) -> None:
        """The fast path: every valid event of the batch in one transaction."""
        async with self.uow() as uow:
            fresh = await _claim(uow, self.consumer.name, [envelope for _, envelope, _, _ in valid])
            batch = []
            for _record, envelope, event, handler in valid:
                if envelope.id in fresh:  # not applied before; and the same event twice in a batch applies once
                    fresh.discard(envelope.id)
                    batch.append((envelope, event, handler))
            if self.consumer.prepare:
                await self.consumer.prepare(uow, [event for _, event, _ in batch])
            for envelope, event, handler in batch:
                uow.cause = envelope
                await handler(event, envelope, uow)
                uow.cause = None
            if self.consumer.finish:
                await self.consumer.finish(uow)
            await uow.commit()

    def _decode(self, envelope: ce.CloudEvent, topic: str) -> tuple[Event, Handler] | None:
        known = self.consumer._by_type.get(envelope.type)
        if known is None:
            if self.consumer.on_unknown == "ignore":
                return None
            raise ce.InvalidMessage(f"{self.consumer.name} does not apply {envelope.type!r}", "unknown-type")
        cls, handler = known
        _check_origin(cls, envelope, topic)
        event = ce.decode(envelope)
        if not isinstance(event, cls):  # another version of the same name than we handle
            raise ce.InvalidMessage(
                f"{envelope.type} version {envelope.version} is not handled by {self.consumer.name}", "unknown-type"
            )
        return event, handler

    async def _apply(self, uow: UnitOfWork, envelope: ce.CloudEvent, event: Event, handler: Handler) -> None:
        if await uow.first_time(self.consumer.name, envelope):
            uow.cause = envelope
            await handler(event, envelope, uow)
            uow.cause = None

    async def _apply_with_retries(
        self, record: ConsumerRecord, envelope: ce.CloudEvent, event: Event, handler: Handler
    ) -> None:
        attempt, outages = 1, 0
        while attempt <= self.consumer.max_attempts:
            try:
                async with self.uow() as uow:
                    await self._apply(uow, envelope, event, handler)
                    await uow.commit()
                self._recovered()
                self.metrics.consumed(self.consumer.name, envelope.type, "applied")
                return
            except DomainError as exc:
                await self.dead_letter(record, f"{envelope.type} rejected: {exc.message}", "rejected")
                return
            except Exception as exc:  # noqa: BLE001
                if is_outage(exc):  # not the event's fault: wait, without using up its attempts
                    outages += 1
                    await self._wait_out(exc, outages)
                    continue
                if attempt == self.consumer.max_attempts:
                    await self.dead_letter(
                        record, f"failed after {attempt} attempts: {type(exc).__name__}: {exc}", "failed"
                    )
                    return
                log.warning(
                    "%s: %s failed (attempt %d): %s", self.consumer.name, envelope.id, attempt, redact(str(exc))
                )
                await asyncio.sleep(self.consumer.retry_backoff_s * 2 ** (attempt - 1))
                attempt += 1

    async def dead_letter(self, record: ConsumerRecord, reason: str, kind: str) -> None:
        """Publish the record to the DLQ with its own headers plus why and whence; a record
        that cannot be published whole becomes a stub, so the consumer never wedges on it."""
        reason = redact(reason)  # no value quoted by a driver or validator leaves in a header or a log
        origin = {
            H_REASON: reason[:1000],
            H_KIND: kind,
            H_TOPIC: record.topic,
            H_PARTITION: str(record.partition),
            H_OFFSET: str(record.offset),
            H_CONSUMER: self.consumer.name,
        }
        log.warning("dead-letter %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        own = {k: v.decode(errors="replace") for k, v in record.headers or () if not k.startswith("dlq-")}
        try:
            await self._publish_dead_letter(record.value or b"", record.key, own | origin)
        except UNPUBLISHABLE as exc:
            digest = "sha256:" + hashlib.sha256(record.value or b"").hexdigest()
            stub = origin | {H_STUB: f"{type(exc).__name__}: {len(record.value or b'')} bytes", H_DIGEST: digest}
            await self._publish_dead_letter(b"", record.key, stub)
        self.metrics.dead_lettered(self.consumer.name, kind)

    async def _publish_dead_letter(self, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        if not self.kafka_enabled:  # waiting for a broker that will never come would hang the caller
            raise RuntimeError(f"Kafka is off: cannot dead-letter ({headers[H_KIND]}: {headers[H_REASON]})")
        delay = 0.5
        while True:  # the offset must not move on before the dead letter is safe in Kafka
            try:
                await self.broker.publish(value, self.consumer.dead_letter_topic, key=key, headers=headers)
                self._recovered()
                return
            except UNPUBLISHABLE:
                raise
            except Exception as exc:  # noqa: BLE001
                self.healthy = False
                log.error("dead-letter publish failed (%s); retrying in %.1fs", exc, delay)
                await self._pause(delay)
                delay = min(delay * 2, OUTAGE_BACKOFF_MAX_S)


def _check_origin(cls: type[Event], envelope: ce.CloudEvent, topic: str) -> None:
    """ACLs say who may write a topic, not what: an event is trusted only on its own topic
    and from its own service. Topics outside the catalog (a test's) exist only by an operator."""
    allowed = (cls.topic, *topics.FORMER_TOPICS.get(cls.event_type(), ()))
    if topic not in allowed and any(t.name == topic for t in topics.CATALOG):
        raise ce.InvalidMessage(f"{envelope.type} does not travel on {topic}", "untrusted-origin")
    if envelope.source != f"/firstline/{cls.service}":
        raise ce.InvalidMessage(
            f"{envelope.type} from {envelope.source!r}, not /firstline/{cls.service}", "untrusted-origin"
        )


async def _claim(uow: UnitOfWork, consumer: str, envelopes: list[ce.CloudEvent]) -> set[str]:
    """A batch's event ids into the inbox; returns those not applied before. On PostgreSQL a
    large batch is COPYed in whole (about half the server's cost of INSERT ... ON CONFLICT);
    `UnitOfWork.claim` handles redeliveries and the small batches of a trickle."""
    if uow.db.is_postgres and len(envelopes) >= COPY_PAYS_FROM:
        now = uow.clock.now()
        rows = {
            e.id: {"consumer": consumer, "event_id": e.id, "event_type": e.type, "processed_at": now} for e in envelopes
        }
        if rows and await copy_if_all_new(uow.session, InboxMessage.__table__, list(rows.values())):
            return set(rows)
    return await uow.claim(consumer, envelopes)


async def _raw_records(msg: Any) -> Any:
    """Leave bodies undecoded: garbage must reach `handle` to be dead-lettered, not crash a parser."""
    return msg.body
