"""How a batch of check-ins reaches the database: the two statements of the hottest path.

A batch (see group_commit.py) needs the residents it names, then per round (a round names
each resident-day once) one history row per check-in and the day's row inserted or
updated, learning each day's revision count. `CoreWrites` does this with SQLAlchemy core
statements on any database; `PostgresWrites` sends the whole batch as column arrays to
one prepared statement each (`unnest`, and a data-modifying CTE for history + day), so
the cost per check-in is an array element, not a bound row: at the morning peak that is
the difference between the database driver's per-row work and almost none.

Both run inside the caller's transaction and answer the same thing.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any, NamedTuple, Protocol

import pydantic_core
from sqlalchemy import String, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from checkin.models import CheckInSubmission, DailyCheckIn, Resident
from common.db import Database, driver_connection

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

    async def save(self, round_: Sequence[dict]) -> dict[DayKey, int]:
        """History rows and the days' rows for check-ins naming each resident-day once, in
        key order (two batches in flight lock their rows in the same order); answers each
        day's revisions."""
        ...


def writes_for(db: Database, session: AsyncSession) -> DailyWrites:
    return PostgresWrites(session) if db.is_postgres else CoreWrites(db, session)


class CoreWrites:
    """SQLAlchemy core statements: SQLite, and any database without arrays."""

    def __init__(self, db: Database, session: AsyncSession) -> None:
        self.session = session
        self._residents, self._history, self._days = _core_statements(db)

    async def residents(self, ids: Collection[str]) -> dict[str, ResidentFacts]:
        rows = await self.session.execute(self._residents, {"ids": _padded(list(ids))})
        return {row.resident_id: ResidentFacts(*row) for row in rows}

    async def save(self, round_: Sequence[dict]) -> dict[DayKey, int]:
        history = [{k: v for k, v in row.items() if k not in ("fever", "anomaly")} for row in round_]
        await self.session.execute(self._history, history)
        rows = await self.session.execute(self._days, [{**row, "revisions": 1} for row in round_])
        return {(row.resident_id, row.date): row.revisions for row in rows}


@functools.cache  # built once per database, not per batch
def _core_statements(db: Database) -> tuple[Any, Any, Any]:
    resident, daily = Resident.__table__, DailyCheckIn.__table__
    upsert = db.insert(daily)
    residents = select(*(resident.c[name] for name in FACTS)).where(
        resident.c.resident_id.in_(bindparam("ids", expanding=True))
    )
    days = upsert.on_conflict_do_update(
        index_elements=["resident_id", "date"],
        set_={**{c: upsert.excluded[c] for c in DAY_CHANGES}, "revisions": daily.c.revisions + 1},
    ).returning(daily.c.resident_id, daily.c.date, daily.c.revisions)
    return residents, CheckInSubmission.__table__.insert(), days


class PostgresWrites:
    """The batch as column arrays: one round trip and almost no per-row work in Python."""

    RESIDENTS = text(
        f"SELECT {', '.join(f'{name}::text' if name == 'tags' else name for name in FACTS)} "
        f"FROM {Resident.__tablename__} WHERE resident_id = ANY(:ids)"
    ).bindparams(bindparam("ids", type_=ARRAY(String)))
    # One statement: the history rows and the days' rows from the same arrays. The SELECT
    # is ordered by key, so the day rows are locked in key order.
    SAVE = f"""
        WITH submitted AS (
            SELECT * FROM unnest($1::text[], $2::date[], $3::float8[], $4::text[], $5::text[], $6::text[],
                                 $7::timestamptz[], $8::bool[], $9::bool[])
                AS s (resident_id, date, temperature_c, symptoms, channel, submitted_by, submitted_at, fever, anomaly)
        ), history AS (
            INSERT INTO {CheckInSubmission.__tablename__}
                (resident_id, date, temperature_c, symptoms, channel, submitted_by, submitted_at)
            SELECT resident_id, date, temperature_c, symptoms::json, channel, submitted_by, submitted_at FROM submitted
        )
        INSERT INTO {DailyCheckIn.__tablename__} AS day
            (resident_id, date, temperature_c, symptoms, fever, anomaly, channel, submitted_by, submitted_at, revisions)
        SELECT resident_id, date, temperature_c, symptoms::json, fever, anomaly, channel, submitted_by, submitted_at, 1
        FROM submitted ORDER BY resident_id, date
        ON CONFLICT (resident_id, date) DO UPDATE SET
            {", ".join(f"{c} = excluded.{c}" for c in DAY_CHANGES)}, revisions = day.revisions + 1
        RETURNING resident_id, date, revisions
    """
    COLUMNS = ("resident_id", "date", "temperature_c", "symptoms", "channel", "submitted_by", "submitted_at", "fever", "anomaly")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def residents(self, ids: Collection[str]) -> dict[str, ResidentFacts]:
        # Through the session: its first statement also begins the transaction (no extra round trip).
        rows = await self.session.execute(self.RESIDENTS, {"ids": list(ids)})
        return {row[0]: ResidentFacts(*row[:7], pydantic_core.from_json(row[7]), *row[8:]) for row in rows}

    async def save(self, round_: Sequence[dict]) -> dict[DayKey, int]:
        connection = await driver_connection(self.session)
        arrays: list[list[Any]] = [[row[column] for row in round_] for column in self.COLUMNS]
        arrays[3] = [pydantic_core.to_json(symptoms).decode() for symptoms in arrays[3]]
        rows = await connection.fetch(self.SAVE, *arrays)
        return {(row[0], row[1]): row[2] for row in rows}


def _padded(ids: list[str]) -> list[str]:
    """Pad a list to the next power of two by repeating its last id, so an `IN (...)` query
    comes in a handful of shapes the database prepares once, not one per batch size."""
    size = 1 << (len(ids) - 1).bit_length()
    return ids + ids[-1:] * (size - len(ids))
