"""The relay's read on PostgreSQL walks the index of unsent rows in its order: bitmap scans
are off for the pass's transaction (with them, a sweep's backlog was read by a bitmap scan
of every unsent row and a sort of the batch, and the index entries of rows already sent were
never marked dead; seen with auto_explain in bench/command_pipeline.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql

from common.db import Database
from common.outbox import LOCK_AND_PLAN, RELAY_LOCK_ID, OutboxMessage, next_batch

AT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


async def test_a_relay_pass_reads_the_unsent_rows_in_index_order_without_bitmap_scans(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the plan is PostgreSQL's")
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: OutboxMessage.__table__.create(c))
        rows = [{"event_id": f"e-{i}", "event_type": "TicketOpened", "topic": "command.events.v1", "key": f"T-{i}",
                 "value": "x" * 800, "created_at": AT} for i in range(8000)]  # fmt: skip
        async with db.session() as session:  # an outbox in use, not analysed yet: 5,000 rows sent, then a backlog
            await session.execute(insert(OutboxMessage.__table__), rows[:5000])
            await session.execute(text("UPDATE outbox SET sent_at = now()"))
            await session.execute(insert(OutboxMessage.__table__), rows[5000:])
            await session.commit()
        query = next_batch(10_000).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        async with db.session() as session:
            assert (await session.execute(LOCK_AND_PLAN, {"k": RELAY_LOCK_ID})).one()[0]
            assert await session.scalar(text("SHOW enable_bitmapscan")) == "off"
            plan = "\n".join((await session.execute(text(f"EXPLAIN {query}"))).scalars())
            assert "Index Scan using ix_outbox_unsent" in plan and "Sort" not in plan and "Bitmap" not in plan, plan
        async with db.session() as session:  # for the pass's transaction only
            assert await session.scalar(text("SHOW enable_bitmapscan")) == "on"
    finally:
        await db.dispose()
