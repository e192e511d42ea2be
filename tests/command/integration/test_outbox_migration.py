"""The outbox migration (an index of the unsent rows only, event_id not unique): a database
made by the initial schema, with sent and unsent events in it, comes out with the models'
schema, keeps its rows, and its relay publishes exactly the unsent ones, in order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, inspect, select

import command.models
from common.clock import ManualClock
from common.db import Database
from common.migrations import downgrade, pending_changes, upgrade
from common.outbox import OutboxMessage, OutboxRelay

MIGRATIONS = Path(command.models.__file__).parent / "migrations"
INITIAL = "8814169f69f2"
AT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def _row(event_id: str, key: str, sent: bool) -> dict:
    return {"event_id": event_id, "event_type": "TicketOpened", "topic": "command.events.v1", "key": key,
            "value": f'{{"id": "{event_id}"}}', "created_at": AT, "sent_at": AT if sent else None}  # fmt: skip


def _outbox_indexes(connection) -> tuple[list, list]:
    found = inspect(connection)
    return found.get_unique_constraints("outbox"), [(i["name"], i["column_names"]) for i in found.get_indexes("outbox")]


async def test_upgrade_keeps_the_outbox_and_the_relay_publishes_only_what_was_unsent(database_url):
    db = Database(database_url)
    try:
        await upgrade(db, MIGRATIONS, INITIAL)
        async with db.session() as session:
            rows = [_row("e-1", "T-1", sent=True), _row("e-2", "T-2", sent=False), _row("e-3", "T-1", sent=False)]
            await session.execute(insert(OutboxMessage.__table__), rows)
            await session.commit()

        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(pending_changes) == []
            assert await conn.run_sync(_outbox_indexes) == ([], [("ix_outbox_unsent", ["seq"])])
        async with db.session() as session:
            # A new event after the upgrade (SQLite copied the table): the sequence goes on.
            await session.execute(insert(OutboxMessage.__table__), [_row("e-4", "T-3", sent=False)])
            await session.commit()
            kept = (
                await session.execute(select(OutboxMessage.seq, OutboxMessage.event_id).order_by(OutboxMessage.seq))
            ).all()
        assert [event_id for _, event_id in kept] == ["e-1", "e-2", "e-3", "e-4"]
        assert [seq for seq, _ in kept] == sorted({seq for seq, _ in kept})

        published: list[tuple[str, bytes]] = []

        async def publish(records, headers):
            published.extend((topic, key) for topic, key, _ in records)
            return []

        relay = OutboxRelay(db, publish, clock=ManualClock(AT), batch_size=2)
        assert await relay.publish_pending() == 2  # a batch at a time, in commit order
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0
        assert published == [
            ("command.events.v1", b"T-2"),
            ("command.events.v1", b"T-1"),
            ("command.events.v1", b"T-3"),
        ]
        async with db.session() as session:
            assert await session.scalar(select(OutboxMessage.seq).where(OutboxMessage.sent_at.is_(None))) is None

        await downgrade(db, MIGRATIONS, INITIAL)  # and back: the downgrade restores the old schema
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(pending_changes) == []
    finally:
        await db.dispose()
