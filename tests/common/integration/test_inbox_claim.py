"""A consumer's batch claims its event ids in the inbox at once: on PostgreSQL a big batch of
new events is copied in whole, and a batch that holds events applied before (a redelivery)
still applies only the new ones, once each, in the same transaction; small batches are
claimed with one statement (and all of it on SQLite)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from aiokafka import ConsumerRecord
from sqlalchemy import func, select
from sqlmodel import Field, SQLModel

from common import envelope
from common.bus import Consumer
from common.db import COPY_PAYS_FROM
from common.events.checkin import CheckInMissed
from common.outbox import InboxMessage
from common.runtime import Runtime
from common.settings import ServiceSettings


class Applied(SQLModel, table=True):
    """What the test consumer does: one row per event it applies (a second one would fail)."""

    __tablename__ = "test_applied"
    resident_id: str = Field(primary_key=True)


calls: list[str] = []


async def on_missed(event: CheckInMissed, _envelope, uow) -> None:
    calls.append(event.resident_id)
    uow.session.add(Applied(resident_id=event.resident_id))


def record(value: bytes, offset: int) -> ConsumerRecord:
    return ConsumerRecord("t", 0, offset, 0, 0, b"k", value, None, 1, len(value), [])


async def test_a_batch_applies_each_new_event_once_whether_or_not_it_holds_old_ones(database_url):
    settings = ServiceSettings(service="claimtest", database_url=database_url, kafka_enabled=False, start_consumers=False,
                               jobs_interval_s=0)  # fmt: skip
    runtime = Runtime(settings)
    runner = runtime.consume(
        Consumer(name="claimtest", topics=["t"], handlers={CheckInMissed: on_missed}, dead_letter_topic="t.dlq")
    )
    await runtime.db.create_all()
    calls.clear()
    try:
        values = [
            envelope.encode(envelope.wrap(CheckInMissed(resident_id=f"R-{i}-{uuid.uuid4().hex[:6]}", date=date(2026, 11, 28),
                                                        consecutive_days=1, grid_id="G1", building_id="B1"), at=datetime.now(UTC)))
            for i in range(2 * COPY_PAYS_FROM + 3)
        ]  # fmt: skip
        old, new, trickle = values[:COPY_PAYS_FROM], values[COPY_PAYS_FROM:-3], values[-3:]
        await runner.handle([record(v, i) for i, v in enumerate(old)])  # all new: copied on PostgreSQL
        # A redelivery of those with as many new ones, one of them twice in the batch.
        await runner.handle([record(v, i) for i, v in enumerate(old + new + new[-1:])])
        await runner.handle([record(v, i) for i, v in enumerate(trickle)])  # a small batch: claimed with one statement
        async with runtime.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Applied)) == len(values)
            assert await session.scalar(select(func.count()).select_from(InboxMessage)) == len(values)
        await runner.handle([record(v, i) for i, v in enumerate(values)])  # nothing new: nothing applied
        async with runtime.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Applied)) == len(values)
        # Each event was handled once: no batch failed and was replayed one event at a time.
        assert len(calls) == len(set(calls)) == len(values)
    finally:
        await runtime.db.dispose()
