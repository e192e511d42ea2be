"""Portal tables: who may sign in and how (accounts, household codes, one-time codes,
invitations), and the sessions that signed in. No table of another service's domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from common.db import utc_column
from common.outbox import InboxMessage, OutboxMessage  # noqa: F401 - part of every service's schema


class Account(SQLModel, table=True):
    """A staff member, volunteer or partner desk who signs in with a phone and a code."""

    __tablename__ = "portal_account"

    sub: str = Field(primary_key=True, max_length=60)
    role: str = Field(max_length=20)
    phone: str | None = Field(default=None, max_length=30, unique=True)
    grid_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    building_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    department: str | None = Field(default=None, max_length=20)


class PortalSession(SQLModel, table=True):
    __tablename__ = "portal_session"
    __table_args__ = (Index("ix_portal_session_ended", "ended_at"),)

    session_id: str = Field(primary_key=True, max_length=64)
    sub: str = Field(max_length=60)
    role: str = Field(max_length=20)
    grid_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    building_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    department: str | None = Field(default=None, max_length=20)
    household_id: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
    ended_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class HouseholdCode(SQLModel, table=True):
    """The household's current sign-in code; revoking replaces the nonce (the old code dies)."""

    __tablename__ = "portal_household_code"

    household_id: str = Field(primary_key=True, max_length=120)
    nonce: str = Field(max_length=40, unique=True)
    issued_at: datetime = Field(sa_column=utc_column())


class LoginCode(SQLModel, table=True):
    """The one-time code last sent to a phone (hashed), its expiry and failed attempts."""

    __tablename__ = "portal_login_code"

    phone: str = Field(primary_key=True, max_length=30)
    code_hash: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=utc_column())
    attempts: int = 0
    sent: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # ISO times, the last hour


class Invitation(SQLModel, table=True):
    """An admin's one-time sign-in link (hashed token) for a staff member, volunteer or desk."""

    __tablename__ = "portal_invitation"

    token_hash: str = Field(primary_key=True, max_length=64)
    sub: str = Field(max_length=60)
    role: str = Field(max_length=20)
    grid_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    building_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    department: str | None = Field(default=None, max_length=20)
    expires_at: datetime = Field(sa_column=utc_column())
    used_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
