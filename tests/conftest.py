"""Fixtures every service's tests share.

- `database_url`: a fresh, empty database per test, on SQLite and (when
  FIRSTLINE_TEST_PG_URL is set, as `make test` does) on PostgreSQL: the same test runs on both.
- `kafka`: the real broker's bootstrap servers (KAFKA_BOOTSTRAP_SERVERS), topics created.
  Clients connect with `support.kafka_client(principal)`.
- Tokens: a signing key of the test run (FIRSTLINE_KEYS_DIR), whose JWKS every app and
  stack the tests start trusts (FIRSTLINE_JWKS_URL as a file); `support.bearer` signs with it.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from common.auth import Keyring
from common.topics import ensure_topics
from support import kafka_client

PG_URL = os.environ.get("FIRSTLINE_TEST_PG_URL")  # postgresql+asyncpg://user:pw@host:port/postgres
BACKENDS = ["sqlite", "postgres"] if PG_URL else ["sqlite"]
if os.environ.get("FIRSTLINE_REQUIRE_PG") and not PG_URL:
    raise RuntimeError(
        "FIRSTLINE_REQUIRE_PG is set but FIRSTLINE_TEST_PG_URL is not: PostgreSQL tests would be skipped"
    )


def pytest_configure(config) -> None:
    keys = tempfile.mkdtemp(prefix="firstline-test-keys-")
    keyring = Keyring.ensure(keys)
    jwks = os.path.join(keys, "jwks.json")
    with open(jwks, "w") as out:
        json.dump(keyring.jwks(), out)
    os.environ["FIRSTLINE_KEYS_DIR"] = keys
    os.environ["FIRSTLINE_JWKS_URL"] = f"file://{jwks}"
    os.environ["FIRSTLINE_REVOCATIONS_URL"] = ""  # no portal behind in-process apps; tests/portal checks revocation


def _asyncpg_dsn(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
async def database_url(request, tmp_path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/test.db"
        return
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(PG_URL, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def kafka() -> str:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    try:
        await ensure_topics(kafka_client(bootstrap_servers=bootstrap))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Kafka is not reachable at {bootstrap} as operator ({exc}); start it with `make kafka-up`")
    return bootstrap
