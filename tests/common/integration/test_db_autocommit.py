"""`Database.autocommit()`: the pooled asyncpg connection of the hot paths, outside any
transaction block; a connection the server dropped is not handed out again."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from common.db import Database


async def test_autocommit_statements_commit_alone_and_a_dropped_connection_is_replaced(database_url):
    db = Database(database_url)
    try:
        if db.is_sqlite:
            with pytest.raises(RuntimeError, match="PostgreSQL only"):
                async with db.autocommit():
                    pass
            return
        async with db.autocommit() as connection:
            await connection.execute("CREATE TABLE note (text text NOT NULL)")
            await connection.execute("INSERT INTO note VALUES ('kept')")
            with pytest.raises(Exception, match="null value"):
                await connection.execute("INSERT INTO note VALUES ('with'), (NULL)")  # one statement: all or nothing
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT string_agg(text, ',') FROM note") == "kept"

        with pytest.raises(Exception):
            async with db.autocommit() as victim:
                pid = await victim.fetchval("SELECT pg_backend_pid()")
                async with db.session() as session:  # another pooled connection ends this one's backend
                    await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await victim.fetchval("SELECT 1")
        async with db.autocommit() as one, db.autocommit() as two:  # every pooled connection at once
            assert pid not in {
                await one.fetchval("SELECT pg_backend_pid()"),
                await two.fetchval("SELECT pg_backend_pid()"),
            }
            assert await one.fetchval("SELECT count(*) FROM note") == 1
    finally:
        await db.dispose()
