"""The outbox's part of privacy: sent rows of health-carrying events go sooner than the
others, an erased person's sent rows can be deleted by key, and a staged tombstone is
published as a null value (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from common.clock import ManualClock
from common.events.checkin import ResidentErased
from common.outbox import OutboxMessage, delete_sent
from common.retention import HEALTH_EVENT_TYPES
from common.runtime import Runtime
from common.settings import ServiceSettings

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


def row(event_type: str, key: str) -> dict:
    return {"event_id": f"e-{event_type}-{key}", "event_type": event_type, "topic": "checkin.events.v1", "key": key,
            "value": "{}", "created_at": NOW - timedelta(days=2)}  # fmt: skip


def runtime_for(database_url: str) -> Runtime:
    settings = ServiceSettings(service="privacytest", database_url=database_url, kafka_enabled=False,
                               jobs_interval_s=0, outbox_health_retention_hours=24)  # fmt: skip
    return Runtime(settings, clock=ManualClock(NOW))


async def keys_left(runtime: Runtime) -> list[tuple[str, str]]:
    table = OutboxMessage.__table__
    async with runtime.db.session() as session:
        rows = await session.execute(select(table.c.event_type, table.c.key).order_by(table.c.seq))
        return [tuple(r) for r in rows]


async def test_health_carrying_rows_go_after_a_day_and_the_others_stay(database_url):
    runtime = runtime_for(database_url)
    try:
        await runtime.db.create_all()
        table = OutboxMessage.__table__
        async with runtime.db.session() as session:
            await session.execute(insert(table), [
                row("HealthAnomalyReported", "R1"), row("CheckInSubmitted", "R2"), row("StockLow", "I1"),
                row("CheckInSubmitted", "R3"), row("HealthAnomalyReported", "R4"),
            ])  # fmt: skip
            for key, hours in (("R1", 25), ("R2", 30), ("I1", 25), ("R3", 23)):  # R4 was never sent
                await session.execute(
                    update(table).where(table.c.key == key).values(sent_at=NOW - timedelta(hours=hours))
                )
            await session.commit()
        assert {"HealthAnomalyReported", "CheckInSubmitted"} <= HEALTH_EVENT_TYPES
        assert await runtime.run_job("outbox-health-purge") == 2
        assert await keys_left(runtime) == [
            ("StockLow", "I1"),
            ("CheckInSubmitted", "R3"),
            ("HealthAnomalyReported", "R4"),
        ]

        async with runtime.db.session() as session:  # an erasure: the sent rows of the key, never the unsent
            await session.execute(update(table).where(table.c.key == "R3").values(sent_at=NOW))
            assert await delete_sent(session, ["R3", "R4"]) == 1
            await session.commit()
        assert await keys_left(runtime) == [("StockLow", "I1"), ("HealthAnomalyReported", "R4")]
    finally:
        await runtime.db.dispose()


async def test_a_tombstone_is_published_as_a_null_value_after_the_events_before_it(database_url):
    runtime = runtime_for(database_url)
    published: list[tuple[str, bytes, bytes | None]] = []

    async def publish(records, headers):
        published.extend(records)
        return []

    runtime.relay.publish = publish
    try:
        await runtime.db.create_all()
        async with runtime.work() as uow:
            uow.emit(ResidentErased(resident_id="R1", erasure_id="E-1", requested_at=NOW))
            uow.tombstone("checkin.residents.v1", "R1")
        assert await runtime.relay.publish_pending() == 2
        assert [(topic, key, value is None) for topic, key, value in published] == [
            ("checkin.residents.v1", b"R1", False), ("checkin.residents.v1", b"R1", True)
        ]  # fmt: skip
        assert b"ResidentErased" in published[0][2]
    finally:
        await runtime.db.dispose()
