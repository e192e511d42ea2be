"""Check-in tables. Uniqueness constraints carry the rules that must hold across replicas:
one check-in per resident per local date, one missed record (and so one event) per
resident per date, one lagging alert per building per sampling round.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from common.accesslog import AccessLogEntry  # noqa: F401 - reads of health records (docs/privacy.md)
from common.db import utc_column
from common.outbox import InboxMessage, OutboxMessage  # noqa: F401 - part of this service's schema


class Resident(SQLModel, table=True):
    __tablename__ = "resident"
    __table_args__ = (
        UniqueConstraint("community_id", "building_id", "unit", "room", "name", name="uq_resident_home"),
        Index("ix_resident_grid_building", "grid_id", "building_id"),
    )

    resident_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    phone: str = Field(max_length=30)
    community_id: str = Field(max_length=40)
    grid_id: str = Field(max_length=40)
    building_id: str = Field(max_length=40, index=True)
    unit: str = Field(max_length=20)
    room: str = Field(max_length=20)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    lat: float | None = None
    lon: float | None = None
    # Everyone at one building-unit-room unless the register says otherwise (domain.household_of).
    household_id: str | None = Field(default=None, max_length=120, index=True)
    registered_at: datetime = Field(sa_column=utc_column())


class Absence(SQLModel, table=True):
    """A resident away or in hospital: not expected to check in on those dates."""

    __tablename__ = "absence"

    absence_id: int | None = Field(default=None, primary_key=True)
    resident_id: str = Field(foreign_key="resident.resident_id", index=True, max_length=40)
    from_date: date
    to_date: date
    reason: str = Field(max_length=20)  # away | hospitalised
    recorded_by: str = Field(max_length=60)
    recorded_at: datetime = Field(sa_column=utc_column())


class DailyCheckIn(SQLModel, table=True):
    """The resident's check-in for a local date: the latest submission wins."""

    __tablename__ = "daily_checkin"
    __table_args__ = (
        UniqueConstraint("resident_id", "date", name="uq_daily_checkin"),
        Index("ix_daily_checkin_date", "date"),
    )

    checkin_id: int | None = Field(default=None, primary_key=True)
    resident_id: str = Field(foreign_key="resident.resident_id", max_length=40)
    date: date
    temperature_c: float
    symptoms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    fever: bool = False
    anomaly: bool = False
    channel: str = Field(max_length=20)
    submitted_by: str = Field(max_length=60)
    submitted_at: datetime = Field(sa_column=utc_column())
    revisions: int = 1


class CheckInSubmission(SQLModel, table=True):
    """Every submission, kept: a second check-in the same day updates the day, not the history."""

    __tablename__ = "checkin_submission"

    submission_id: int | None = Field(default=None, primary_key=True)
    resident_id: str = Field(index=True, max_length=40)
    date: date
    temperature_c: float
    symptoms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channel: str = Field(max_length=20)
    submitted_by: str = Field(max_length=60)
    submitted_at: datetime = Field(sa_column=utc_column())


class MissedCheckIn(SQLModel, table=True):
    __tablename__ = "missed_checkin"
    __table_args__ = (
        UniqueConstraint("resident_id", "date", name="uq_missed_checkin"),
        Index("ix_missed_date_grid", "date", "grid_id"),
    )

    missed_id: int | None = Field(default=None, primary_key=True)
    resident_id: str = Field(max_length=40)
    date: date
    consecutive_days: int
    grid_id: str = Field(max_length=40)
    building_id: str = Field(max_length=40)
    detected_at: datetime = Field(sa_column=utc_column())
    sweep_id: str = Field(max_length=32, index=True)  # which sweep found it: that sweep emits its event


class SamplingRound(SQLModel, table=True):
    __tablename__ = "sampling_round"

    round_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    building_ids: list[str] = Field(sa_column=Column(JSON, nullable=False))
    deadline: datetime = Field(sa_column=utc_column())
    min_completion_rate: float = 0.9
    evaluated_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(sa_column=utc_column())


class Sample(SQLModel, table=True):
    __tablename__ = "sample"
    __table_args__ = (UniqueConstraint("round_id", "resident_id", name="uq_sample"),)

    sample_id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(foreign_key="sampling_round.round_id", max_length=40)
    resident_id: str = Field(foreign_key="resident.resident_id", max_length=40)
    sampled_at: datetime = Field(sa_column=utc_column())
    recorded_by: str = Field(max_length=60)


class SamplingLag(SQLModel, table=True):
    __tablename__ = "sampling_lag"
    __table_args__ = (UniqueConstraint("round_id", "building_id", name="uq_sampling_lag"),)

    lag_id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(max_length=40)
    building_id: str = Field(max_length=40)
    completion_rate: float
    detected_at: datetime = Field(sa_column=utc_column())


class IdempotencyKey(SQLModel, table=True):
    """A client's key for a check-in it may send again (a retry, a phone back online): the
    first answer is given to every repeat, written in the check-in's own transaction."""

    __tablename__ = "idempotency_key"
    __table_args__ = (Index("ix_idempotency_key_created_at", "created_at"),)

    caller: str = Field(primary_key=True, max_length=60)  # the token's subject: keys are per caller
    key: str = Field(primary_key=True, max_length=100)
    request_hash: str = Field(max_length=64)  # the request the key was first used for
    answer: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())


class ImportJob(SQLModel, table=True):
    """A register import run in the background: how far it got, kept after it finished."""

    __tablename__ = "import_job"

    job_id: str = Field(primary_key=True, max_length=40)
    filename: str = Field(max_length=200)
    submitted_by: str = Field(max_length=60)
    status: str = Field(default="queued", max_length=10)  # queued | running | done | failed
    rows_total: int
    rows_done: int = 0
    imported: int = 0
    unchanged: int = 0
    rejected: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_column=utc_column())
    updated_at: datetime = Field(sa_column=utc_column())
    finished_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class ResidentErasure(SQLModel, table=True):
    """An admin erased a resident: when, by whom, and what check-in removed (counts per kind
    of record). The resident's id is all it keeps of them: the register no longer has them."""

    __tablename__ = "resident_erasure"

    resident_id: str = Field(primary_key=True, max_length=40)
    erasure_id: str = Field(max_length=40, unique=True)
    requested_by: str = Field(max_length=60)
    requested_at: datetime = Field(sa_column=utc_column())
    records: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ErasureConfirmation(SQLModel, table=True):
    """A service confirmed an erasure (`ResidentErasedBy<Service>`): what it removed, counted."""

    __tablename__ = "erasure_confirmation"

    erasure_id: str = Field(primary_key=True, max_length=40)
    service: str = Field(primary_key=True, max_length=20)
    erased_at: datetime = Field(sa_column=utc_column())
    records: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = Field(sa_column=utc_column())
