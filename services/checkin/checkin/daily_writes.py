"""How a batch of check-ins reaches the database: the hottest path of the day.

A batch (see group_commit.py) needs the residents it names; then, atomically, one history
row per check-in, each resident-day's row inserted or updated (learning its revision
count), and the events the check-ins cause, in the outbox. A resident who checks in twice
in one batch gives the day's row one write: the later check-in's values, the revisions
raised by two; each check-in is answered the count it made (the first one less).

`CoreWrites` does this in a unit of work with SQLAlchemy core statements (SQLite, and a
batch that must commit with other rows: check-ins sent with an idempotency key). `PostgresWrites` sends the batch as JSON in two
statements outside a transaction block: the residents (a read, as the unit of work's read
was), then one statement that writes history, days and outbox together, which PostgreSQL
makes atomic as any single statement. No BEGIN, COMMIT or ORM session: at the morning peak
each round trip and each layer costs more CPU than the rows themselves.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, NamedTuple, Protocol

import pydantic_core
from sqlalchemy import bindparam, select

from checkin.models import CheckInSubmission, DailyCheckIn, Resident
from common.db import Database
from common.events.base import Event
from common.outbox import OutboxMessage, UnitOfWork, outbox_row
from common.runtime import Runtime

DayKey = tuple[str, date]  # (resident_id, date)


class ResidentFacts(NamedTuple):
    """What a check-in needs to know of its resident: scope, channel and the events' fields."""

    resident_id: str
    building_id: str
    grid_id: str
    unit: str
    room: str
    name: str
    phone: str
    tags: list[str]
    lat: float | None
    lon: float | None


FACTS = ResidentFacts._fields
DAY_CHANGES = ("temperature_c", "symptoms", "fever", "anomaly", "channel", "submitted_by", "submitted_at")


class DailyWrites(Protocol):
    async def residents(self, ids: Collection[str]) -> dict[str, ResidentFacts]: ...

    async def save(self, check_ins: Sequence[dict], events: Sequence[Event]) -> list[int]:
        """The check-ins' history, their days and their events, all or nothing; answers each
        check-in's revision count, in order."""
        ...


@asynccontextmanager
async def daily_writes(runtime: Runtime, uow: UnitOfWork | None = None) -> AsyncIterator[DailyWrites]:
    """The writer for this database, for one batch; in the caller's unit of work if it gives
    one (what else it writes commits with the batch), else committed when the block ends."""
    if runtime.db.is_postgres and uow is None:
        async with runtime.db.autocommit() as connection:
            writes = PostgresWrites(connection, runtime)
            yield writes
        if writes.saved:
            runtime.relay.wake()  # what a unit of work's commit does
    else:
        async with runtime.work(uow) as uow:
            yield CoreWrites(runtime.db, uow)


class CoreWrites:
    """SQLAlchemy core statements in a unit of work: SQLite, and any database without JSON record sets."""

    def __init__(self, db: Database, uow: UnitOfWork) -> None:
        self.uow = uow
        self._residents, self._history, self._days = _core_statements(db)

    async def residents(self, ids: Collection[str]) -> dict[str, ResidentFacts]:
        rows = await self.uow.session.execute(self._residents, {"ids": _padded(list(ids))})
        return {row.resident_id: ResidentFacts(*row) for row in rows}

    async def save(self, check_ins: Sequence[dict], events: Sequence[Event]) -> list[int]:
        days, made = _days(check_ins)
        days.sort(key=lambda row: (row["resident_id"], row["date"]))  # rows locked in key order, as PostgresWrites does
        history = [{k: v for k, v in row.items() if k not in ("fever", "anomaly")} for row in check_ins]
        await self.uow.session.execute(self._history, history)
        rows = await self.uow.session.execute(self._days, days)
        for event in events:
            self.uow.emit(event)
        return _answers({(row.resident_id, row.date): row.revisions for row in rows}, made)


@functools.cache  # built once per database, not per batch
def _core_statements(db: Database) -> tuple[Any, Any, Any]:
    resident, daily = Resident.__table__, DailyCheckIn.__table__
    upsert = db.insert(daily)
    residents = select(*(resident.c[name] for name in FACTS)).where(
        resident.c.resident_id.in_(bindparam("ids", expanding=True))
    )
    days = upsert.on_conflict_do_update(
        index_elements=["resident_id", "date"],
        set_={
            **{c: upsert.excluded[c] for c in DAY_CHANGES},
            "revisions": daily.c.revisions + upsert.excluded.revisions,
        },
    ).returning(daily.c.resident_id, daily.c.date, daily.c.revisions)
    return residents, CheckInSubmission.__table__.insert(), days


def _recordset(param: int, columns: dict[str, str], alias: str) -> str:
    """The rows of a JSON array parameter, numbered: `ROWS FROM (json_to_recordset(...)) WITH ORDINALITY`."""
    typed = ", ".join(f"{name} {type_}" for name, type_ in columns.items())
    return f"ROWS FROM (json_to_recordset(${param}::json) AS ({typed})) WITH ORDINALITY AS {alias} ({', '.join(columns)}, position)"


class PostgresWrites:
    """The batch as two JSON documents (check-ins, events), in two statements on a
    connection of its own. JSON, not column arrays: asyncpg encodes arrays element by
    element, pydantic-core a whole batch at once (docs/performance.md)."""

    RESIDENTS = (
        f"SELECT {', '.join(f'{name}::text' if name == 'tags' else name for name in FACTS)} "
        f"FROM {Resident.__tablename__} WHERE resident_id = ANY($1::text[])"
    )
    CHECK_INS = {"resident_id": "text", "date": "date", "temperature_c": "float8", "symptoms": "json", "channel": "text",
                 "submitted_by": "text", "submitted_at": "timestamptz", "fever": "bool", "anomaly": "bool"}  # fmt: skip
    HISTORY = ("resident_id", "date", "temperature_c", "symptoms", "channel", "submitted_by", "submitted_at")
    DAY = (*HISTORY, "fever", "anomaly")
    EVENTS = {
        "event_id": "text",
        "event_type": "text",
        "topic": "text",
        "key": "text",
        "value": "text",
        "created_at": "timestamptz",
    }

    # One statement, so one transaction. Each resident-day's row is written once, with its
    # last check-in's values and the revisions raised by its number of check-ins; the rows
    # are locked in key order (two batches in flight take them in the same order). The
    # outbox rows are inserted once the days are written (the events CTE reads them all):
    # a resident's events from two batches in flight get their sequence numbers in the
    # order the batches wrote the day. Answers, per check-in in order, the revision count it
    # made: the day's final count less the check-ins of the same day later in the batch.
    SAVE = f"""
        WITH batch AS (
            SELECT * FROM {_recordset(1, CHECK_INS, "c")}
        ), history AS (
            INSERT INTO {CheckInSubmission.__tablename__} ({", ".join(HISTORY)})
            SELECT {", ".join(HISTORY)} FROM batch ORDER BY position
        ), days AS (
            INSERT INTO {DailyCheckIn.__tablename__} AS day ({", ".join(DAY)}, revisions)
            SELECT DISTINCT ON (resident_id, date) {", ".join(DAY)}, count(*) OVER (PARTITION BY resident_id, date)
            FROM batch ORDER BY resident_id, date, position DESC
            ON CONFLICT (resident_id, date) DO UPDATE SET
                {", ".join(f"{c} = excluded.{c}" for c in DAY_CHANGES)}, revisions = day.revisions + excluded.revisions
            RETURNING resident_id, date, revisions
        ), events AS (
            INSERT INTO {OutboxMessage.__tablename__} ({", ".join(EVENTS)})
            SELECT {", ".join(EVENTS)} FROM {_recordset(2, EVENTS, "e")}
            WHERE (SELECT count(*) FROM days) > 0
            ORDER BY position
        )
        SELECT days.revisions + 1 - count(*) OVER (
            PARTITION BY batch.resident_id, batch.date ORDER BY batch.position DESC ROWS UNBOUNDED PRECEDING)
        FROM batch JOIN days USING (resident_id, date)
        ORDER BY batch.position
    """

    def __init__(self, connection, runtime: Runtime) -> None:
        self.connection = connection  # asyncpg's, in autocommit: each statement is a transaction
        self.clock = runtime.clock
        self.saved = False

    async def residents(self, ids: Collection[str]) -> dict[str, ResidentFacts]:
        rows = await self.connection.fetch(self.RESIDENTS, list(ids))
        return {row[0]: ResidentFacts(*row[:7], pydantic_core.from_json(row[7]), *row[8:]) for row in rows}

    async def save(self, check_ins: Sequence[dict], events: Sequence[Event]) -> list[int]:
        at = self.clock.now()
        outbox = [outbox_row(event, at) for event in events]
        rows = await self.connection.fetch(
            self.SAVE, pydantic_core.to_json(check_ins).decode(), pydantic_core.to_json(outbox).decode()
        )
        self.saved = True
        return [row[0] for row in rows]


def _days(check_ins: Sequence[dict]) -> tuple[list[dict], list[tuple[DayKey, int]]]:
    """Each resident-day's row once: its last check-in's values, revisions raised by the
    number of check-ins; and, per check-in, its key and how many of that key come after it."""
    counts = Counter((row["resident_id"], row["date"]) for row in check_ins)
    last: dict[DayKey, dict] = {}
    made: list[tuple[DayKey, int]] = []
    seen: Counter[DayKey] = Counter()
    for row in check_ins:
        key = (row["resident_id"], row["date"])
        seen[key] += 1
        made.append((key, counts[key] - seen[key]))
        last[key] = row
    return [{**row, "revisions": counts[key]} for key, row in last.items()], made


def _answers(revisions: dict[DayKey, int], made: Sequence[tuple[DayKey, int]]) -> list[int]:
    """The revision count each check-in made: the day's final count less the later ones."""
    return [revisions[key] - later for key, later in made]


def _padded(ids: list[str]) -> list[str]:
    """Pad a list to the next power of two by repeating its last id, so an `IN (...)` query
    comes in a handful of shapes the database prepares once, not one per batch size."""
    size = 1 << (len(ids) - 1).bit_length()
    return ids + ids[-1:] * (size - len(ids))
