"""Migrations match models."""

from __future__ import annotations

from common.migrations import pending_changes


async def test_migrations_create_exactly_the_models_schema(checkin):
    """The app ran Alembic's migrations at start-up; the models must not differ from them."""
    async with checkin.runtime.db.engine.connect() as conn:
        changes = await conn.run_sync(pending_changes)
    assert changes == [], f"models differ from migrations (run `firstline migrations revision checkin -m ...`): {changes}"
