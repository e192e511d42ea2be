"""Sent outbox rows are deleted once past their retention, oldest first and in batches;
unsent rows stay however old they are, and so do rows sent recently (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from common.clock import ManualClock
from common.db import Database
from common.outbox import OutboxMessage, OutboxRelay
from common.runtime import Runtime
from common.settings import ServiceSettings

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


async def nothing(records, headers):
    raise AssertionError("the purge publishes nothing")


def row(i: int) -> dict:
    return {"event_id": f"e-{i}", "event_type": "TicketOpened", "topic": "command.events.v1", "key": f"T-{i}",
            "value": "{}", "created_at": NOW - timedelta(days=30)}  # fmt: skip


async def test_sent_rows_past_their_retention_are_deleted_in_batches_and_nothing_else(database_url):
    db = Database(database_url)
    try:
        await db.create_all()
        table = OutboxMessage.__table__
        async with db.session() as session:  # seq 1–12, all a month old
            await session.execute(insert(table), [row(i) for i in range(12)])
            sent = {seq: NOW - timedelta(days=8) for seq in (1, 2, 3, 4, 5, 7, 9)}  # a week and a day ago
            sent |= {10: NOW - timedelta(hours=1), 11: NOW - timedelta(days=6)}  # within the week
            for seq, at in sent.items():  # 6, 8 and 12 were never sent (Kafka away, say)
                await session.execute(update(table).where(table.c.seq == seq).values(sent_at=at))
            await session.commit()

        relay = OutboxRelay(db, nothing, clock=ManualClock(NOW))
        assert await relay.purge_sent(timedelta(days=7), batch=2) == 7  # four batches: 2, 2, 2, 1
        async with db.session() as session:
            left = (await session.execute(select(table.c.seq, table.c.sent_at.is_(None)).order_by(table.c.seq))).all()
        assert [tuple(r) for r in left] == [(6, True), (8, True), (10, False), (11, False), (12, True)]
        assert await relay.purge_sent(timedelta(days=7)) == 0
    finally:
        await db.dispose()


async def test_each_service_runs_the_purge_as_a_job_and_counts_it(database_url):
    settings = ServiceSettings(service="purgetest", database_url=database_url, kafka_enabled=False, jobs_interval_s=0,
                               outbox_retention_hours=24)  # fmt: skip
    runtime = Runtime(settings, clock=ManualClock(NOW))
    try:
        await runtime.db.create_all()
        async with runtime.db.session() as session:
            await session.execute(insert(OutboxMessage.__table__), [row(i) for i in range(3)])
            await session.execute(update(OutboxMessage.__table__).values(sent_at=NOW - timedelta(hours=25)))
            await session.commit()
        assert await runtime.run_job("outbox-purge") == 3
        assert runtime.registry.get_sample_value("firstline_outbox_purged_total", {"service": "purgetest"}) == 3
    finally:
        await runtime.db.dispose()
    kept = Runtime(
        ServiceSettings(
            service="keeper", database_url=database_url, outbox_retention_hours=0, kafka_principal="operator"
        )
    )
    try:
        with pytest.raises(KeyError, match="no job 'outbox-purge'"):  # retention 0 keeps sent rows
            await kept.run_job("outbox-purge")
    finally:
        await kept.db.dispose()
