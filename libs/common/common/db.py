"""Database setup: one async engine per service, SQLite by default, PostgreSQL by URL.

`Database` is built by `create_app(settings)`; nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pydantic_core
from sqlalchemy import JSON, Column, DateTime, Table, any_, bindparam, event, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn
from sqlmodel import SQLModel


class Database:
    # hide_parameters: error text (logs, dead-letter reasons) names the statement, never the
    # values bound to it, which may be a resident's phone or temperature.
    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()  # "sqlite" or "postgresql"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, connect_args={"timeout": 30}, hide_parameters=True
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True
            )
            event.listen(self.engine.sync_engine, "connect", _timestamptz_codec)
            event.listen(self.engine.sync_engine, "checkin", _note_idle)
            event.listen(self.engine.sync_engine, "checkout", _ping_if_idle)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def insert(self, table):
        """This database's INSERT construct, which knows ON CONFLICT and RETURNING."""
        return pg_insert(table) if self.is_postgres else sqlite_insert(table)

    def any_of(self, column, values: Sequence):
        """`column IN values`; on PostgreSQL one array parameter, so the statement and its plan
        are the same whatever the number of values (a long IN list was planned as a scan)."""
        if self.is_postgres:
            return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return column.in_(list(values))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection outside any transaction block (PostgreSQL only): each
        statement is its own transaction, with no BEGIN or COMMIT round trip. For the hot
        paths whose writes are one statement (see checkin/daily_writes.py)."""
        if not self.is_postgres:
            raise RuntimeError("autocommit() hands out asyncpg connections: PostgreSQL only")
        # The pool's connection itself, without an engine Connection around it (half the CPU
        # per use). Nothing begins on it, so the pool's reset on return sends nothing.
        pooled = await self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        except BaseException:
            if pooled.driver_connection.is_closed():  # the server went away: never hand it out again
                await greenlet_spawn(pooled.invalidate)
            raise
        finally:
            await greenlet_spawn(pooled.close)  # back to the pool, through the async driver

    async def create_all(self) -> None:
        """Create the tables of every imported model (tests; production uses `migrate`)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)

    async def drop_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
            return True
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


# timestamptz on the wire is microseconds since 2000-01-01 UTC. FirstLine's datetimes are
# aware, so one exact subtraction replaces asyncpg's general encoder (most of the client's
# CPU when COPYing tickets). A naive datetime is refused, where asyncpg took it for local time.
NAIVE = "naive datetime: FirstLine stores aware UTC datetimes only"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
PG_INFINITY, PG_NEGATIVE_INFINITY = 2**63 - 1, -(2**63)


def _timestamptz_to_pg(value: datetime) -> tuple[int]:
    if value.tzinfo is None:
        raise ValueError(NAIVE)
    return ((value - PG_EPOCH) // MICROSECOND,)


def _timestamptz_from_pg(value: tuple[int]) -> datetime:
    (microseconds,) = value
    if microseconds == PG_INFINITY:  # as asyncpg's own decoder gives the infinities
        return datetime.max
    if microseconds == PG_NEGATIVE_INFINITY:
        return datetime.min
    return PG_EPOCH + timedelta(microseconds=microseconds)


def _timestamptz_codec(dbapi_connection, _record) -> None:
    dbapi_connection.run_async(
        lambda connection: connection.set_type_codec(
            "timestamptz", schema="pg_catalog", encoder=_timestamptz_to_pg, decoder=_timestamptz_from_pg, format="tuple"
        )
    )


# A pooled connection idle this long is pinged before use: one in steady use has just proved
# itself (a ping on every checkout is three round trips), and one that breaks mid-use is
# discarded by SQLAlchemy's disconnect handling.
PING_AFTER_IDLE_S = 5.0


def _note_idle(_dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(NAIVE)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_column(*, nullable: bool = False, index: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable, index=index)


async def insert_ignore(session: AsyncSession, model: type[SQLModel], values: dict, conflict: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was new. Uniqueness, not luck,
    is what makes jobs and consumers safe on several replicas."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=conflict))
    return bool(result.rowcount)


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[dict]) -> None:
    """Insert many new rows in the session's transaction: PostgreSQL's COPY (binary, through
    asyncpg) on PostgreSQL, an executemany INSERT elsewhere. Every row gives the same columns;
    columns left out take their defaults (serial keys included). COPY spares the per-row work
    of an executemany on both sides, most of the cost of a consumer writing thousands of rows."""
    if not rows:
        return
    if session.bind is None or session.bind.dialect.name != "postgresql":
        await session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    values = operator.itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    records = [values(row) for row in rows]
    converters = [(i, c) for i, c in enumerate(map(_copy_converter, (table.c[name] for name in columns))) if c]
    if converters:
        records = [list(record) for record in records]
        for record in records:
            for i, convert in converters:
                record[i] = convert(record[i])
    driver = await driver_connection(session)
    await driver.copy_records_to_table(table.name, columns=columns, records=records, schema_name=table.schema)


# Rows from which copy_if_all_new pays: its savepoint costs round trips that a trickle of
# single events would feel; per row it spares the server work (docs/performance.md).
COPY_PAYS_FROM = 100


async def copy_if_all_new(session: AsyncSession, table: Table, rows: Sequence[dict]) -> bool:
    """PostgreSQL: COPY rows that are expected to be new, in a savepoint; True if they all
    went in, False (and none did, the transaction unharmed) if one broke a unique constraint.

    For batches that are almost always new (a consumer's inbox claim, a sweep's facts): COPY
    has no speculative insertion, and the caller runs INSERT ... ON CONFLICT only on False."""
    driver = await driver_connection(session)
    await driver.execute("SAVEPOINT copy_if_all_new")
    try:
        await bulk_insert(session, table, rows)
    except asyncpg.UniqueViolationError:
        await driver.execute("ROLLBACK TO SAVEPOINT copy_if_all_new")
        return False
    await driver.execute("RELEASE SAVEPOINT copy_if_all_new")
    return True


async def insert_missing(
    session: AsyncSession, table: Table, rows: Sequence[dict], conflict: Sequence[str], *, returning: str | None = None
) -> set:
    """Insert the rows whose `conflict` columns are not taken yet; with `returning`, answer
    that column's values of the rows inserted. A batch of COPY_PAYS_FROM rows or more on
    PostgreSQL is copied first (almost always all new); ON CONFLICT DO NOTHING sorts out the
    rest, in the same transaction."""
    if not rows:
        return set()
    postgres = session.bind is not None and session.bind.dialect.name == "postgresql"
    if postgres and len(rows) >= COPY_PAYS_FROM and await copy_if_all_new(session, table, rows):
        return {row[returning] for row in rows} if returning else set()
    statement = (pg_insert if postgres else sqlite_insert)(table).on_conflict_do_nothing(index_elements=list(conflict))
    if returning:
        return set((await session.execute(statement.returning(table.c[returning]), list(rows))).scalars())
    await session.execute(statement, list(rows))
    return set()


async def driver_connection(session: AsyncSession):
    """The session's asyncpg connection, inside the session's transaction: for the few hot
    statements that send whole columns as arrays, or COPY, past SQLAlchemy's per-row work."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():  # the session begins lazily: make it begin now
        await connection.execute(text("SELECT 1"))
    return driver


def _copy_converter(column: Column) -> Callable | None:
    """What the column's SQLAlchemy type does to a value before the driver sees it."""
    if isinstance(column.type, JSON):
        if column.type.none_as_null:
            return lambda value: None if value is None else _json(value)
        return _json
    return None  # timestamps: the connection's codec refuses naive ones


def _json(value) -> str:
    return pydantic_core.to_json(value).decode()  # what json.dumps would store, in a fraction of the time
