"""The relay's read on PostgreSQL walks the index of unsent rows in its order: bitmap scans
are off for the pass's transaction (with them, a sweep's backlog was read by a bitmap scan
of every unsent row and a sort of the batch, and the index entries of rows already sent were
never marked dead; seen with auto_explain in bench/command_pipeline.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text

from common.db import Database
from common.outbox import PG_LOCK_AND_PLAN, PG_NEXT_BATCH, RELAY_LOCK_ID, OutboxMessage

AT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("analysed", [False, True], ids=["fresh statistics", "analysed"])
async def test_a_relay_pass_reads_the_unsent_rows_in_index_order_without_bitmap_scans(database_url, analysed):
    if not database_url.startswith("postgresql"):
        pytest.skip("the plan is PostgreSQL's")
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: OutboxMessage.__table__.create(c))
        rows = [{"event_id": f"e-{i}", "event_type": "TicketOpened", "topic": "command.events.v1", "key": f"T-{i}",
                 "value": "x" * 800, "created_at": AT} for i in range(20_000)]  # fmt: skip
        async with db.session() as session:  # an outbox in use: 12,000 rows sent, then a backlog
            await session.execute(insert(OutboxMessage.__table__), rows[:12_000])
            await session.execute(text("UPDATE outbox SET sent_at = now()"))
            await session.execute(insert(OutboxMessage.__table__), rows[12_000:])
            if analysed:
                await session.execute(text("ANALYZE outbox"))
            await session.commit()
        async with db.autocommit() as connection:
            async with connection.transaction():
                assert await connection.fetchval(PG_LOCK_AND_PLAN, RELAY_LOCK_ID)
                assert await connection.fetchval("SHOW enable_bitmapscan") == "off"
                read = "\n".join(row[0] for row in await connection.fetch(f"EXPLAIN {PG_NEXT_BATCH}", 10_000))
                assert "Index Scan using ix_outbox_unsent" in read, read
                assert "Sort" not in read and "Bitmap" not in read and "Seq Scan" not in read, read
            assert await connection.fetchval("SHOW enable_bitmapscan") == "on"  # for the pass's transaction only
    finally:
        await db.dispose()
