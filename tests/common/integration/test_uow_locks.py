"""A read-then-write under `uow.lock_for_write()` and `uow.for_update(query)` is never lost:
the second of two concurrent units of work waits for the first, then reads what it wrote
(SQLite: the database's one write lock; PostgreSQL: the row's lock)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import insert, select

from common.clock import ManualClock
from common.db import Database
from common.outbox import OutboxMessage, UnitOfWork

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
COUNTER = OutboxMessage.__table__  # any table does: a row whose value counts the increments


async def increment(uow: UnitOfWork, locked: asyncio.Event | None = None) -> int:
    await uow.lock_for_write()
    row = (await uow.session.execute(uow.for_update(select(OutboxMessage).where(OutboxMessage.seq == 1)))).scalar_one()
    if locked is not None:
        locked.set()
    row.value = str(int(row.value) + 1)
    return int(row.value)


async def test_the_second_writer_waits_and_reads_the_first_one_s_write(database_url) -> None:
    db = Database(database_url)
    clock = ManualClock(NOW)
    try:
        await db.create_all()
        async with db.session() as session:
            values = {
                "event_id": "e-1",
                "event_type": "Counter",
                "topic": "t",
                "key": "k",
                "value": "0",
                "created_at": NOW,
            }
            await session.execute(insert(COUNTER), [values])
            await session.commit()

        async with UnitOfWork(db, clock) as first:
            await increment(first)

            async def second() -> int:
                async with UnitOfWork(db, clock) as uow:
                    value = await increment(uow)
                    await uow.commit()
                    return value

            waiting = asyncio.create_task(second())
            done, _ = await asyncio.wait({waiting}, timeout=1.0)  # not cancelled: it must still be waiting
            assert not done, "the second writer read while the first held the lock"
            await first.commit()
        assert await waiting == 2  # it read 1, the first writer's value, not the 0 it would have read unlocked

        async with db.session() as session:
            assert (await session.execute(select(OutboxMessage.value))).scalar_one() == "2"
    finally:
        await db.dispose()


async def test_insert_is_the_database_s_own_and_knows_on_conflict(database_url) -> None:
    db = Database(database_url)
    try:
        await db.create_all()
        values = {
            "seq": 7,
            "event_id": "e-7",
            "event_type": "X",
            "topic": "t",
            "key": "k",
            "value": "{}",
            "created_at": NOW,
        }
        async with UnitOfWork(db, ManualClock(NOW)) as uow:
            statement = uow.insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["seq"])
            first = await uow.session.execute(statement.returning(OutboxMessage.seq))
            again = await uow.session.execute(statement.returning(OutboxMessage.seq))
            assert (first.scalar(), again.scalar()) == (7, None)
            await uow.commit()
    finally:
        await db.dispose()
