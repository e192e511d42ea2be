"""Migrations match models, and the latest one goes back and forth."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

import checkin.models
from common.db import Database
from common.migrations import downgrade, pending_changes, upgrade

MIGRATIONS = Path(checkin.models.__file__).parent / "migrations"
BEFORE_REMINDERS_LEFT = "29a69e11d39f"  # the revision before messaging took over the reminders


async def test_migrations_create_exactly_the_models_schema(checkin):
    """The app ran Alembic's migrations at start-up; the models must not differ from them."""
    async with checkin.runtime.db.engine.connect() as conn:
        changes = await conn.run_sync(pending_changes)
    assert changes == [], (
        f"models differ from migrations (run `firstline migrations revision checkin -m ...`): {changes}"
    )


async def test_the_reminder_table_is_dropped_and_comes_back_on_downgrade(database_url):
    db = Database(database_url)
    try:
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert "reminder" not in await conn.run_sync(lambda c: inspect(c).get_table_names())
        await downgrade(db, MIGRATIONS, BEFORE_REMINDERS_LEFT)
        async with db.engine.connect() as conn:
            assert "reminder" in await conn.run_sync(lambda c: inspect(c).get_table_names())
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(pending_changes) == []
    finally:
        await db.dispose()
