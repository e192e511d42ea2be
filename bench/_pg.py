"""Benchmarks' PostgreSQL: a fresh database per run on the project's cluster (`make bench`
starts it), or FIRSTLINE_BENCH_PG_URL pointing at the server's `postgres` database."""

from __future__ import annotations

import os
import subprocess
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


def server_url() -> str:
    url = os.environ.get("FIRSTLINE_BENCH_PG_URL")
    if url:
        return url
    subprocess.run([str(ROOT / "deploy/postgres/postgres.sh"), "start"], check=True, capture_output=True)
    return subprocess.run(
        [str(ROOT / "deploy/postgres/postgres.sh"), "url", "postgres"], check=True, capture_output=True, text=True
    ).stdout.strip()


def _dsn(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(prefix: str):
    """Yields (sqlalchemy url, asyncpg dsn) of a new database, dropped afterwards."""
    url = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_dsn(url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False), _dsn(url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
