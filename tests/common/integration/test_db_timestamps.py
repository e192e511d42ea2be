"""timestamptz on PostgreSQL goes through FirstLine's own codec (common.db): what it writes
and reads is what PostgreSQL and asyncpg's own codec make of the same instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from common.db import Database

INSTANTS = [
    datetime(2026, 11, 28, 14, 3, 5, 123456, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the wire's epoch
    datetime(2026, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),  # another zone: the same instant in UTC
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


async def test_timestamps_round_trip_exactly_and_naive_ones_are_refused(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the codec is PostgreSQL's")
    db = Database(database_url)
    try:
        async with db.autocommit() as connection:
            for instant in INSTANTS:
                back = await connection.fetchval("SELECT $1::timestamptz", instant)
                assert back == instant and back.tzinfo is UTC
                as_text = await connection.fetchval(
                    "SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')", instant
                )
                u = instant.astimezone(UTC)
                assert (
                    as_text
                    == f"{u.year:04d}-{u.month:02d}-{u.day:02d} {u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}"
                )
            assert await connection.fetchval("SELECT 'infinity'::timestamptz") == datetime.max  # as asyncpg gives them
            assert await connection.fetchval("SELECT '-infinity'::timestamptz") == datetime.min
            with pytest.raises(Exception, match="naive datetime"):
                await connection.fetchval("SELECT $1::timestamptz", datetime(2026, 1, 1))
            rows = [(i, instant) for i, instant in enumerate(INSTANTS)]  # COPY, as the consumers write
            await connection.execute("CREATE TEMP TABLE moment (i int, at timestamptz)")
            await connection.copy_records_to_table("moment", records=rows)
            assert [tuple(r) for r in await connection.fetch("SELECT i, at FROM moment ORDER BY i")] == rows
            with pytest.raises(Exception, match="naive datetime"):  # COPY has no check of its own
                await connection.copy_records_to_table("moment", records=[(9, datetime(2026, 1, 1))])
    finally:
        await db.dispose()
