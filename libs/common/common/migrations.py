"""Alembic migrations, per service, driven from code.

Each service keeps `<service>/migrations/` (env.py calls `run_env`); `upgrade` brings a
database to head at start-up (or once, from a deploy step: `firstline migrations upgrade`),
and `firstline migrations revision` autogenerates a new revision from the service's models.

Replicas that start together may upgrade at once: each upgrade holds a lock for its whole
transaction (an advisory lock on PostgreSQL, an exclusive one on SQLite), so the second
waits, then finds the database at head and does nothing.
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
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


# One advisory lock key for every migration of a database (each service has its own).
ADVISORY_LOCK_KEY = zlib.crc32(b"firstline-migrations")


async def _run(db: Database, script_location: str | Path, step, revision: str) -> None:
    def run(connection) -> None:
        cfg = alembic_config(script_location)
        cfg.attributes["connection"] = connection
        step(cfg, revision)

    async with db.engine.begin() as conn:
        if db.is_postgres:  # released when the transaction ends
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")
        else:  # no other writer until commit; a second upgrade waits (busy_timeout)
            await conn.exec_driver_sql("BEGIN EXCLUSIVE")
        await conn.run_sync(run)


async def current(db: Database, script_location: str | Path) -> tuple[str | None, str | None]:
    """(the database's revision, the scripts' head): equal when the schema is up to date."""

    def read(connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as conn:
        revision = await conn.run_sync(read)
    return revision, ScriptDirectory.from_config(alembic_config(script_location)).get_current_head()


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
