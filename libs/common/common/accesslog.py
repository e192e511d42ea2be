"""The access log: every read of a health-sensitive record (a ticket with its facts, a
check-in history, a follow-up list) is written down, who, in which role, what, when and
through which route, so that an admin can answer "who read this person's health data?".

A service that serves such records includes `router` and calls `AccessLog.record` from the
route that reads them; the row is written in its own short transaction, before the answer
leaves. Rows are kept `<SERVICE>_RETENTION_ACCESS_LOG_DAYS` (docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Index, select
from sqlmodel import Field, SQLModel

from common.auth import Principal, Role, require
from common.clock import Clock
from common.db import Database, bulk_insert, utc_column
from common.limits import Paged


class AccessLogEntry(SQLModel, table=True):
    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_at", "at"), Index("ix_access_log_resident", "resident_id", "at"))

    entry_id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=utc_column())
    sub: str = Field(max_length=60)  # the caller's token subject
    role: str = Field(max_length=20)
    record: str = Field(max_length=40)  # what kind of record: ticket, followups, checkins, household
    record_id: str | None = Field(default=None, max_length=160)  # the ticket, grid or household read
    resident_id: str | None = Field(default=None, max_length=40)  # whose data, one row per resident
    route: str = Field(max_length=200)  # why: the route (method and path template) that read it


class AccessLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def record(
        self,
        user: Principal,
        record: str,
        route: str,
        *,
        record_id: str | None = None,
        resident_ids: Iterable[str | None] = (None,),
    ) -> int:
        """Write one row per resident whose health data the caller read (one row with no
        resident when the record names none); returns how many."""
        ids = list(dict.fromkeys(resident_ids)) or [None]
        return await self.record_reads(user, record, route, [(record_id, resident_id) for resident_id in ids])

    async def record_reads(
        self, user: Principal, record: str, route: str, reads: Iterable[tuple[str | None, str | None]]
    ) -> int:
        """Write one row per (record id, resident id) read, all in one transaction: as many
        as the answer held, which its own bounds (a page, a grid's day) keep finite."""
        at = self.clock.now()
        rows = [
            {"at": at, "sub": user.sub[:60], "role": user.role.value, "record": record,
             "record_id": record_id, "resident_id": resident_id, "route": route[:200]}
            for record_id, resident_id in reads
        ]  # fmt: skip
        if not rows:
            return 0
        async with self.db.session() as session:
            await bulk_insert(session, AccessLogEntry.__table__, rows)
            await session.commit()
        return len(rows)

    async def entries(
        self,
        *,
        limit: int,
        offset: int,
        resident_id: str | None = None,
        sub: str | None = None,
        since: datetime | None = None,
    ) -> list[AccessLogEntry]:
        query = select(AccessLogEntry)
        if resident_id is not None:
            query = query.where(AccessLogEntry.resident_id == resident_id)
        if sub is not None:
            query = query.where(AccessLogEntry.sub == sub)
        if since is not None:
            query = query.where(AccessLogEntry.at >= since)
        query = query.order_by(AccessLogEntry.at.desc(), AccessLogEntry.entry_id.desc()).limit(limit).offset(offset)
        async with self.db.session() as session:
            return list((await session.execute(query)).scalars())


def route_of(request: Request) -> str:
    """The route that read a record, as its template (`GET /tickets/{ticket_id}`), not the
    path: a path could carry what the log must not."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


class AccessLogEntryOut(BaseModel):
    at: datetime
    sub: str
    role: str
    record: str
    record_id: str | None
    resident_id: str | None
    route: str


router = APIRouter()
Admin = Annotated[Principal, Depends(require(Role.admin))]


@router.get("/access-log", response_model=list[AccessLogEntryOut], tags=["privacy"])
async def access_log(
    request: Request,
    _: Admin,
    page: Paged,
    resident_id: Annotated[str | None, Query(max_length=40)] = None,
    sub: Annotated[str | None, Query(max_length=60)] = None,
    since: datetime | None = None,
) -> list[AccessLogEntry]:
    """Who read health-sensitive records here, newest first (admins only): filter by the
    resident whose data was read, by the reader (`sub`) or from a time; paged."""
    log: AccessLog = request.app.state.access_log
    return await log.entries(limit=page.limit, offset=page.offset, resident_id=resident_id, sub=sub, since=since)
