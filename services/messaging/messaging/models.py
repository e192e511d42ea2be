"""Messaging's tables: the record of every message, the replies heard, and what messaging
remembers of other services' facts (contacts, tickets, requests, the day's check-ins)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from common.db import utc_column
from common.outbox import InboxMessage, OutboxMessage  # noqa: F401 - every service's tables

DUE = text("status = 'queued'")


class Message(SQLModel, table=True):
    """One message to one person on one channel: the record staff and the person read."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_message_idempotency_key"),
        # The sender's next batch: queued messages by when they may go.
        Index("ix_message_due", "next_attempt_at", postgresql_where=DUE, sqlite_where=DUE),
        Index("ix_message_recipient", "recipient_id", "created_at"),
        Index("ix_message_ticket", "ticket_id"),
        Index("ix_message_request", "request_id"),
        Index("ix_message_notice", "notice_id", "household_id"),
    )

    message_id: str = Field(primary_key=True, max_length=32)
    # The event that caused it and the recipient (and the kind, for the few events that
    # cause two messages to one person): the same event delivered twice inserts nothing.
    idempotency_key: str = Field(max_length=200)
    kind: str = Field(max_length=40)
    channel: str = Field(max_length=10)
    recipient_id: str = Field(max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    text: str = Field(sa_column=Column(Text, nullable=False))
    ticket_id: str | None = Field(default=None, max_length=100)
    request_id: str | None = Field(default=None, max_length=100)
    notice_id: str | None = Field(default=None, max_length=32)
    household_id: str | None = Field(
        default=None, max_length=120
    )  # the recipient's when it was queued: a notice's reach
    urgent: bool = False
    status: str = Field(default="queued", max_length=10)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    fallback_of: str | None = Field(default=None, max_length=32)  # the message this one replaces on another channel
    created_at: datetime = Field(sa_column=utc_column())
    next_attempt_at: datetime = Field(sa_column=utc_column())
    lease_until: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))  # a sender is on it
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    accepted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    failed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    replied_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    followed_up_at: datetime | None = Field(
        default=None, sa_column=utc_column(nullable=True)
    )  # unanswered: handed to the grid worker


class InboundReply(SQLModel, table=True):
    """A reply as the gateway posted it: the gateway's message id makes it apply once."""

    __tablename__ = "inbound_reply"

    channel: str = Field(primary_key=True, max_length=10)
    reply_id: str = Field(primary_key=True, max_length=100)
    sender: str = Field(max_length=100)
    person_id: str | None = Field(default=None, max_length=100)
    text: str = Field(sa_column=Column(Text, nullable=False))
    outcome: str = Field(max_length=30)
    in_reply_to: str | None = Field(default=None, max_length=32)
    received_at: datetime = Field(sa_column=utc_column())


class Contact(SQLModel, table=True):
    """Whom messages reach: residents from checkin's events, others entered by an admin."""

    __tablename__ = "contact"
    __table_args__ = (Index("ix_contact_phone", "phone"),)

    person_id: str = Field(primary_key=True, max_length=100)
    role: str = Field(default="resident", max_length=20)
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    grid_id: str | None = Field(default=None, max_length=50)
    building_id: str | None = Field(default=None, max_length=50)
    unit: str | None = Field(default=None, max_length=20)
    room: str | None = Field(default=None, max_length=20)
    household_id: str | None = Field(default=None, max_length=120)  # from the register (ResidentRegistered)
    preferred_channel: str | None = Field(default=None, max_length=10)
    updated_at: datetime = Field(sa_column=utc_column())


class TicketRef(SQLModel, table=True):
    """What messaging knows of a ticket, from command's events."""

    __tablename__ = "ticket_ref"

    ticket_id: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=50)
    owner: str = Field(max_length=100)
    priority: str = Field(default="normal", max_length=10)
    resident_id: str | None = Field(default=None, max_length=100)
    grid_id: str | None = Field(default=None, max_length=50)
    building_id: str | None = Field(default=None, max_length=50)
    closed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class RequestRef(SQLModel, table=True):
    """Whose a request is, from dispatch's RequestRaised."""

    __tablename__ = "request_ref"

    request_id: str = Field(primary_key=True, max_length=100)
    resident_id: str = Field(max_length=100)
    # The resident's words for the volunteer (their reply to "request fulfilled"), neutralised.
    comment: str | None = Field(default=None, max_length=200)
    hours: float | None = None  # credited to the volunteer, while their thank-you waits for the comment


class CheckinDay(SQLModel, table=True):
    """A resident checked in on a local date (from CheckInSubmitted): no reminder for them that day."""

    __tablename__ = "checkin_day"

    resident_id: str = Field(primary_key=True, max_length=100)
    day: date = Field(primary_key=True)


class Away(SQLModel, table=True):
    """A resident away on these dates (from ResidentAway): no check-in reminder for them."""

    __tablename__ = "resident_away"
    __table_args__ = (Index("ix_resident_away_resident", "resident_id", "from_date"),)

    absence_id: str = Field(primary_key=True, max_length=60)
    resident_id: str = Field(max_length=100)
    from_date: date
    to_date: date


class TicketNotice(SQLModel, table=True):
    """A non-urgent ticket its owner has not heard of yet: told in the owner's next digest
    (`MESSAGING_TICKET_DIGEST_MINUTES`), kept here so a restart loses none."""

    __tablename__ = "ticket_notice"
    __table_args__ = (Index("ix_ticket_notice_pending", "owner", "created_at", postgresql_where=text("digested_at IS NULL"),
                            sqlite_where=text("digested_at IS NULL")),)  # fmt: skip

    ticket_id: str = Field(primary_key=True, max_length=100)
    owner: str = Field(max_length=100)
    respond_by: datetime = Field(sa_column=utc_column())
    created_at: datetime = Field(sa_column=utc_column())
    digested_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class Notice(SQLModel, table=True):
    """A notice (宣传) a staff member sent to buildings, grids or tags: by text, by voice and
    as a printable poster. Its messages carry its id; their households are its reach."""

    __tablename__ = "notice"

    notice_id: str = Field(primary_key=True, max_length=32)
    headline_zh: str = Field(max_length=60)
    headline_en: str | None = Field(default=None, max_length=120)
    body_zh: str = Field(sa_column=Column(Text, nullable=False))
    body_en: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    building_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    grid_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    urgent: bool = False
    sent_by: str = Field(max_length=100)
    recipients: int = 0
    households: int = 0
    created_at: datetime = Field(sa_column=utc_column())
