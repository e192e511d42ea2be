"""Replicas that start together migrate a fresh database at once: every upgrade succeeds,
and the database ends at head (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from pathlib import Path

import pytest

from common import migrations
from common.db import Database

FIRSTLINE = str(Path(sys.executable).parent / "firstline")
REPLICAS = 4


async def firstline(service: str, database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, f"{service.upper()}_DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        FIRSTLINE, "migrations", *args, service, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode, out.decode()


@pytest.mark.parametrize("service", ["checkin", "command"])
async def test_upgrades_started_together_all_succeed(database_url, service):
    results = await asyncio.gather(*(firstline(service, database_url, "upgrade") for _ in range(REPLICAS)))
    for returncode, output in results:
        assert returncode == 0, output
    returncode, output = await firstline(service, database_url, "current", "--check")
    assert returncode == 0, output
    current = json.loads(output.splitlines()[-1])
    assert current["revision"] == current["head"] is not None


async def test_current_check_fails_on_a_database_not_at_head(database_url):
    returncode, output = await firstline("checkin", database_url, "current", "--check")
    assert returncode == 1, output
    assert json.loads(output.splitlines()[-1])["at_head"] is False


@pytest.mark.parametrize("service", ["checkin", "command"])
async def test_upgrades_in_one_instant_all_succeed(database_url, service):
    """The same race without process start-up spreading the replicas out: four engines
    upgrade concurrently, as replicas whose start-up happened to line up exactly."""
    location = Path(importlib.import_module(service).__file__).parent / "migrations"
    engines = [Database(database_url) for _ in range(REPLICAS)]
    try:
        racing = asyncio.gather(*(migrations.upgrade(db, location) for db in engines), return_exceptions=True)
        results = await asyncio.wait_for(racing, timeout=60)  # unlocked upgrades can deadlock
        assert [r for r in results if isinstance(r, BaseException)] == []
        revision, head = await migrations.current(engines[0], location)
        assert revision == head is not None
    finally:
        for db in engines:
            await db.dispose()
