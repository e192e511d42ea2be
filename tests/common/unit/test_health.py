"""Health that tells the truth: /readyz answers for the database only (a broker outage is
not an HTTP outage), /pipelinez for Kafka, the relay and the consumers, and a database or
disk that refuses a write gives a JSON 503 with a reason and Retry-After."""

from __future__ import annotations

import errno
import sqlite3
import time

import asyncpg
import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError, OperationalError

from common.bus import Consumer
from common.runtime import Runtime
from common.settings import ServiceSettings
from common.web import create_http_app, unavailable_reason


def runtime_for(tmp_path, database_url: str | None = None, **overrides) -> Runtime:
    settings = ServiceSettings(service="healthtest", database_url=database_url or f"sqlite+aiosqlite:///{tmp_path}/h.db",
                               jobs_interval_s=0, migrate_on_start=False, start_consumers=False, **overrides)  # fmt: skip
    return Runtime(settings)


def app_for(runtime: Runtime, failure: Exception | None = None):
    router = APIRouter()

    @router.post("/writes")
    async def write() -> dict:
        if failure is not None:
            raise failure
        return {"ok": True}

    return create_http_app(runtime, title="health test", description="", routers=[router])


async def call(app, method: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await client.request(method, path)


async def test_readyz_is_the_database_alone_and_kafka_away_leaves_it_ready(tmp_path):
    # Kafka enabled and never connected: the broker is away (nothing listens on port 9)
    runtime = runtime_for(
        tmp_path, KAFKA_SSL_CAFILE="", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", KAFKA_USERNAME="u", KAFKA_PASSWORD="p"
    )
    app = app_for(runtime)
    await runtime.db.create_all()
    ready = await call(app, "GET", "/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "database": True}
    pipeline = await call(app, "GET", "/pipelinez")
    assert pipeline.status_code == 503 and pipeline.json()["kafka"] is False
    assert any("Kafka" in p for p in pipeline.json()["problems"])
    await runtime.db.dispose()


async def test_readyz_answers_503_fast_when_the_database_is_unreachable(tmp_path):
    runtime = runtime_for(tmp_path, "postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none", kafka_enabled=False)
    started = time.monotonic()
    ready = await call(app_for(runtime), "GET", "/readyz")
    assert ready.status_code == 503 and ready.json()["database"] is False and ready.headers["Retry-After"]
    assert time.monotonic() - started < 3


async def test_pipelinez_reports_an_old_outbox_and_a_consumer_that_commits_nothing_while_behind(tmp_path):
    runtime = runtime_for(tmp_path, kafka_enabled=False, pipeline_stall_s=0.0, pipeline_max_outbox_age_s=60)
    runner = runtime.consume(Consumer("healthtest", ["some.topic"], {}, "healthtest.dlq.v1"))
    app = app_for(runtime)
    assert (await call(app, "GET", "/pipelinez")).status_code == 200
    runtime._note_progress("healthtest", committed=100, lag=0)
    assert (await call(app, "GET", "/pipelinez")).json()["consumers"]["healthtest"]["stalled"] is False
    runtime._note_progress("healthtest", committed=100, lag=40)  # behind, and the offsets did not move
    body = (await call(app, "GET", "/pipelinez")).json()
    assert body["healthy"] is False and body["consumers"]["healthtest"] == {
        "applying": True, "lag": 40, "committed_s_ago": body["consumers"]["healthtest"]["committed_s_ago"],
        "stalled": True}  # fmt: skip
    assert "40 events behind" in " ".join(body["problems"])
    metrics = (await call(app, "GET", "/metrics")).text
    assert 'firstline_consumer_stalled{consumer="healthtest",service="healthtest"} 1.0' in metrics
    assert 'firstline_pipeline_healthy{service="healthtest"} 0.0' in metrics
    runtime._note_progress("healthtest", committed=140, lag=0)  # caught up
    runner.healthy = False  # waiting out an outage
    body = (await call(app, "GET", "/pipelinez")).json()
    assert body["consumers"]["healthtest"]["stalled"] is False and "paused" in " ".join(body["problems"])


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")), "disk-full"),
        (OperationalError("INSERT", {}, sqlite3.OperationalError("attempt to write a readonly database")), "read-only"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk-full"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only"),
        (OperationalError("SELECT", {}, ConnectionRefusedError(111, "Connection refused")), "database-unavailable"),
        (IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")), None),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), "database-unavailable"),  # stopping
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), "database-unavailable"),
        (asyncpg.exceptions.DiskFullError("could not extend file"), "disk-full"),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), None),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), None),  # a bug, not an outage
        (ConnectionRefusedError(111, "Connection refused"), "database-unavailable"),
    ],
)
def test_why_storage_refuses(error, reason):
    assert unavailable_reason(error) == reason


@pytest.mark.parametrize(
    ("error", "reason", "words"),
    [
        (OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")), "disk-full", "磁盘已满"),
        (
            OperationalError("INSERT", {}, sqlite3.OperationalError("attempt to write a readonly database")),
            "read-only",
            "只读",
        ),
        (OperationalError("SELECT", {}, ConnectionRefusedError(111, "refused")), "database-unavailable", "数据库"),
    ],
)
async def test_a_refused_write_is_a_json_503_with_retry_after(tmp_path, error, reason, words):
    answer = await call(app_for(runtime_for(tmp_path, kafka_enabled=False), error), "POST", "/writes")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json()["reason"] == reason and words in answer.json()["detail"]


async def test_a_database_bug_is_a_json_500_not_a_503(tmp_path):
    error = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    answer = await call(app_for(runtime_for(tmp_path, kafka_enabled=False), error), "POST", "/writes")
    assert answer.status_code == 500 and answer.json()["detail"] and "UNIQUE" not in answer.text
