"""Dispatch tables. Uniqueness carries the rules that must hold across replicas: one
request per id (a time-bank redemption or a green-channel refill raises its request once),
one overdue notice per assignment, one surge per category and window.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from common.db import utc_column
from common.outbox import InboxMessage, OutboxMessage  # noqa: F401 - part of this service's schema


class KnownResident(SQLModel, table=True):
    """What dispatch knows of a resident, learnt from `ResidentRegistered` (never by asking check-in)."""

    __tablename__ = "known_resident"

    resident_id: str = Field(primary_key=True, max_length=40)
    community_id: str = Field(max_length=40)
    grid_id: str = Field(max_length=40, index=True)
    building_id: str = Field(max_length=40)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=30)
    unit: str | None = Field(default=None, max_length=20)
    room: str | None = Field(default=None, max_length=20)
    lat: float | None = None
    lon: float | None = None
    learnt_at: datetime = Field(sa_column=utc_column())


class Volunteer(SQLModel, table=True):
    __tablename__ = "volunteer"

    volunteer_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    group: str = Field(max_length=20, index=True)  # errands | tech | publicity | counsellor
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    lat: float
    lon: float
    capacity: int  # requests per run
    phone: str = Field(max_length=30)
    # [{"start": "08:00", "end": "12:00", "days": [1, 2, 3]}] in local time; empty: any time
    availability: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime = Field(sa_column=utc_column())


class ServiceRequest(SQLModel, table=True):
    """One resident's need, from raising to fulfilment.

    status: awaiting_stock (items being reserved) | waiting_for_stock (reservation rejected)
    | pending (ready, no volunteer yet) | assigned | planned (in a delivery run) | fulfilled
    | cancelled
    """

    __tablename__ = "service_request"
    __table_args__ = (
        Index("ix_request_status_due", "status", "due_by"),
        Index("ix_request_created", "created_at"),
        UniqueConstraint("recurrence_id", "refill_due", name="uq_request_refill"),
    )

    request_id: str = Field(primary_key=True, max_length=64)
    resident_id: str = Field(max_length=40, index=True)
    category: str = Field(max_length=20)
    details: str | None = None
    items: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    priority: str = Field(max_length=10)
    due_by: datetime = Field(sa_column=utc_column())
    window_start: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    window_end: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    status: str = Field(max_length=20)
    volunteer_id: str | None = Field(default=None, max_length=40, index=True)
    assignment_no: int = 0  # increases with every (re)assignment: overdue notices are per assignment
    run_id: str | None = Field(default=None, max_length=40)
    grid_id: str | None = Field(default=None, max_length=40)
    building_id: str | None = Field(default=None, max_length=40)
    lat: float | None = None
    lon: float | None = None
    source: str = Field(max_length=20)
    raised_by: str = Field(max_length=60)
    redemption_id: str | None = Field(default=None, max_length=64)
    recurrence_id: str | None = Field(default=None, max_length=40)
    refill_due: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    shortages: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reservation_attempt: int = 1
    failed_attempts: int = 0
    service_minutes: int | None = None
    note: str | None = None
    created_at: datetime = Field(sa_column=utc_column())
    updated_at: datetime = Field(sa_column=utc_column())
    fulfilled_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class RequestHistory(SQLModel, table=True):
    """Every step of a request, shown to whoever follows it (a failed delivery keeps its reason)."""

    __tablename__ = "request_history"

    history_id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=utc_column())
    status: str = Field(max_length=20)
    by: str = Field(max_length=60)
    note: str | None = None


class OverdueNotice(SQLModel, table=True):
    __tablename__ = "overdue_notice"
    __table_args__ = (UniqueConstraint("request_id", "assignment_no", name="uq_overdue_assignment"),)

    notice_id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=64)
    assignment_no: int
    volunteer_id: str | None = Field(default=None, max_length=40)
    noticed_at: datetime = Field(sa_column=utc_column())


class DeliveryRun(SQLModel, table=True):
    __tablename__ = "delivery_run"

    run_id: str = Field(primary_key=True, max_length=40)
    volunteer_id: str = Field(max_length=40, index=True)
    slot_start: datetime = Field(sa_column=utc_column())
    slot_end: datetime = Field(sa_column=utc_column())
    depot_id: str | None = Field(default=None, max_length=40)
    depot_lat: float
    depot_lon: float
    distance_m: float
    return_at: datetime = Field(sa_column=utc_column())
    # ordered: [{"request_id", "eta", "lat", "lon", ...what the volunteer needs at the door}]
    stops: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="planned", max_length=20)
    planned_at: datetime = Field(sa_column=utc_column())


class Recurrence(SQLModel, table=True):
    """The green channel: a chronic patient's medicine, refilled every `every_days`."""

    __tablename__ = "recurrence"

    recurrence_id: str = Field(primary_key=True, max_length=40)
    resident_id: str = Field(max_length=40, index=True)
    details: str | None = None
    items: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    every_days: int
    lead_days: int
    next_due: datetime = Field(sa_column=utc_column())
    active: bool = True
    created_by: str = Field(max_length=60)
    created_at: datetime = Field(sa_column=utc_column())


class Surge(SQLModel, table=True):
    __tablename__ = "demand_surge"
    __table_args__ = (UniqueConstraint("category", "window_start", name="uq_surge_window"),)

    surge_id: int | None = Field(default=None, primary_key=True)
    category: str = Field(max_length=20)
    window_start: datetime = Field(sa_column=utc_column())
    window_end: datetime = Field(sa_column=utc_column())
    count: int
    baseline: float
    p_value: float
    suggested_action: str
    detected_at: datetime = Field(sa_column=utc_column())
