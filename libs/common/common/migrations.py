"""Alembic migrations, per service, driven from code.

Each service keeps `<service>/migrations/` (env.py calls `run_env`); `upgrade` brings a
database to head at start-up, and `firstline migrations revision` autogenerates a new
revision from the service's models.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlmodel import SQLModel

from common.db import Database


def alembic_config(script_location: str | Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    return cfg


def run_env(context) -> None:
    """Body of every service's migrations/env.py: run on the connection we are handed."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def upgrade(db: Database, script_location: str | Path, revision: str = "head") -> None:
    await _run(db, script_location, command.upgrade, revision)


async def downgrade(db: Database, script_location: str | Path, revision: str) -> None:
    """Back to `revision` (tests of a migration's way down)."""
    await _run(db, script_location, command.downgrade, revision)


async def _run(db: Database, script_location: str | Path, step, revision: str) -> None:
    def run(connection) -> None:
        cfg = alembic_config(script_location)
        cfg.attributes["connection"] = connection
        step(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


async def new_revision(script_location: str | Path, message: str) -> None:
    """Autogenerate a revision: diff the models against a scratch database at head."""
    with tempfile.TemporaryDirectory() as scratch:
        db = Database(f"sqlite+aiosqlite:///{scratch}/scratch.db")
        await upgrade(db, script_location)

        def _revise(connection) -> None:
            cfg = alembic_config(script_location)
            cfg.attributes["connection"] = connection
            command.revision(cfg, message=message, autogenerate=True)

        async with db.engine.begin() as conn:
            await conn.run_sync(_revise)
        await db.dispose()


def pending_changes(connection) -> list:
    """The differences between the models and the database (empty when migrations are complete)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, SQLModel.metadata)
