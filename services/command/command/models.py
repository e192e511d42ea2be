"""Command-center tables. Uniqueness carries the rules that must hold across replicas:
one open ticket per problem (`open_key`, cleared when the ticket closes), one escalation
per ticket and level, one check-in fact per resident, date and kind.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from common.accesslog import AccessLogEntry  # noqa: F401 - reads of health records (docs/privacy.md)
from common.db import utc_column
from common.outbox import (  # noqa: F401 - the outbox and inbox tables are this service's too (migrations)
    InboxMessage,
    OutboxMessage,
)

# -- configuration an admin edits ---------------------------------------------------------


class DepartmentRow(SQLModel, table=True):
    __tablename__ = "department"

    department_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    partner: bool = False
    default_owner: str | None = Field(default=None, max_length=60)


class PersonRow(SQLModel, table=True):
    """The owner directory: people, roles, departments, grids, supervisors."""

    __tablename__ = "person"

    person_id: str = Field(primary_key=True, max_length=60)
    name: str = Field(max_length=100)
    phone: str | None = Field(default=None, max_length=30)
    role: str = Field(max_length=40)
    department: str = Field(max_length=40)
    supervisor_id: str | None = Field(default=None, max_length=60)
    grid_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    building_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True


class RuleRow(SQLModel, table=True):
    __tablename__ = "rule"

    trigger: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=40)
    department: str = Field(max_length=40)
    owner_by: str = Field(max_length=20)
    priority: str = Field(max_length=10)
    title: str = Field(max_length=300)
    action: str | None = Field(default=None, max_length=500)
    raise_priority: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    also_share: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    enabled: bool = True
    updated_by: str | None = Field(default=None, max_length=60)
    updated_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class SlaRow(SQLModel, table=True):
    __tablename__ = "sla"

    kind: str = Field(primary_key=True, max_length=40)
    priority: str = Field(primary_key=True, max_length=10)
    respond_minutes: int
    resolve_minutes: int
    resolve_same_day: bool = False


# -- tickets ------------------------------------------------------------------------------


class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"
    __table_args__ = (
        UniqueConstraint("open_key", name="uq_ticket_open_key"),
        Index("ix_ticket_stage_next_check", "stage", "next_check_at"),
        Index("ix_ticket_owner_stage", "owner", "stage"),
        Index("ix_ticket_opened_at", "opened_at"),
    )

    ticket_id: str = Field(primary_key=True, max_length=40)
    # kind:subject while the ticket is not closed; NULL after, so the next event opens a new one.
    open_key: str | None = Field(default=None, max_length=200)
    kind: str = Field(max_length=40, index=True)
    category: str | None = Field(default=None, max_length=40)
    trigger: str = Field(max_length=100)
    subject_id: str = Field(max_length=160)
    title: str = Field(max_length=300)
    description: str | None = Field(default=None, max_length=2000)
    action: str | None = Field(default=None, max_length=500)
    stage: str = Field(max_length=12)
    priority: str = Field(max_length=10)
    department: str = Field(max_length=40, index=True)
    owner: str = Field(max_length=60)
    grid_id: str | None = Field(default=None, max_length=40, index=True)
    building_id: str | None = Field(default=None, max_length=40)
    resident_id: str | None = Field(default=None, max_length=40, index=True)
    lat: float | None = None
    lon: float | None = None
    facts: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    shares: dict[str, str | None] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source_event_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    event_count: int = 1
    reported_by: str | None = Field(default=None, max_length=60)
    # Who opened it (the event's source service, or the reporter) and the owner it was
    # opened with: the history's "open" entry is derived from the ticket, not a row of its own.
    opened_by: str | None = Field(default=None, max_length=60)
    opened_owner: str | None = Field(default=None, max_length=60)
    respond_by: datetime = Field(sa_column=utc_column())
    resolve_by: datetime = Field(sa_column=utc_column())
    next_check_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    escalation_level: int = 0
    opened_at: datetime = Field(sa_column=utc_column())
    updated_at: datetime = Field(sa_column=utc_column())
    acknowledged_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    acknowledged_by: str | None = Field(default=None, max_length=60)
    resolved_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    resolved_by: str | None = Field(default=None, max_length=60)
    resolution: str | None = Field(default=None, max_length=2000)
    closed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    satisfaction: int | None = None
    feedback_comment: str | None = Field(default=None, max_length=2000)
    feedback_by: str | None = Field(default=None, max_length=60)
    reopen_count: int = 0


class TicketLog(SQLModel, table=True):
    """Every transition after the opening: who, when, from which stage to which. The opening
    is told by the ticket itself (`reading.opening`), which spares a sweep a row per ticket."""

    __tablename__ = "ticket_log"

    log_id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=40, index=True)
    action: str = Field(max_length=20)  # open, update, acknowledge, resolve, feedback, reassign, escalate, note
    from_stage: str | None = Field(default=None, max_length=12)
    to_stage: str = Field(max_length=12)
    by: str = Field(max_length=60)
    at: datetime = Field(sa_column=utc_column(index=True))
    note: str | None = Field(default=None, max_length=2000)
    owner: str | None = Field(default=None, max_length=60)
    satisfaction: int | None = None
    event_id: str | None = Field(default=None, max_length=36)


class EscalationRow(SQLModel, table=True):
    __tablename__ = "escalation"
    # One row per level of each opening of a ticket: the replica whose insert wins escalates.
    __table_args__ = (UniqueConstraint("ticket_id", "opening", "level", name="uq_escalation_level"),)

    escalation_id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=40)
    # Which opening of the ticket (its reopen_count then): a reopened ticket climbs the
    # supervisor chain afresh when it misses its new deadlines.
    opening: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    level: int
    breach: str = Field(max_length=10)  # respond | resolve
    from_owner: str = Field(max_length=60)
    to_owner: str = Field(max_length=60)
    at: datetime = Field(sa_column=utc_column())


# -- what the command center learns from other services' events --------------------------


class KnownResident(SQLModel, table=True):
    """Where a resident lives (from ResidentRegistered): for owners and the heat map."""

    __tablename__ = "known_resident"

    resident_id: str = Field(primary_key=True, max_length=40)
    grid_id: str = Field(max_length=40)
    building_id: str = Field(max_length=40)
    lat: float | None = None
    lon: float | None = None
    registered_at: datetime = Field(sa_column=utc_column(index=True))


class KnownBuilding(SQLModel, table=True):
    __tablename__ = "known_building"

    building_id: str = Field(primary_key=True, max_length=40)
    grid_id: str | None = Field(default=None, max_length=40)
    lat: float | None = None
    lon: float | None = None


class CheckinFact(SQLModel, table=True):
    """One row per resident, local date and kind (checked_in | missed): the completion figures."""

    __tablename__ = "checkin_fact"
    __table_args__ = (Index("ix_checkin_fact_date_kind", "date", "kind"),)

    resident_id: str = Field(primary_key=True, max_length=40)
    date: dt.date = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=12)


class Signal(SQLModel, table=True):
    """A located problem (a fever, a missed check-in, a request, a complaint): the heat map."""

    __tablename__ = "signal"
    __table_args__ = (Index("ix_signal_at_kind", "at", "kind"),)

    signal_id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    h3_cell: str = Field(max_length=20)
    lat: float
    lon: float
    at: datetime = Field(sa_column=utc_column())
    ticket_id: str | None = Field(default=None, max_length=40)
