"""The command center's consumer runner: the contract of `common.bus.ConsumerRunner` (apply
each event once, commit, then ack; dead-letter what cannot be applied; one by one with
retries when a batch fails), with a batch's bookkeeping done in bulk.

A cutoff sweep sends tens of thousands of `CheckInMissed` at once. Applied one at a time,
each would cost three round trips (inbox, open ticket, check-in fact) before any work; here
one statement claims the inbox for the whole batch, one query loads the open tickets the
batch concerns, and the check-in facts go in together before the commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiokafka import ConsumerRecord
from common import envelope as ce
from common.bus import Consumer, ConsumerRunner
from common.outbox import InboxMessage, UnitOfWork
from common.runtime import Runtime
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

if TYPE_CHECKING:
    from command.service import CommandService

log = logging.getLogger(__name__)


class BatchRunner(ConsumerRunner):
    def __init__(self, consumer: Consumer, runtime: Runtime, service: CommandService) -> None:
        super().__init__(
            consumer, runtime.broker, runtime.uow, runtime.metrics, max_records=runtime.settings.consumer_max_records
        )
        self.service = service

    @classmethod
    def install(cls, runtime: Runtime, consumer: Consumer, service: CommandService) -> BatchRunner:
        """What `Runtime.consume` does, with this runner."""
        consumer.max_attempts = runtime.settings.consumer_max_attempts
        consumer.retry_backoff_s = runtime.settings.consumer_retry_backoff_s
        runner = cls(consumer, runtime, service)
        if runtime.settings.start_consumers:
            runner.attach()
        runtime.runners.append(runner)
        return runner

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        valid = []
        for record in records:
            try:
                envelope = ce.parse(record.value)
                decoded = self._decode(envelope)
            except ce.InvalidMessage as exc:
                await self.dead_letter(record, exc.reason, exc.kind)
                continue
            if decoded is None:
                self.metrics.consumed(self.consumer.name, envelope.type, "ignored")
                continue
            valid.append((record, envelope, *decoded))
        if not valid:
            return
        started = time.perf_counter()
        try:
            async with self.uow() as uow:
                fresh = await claim_inbox(uow, self.consumer.name, [envelope for _, envelope, _, _ in valid])
                await self.service.prefetch(uow, [event for _, envelope, event, _ in valid if envelope.id in fresh])
                for _record, envelope, event, handler in valid:
                    if envelope.id not in fresh:
                        continue  # applied before: redelivery or replay
                    fresh.discard(envelope.id)  # the same event twice in one batch applies once
                    uow.cause = envelope
                    await handler(event, envelope, uow)
                    uow.cause = None
                await self.service.flush(uow)
                await uow.commit()
        except Exception as exc:
            log.info("%s: batch of %d failed (%s); applying one by one", self.consumer.name, len(valid), exc)
            for item in valid:
                await self._apply_with_retries(*item)
        else:
            for _record, envelope, _e, _h in valid:
                self.metrics.consumed(self.consumer.name, envelope.type, "applied")
        self.metrics.handler_seconds(self.consumer.name, time.perf_counter() - started, len(valid))


async def claim_inbox(uow: UnitOfWork, consumer: str, envelopes: list[ce.CloudEvent]) -> set[str]:
    """Record every event id in the inbox in one statement; return the ids that were new."""
    now = uow.clock.now()
    rows = {
        e.id: {"consumer": consumer, "event_id": e.id, "event_type": e.type, "processed_at": now} for e in envelopes
    }
    dialect = uow.session.bind.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    result = await uow.session.execute(
        insert(InboxMessage.__table__)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(InboxMessage.__table__.c.event_id),
        list(rows.values()),  # executemany: one compiled statement whatever the batch size
    )
    return set(result.scalars())
