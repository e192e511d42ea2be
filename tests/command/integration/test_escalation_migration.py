"""Escalation levels are counted per opening of a ticket: the migration puts existing rows in
their ticket's first opening, lets a later opening use the same levels again, and goes back.
The notice columns went when messaging took over the notice: going back marks every row
notified, so the older code sends no notice a second time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import command.models
from common.db import Database
from common.migrations import downgrade, pending_changes, upgrade

MIGRATIONS = Path(command.models.__file__).parent / "migrations"
BEFORE = "e40bf37ddf80"  # the revision before levels were counted per opening
AT = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
OLD_ROW = ("INSERT INTO escalation (ticket_id, level, breach, from_owner, to_owner, at, notify_attempts) "
           "VALUES (:ticket, :level, 'respond', 'gw-G1', 'grid-lead', :at, 0)")  # fmt: skip
ROW = ("INSERT INTO escalation (ticket_id, opening, level, breach, from_owner, to_owner, at) "
       "VALUES (:ticket, :opening, :level, 'respond', 'gw-G1', 'grid-lead', :at)")  # fmt: skip


async def test_the_migration_counts_levels_per_opening_and_goes_back(database_url):
    db = Database(database_url)
    try:
        await upgrade(db, MIGRATIONS, BEFORE)
        async with db.engine.begin() as conn:  # escalations of the previous code
            for ticket, level in (("T-1", 1), ("T-1", 2), ("T-2", 1)):
                await conn.execute(text(OLD_ROW), {"ticket": ticket, "level": level, "at": AT})

        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(pending_changes) == []
            rows = (
                await conn.execute(text("SELECT ticket_id, opening, level FROM escalation ORDER BY escalation_id"))
            ).all()
            assert [tuple(r) for r in rows] == [("T-1", 0, 1), ("T-1", 0, 2), ("T-2", 0, 1)]
        reopened = text(ROW)
        async with db.engine.begin() as conn:  # the ticket's second opening starts at level 1 again
            await conn.execute(reopened, {"ticket": "T-1", "opening": 1, "level": 1, "at": AT})
        with pytest.raises(IntegrityError):  # still once per level within an opening
            async with db.engine.begin() as conn:
                await conn.execute(reopened, {"ticket": "T-1", "opening": 1, "level": 1, "at": AT})

        await downgrade(db, MIGRATIONS, BEFORE)  # the older schema keeps the first openings' rows
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT ticket_id, level, notified_at IS NOT NULL FROM escalation ORDER BY escalation_id")
                )
            ).all()
            assert [tuple(r) for r in rows] == [("T-1", 1, True), ("T-1", 2, True), ("T-2", 1, True)]
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(pending_changes) == []
    finally:
        await db.dispose()
